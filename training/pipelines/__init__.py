"""Task pipelines, one per `textroute train` command: load data, train, evaluate, write the artifact."""
