"""The task pipelines behind `textroute train`: load data, train, evaluate, write the artifact."""
