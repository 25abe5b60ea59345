"""The real-time router: Kafka in, batched inference, routing events out."""
