"""AWS adapters: clients made once per container, parameters, S3 market data, Comprehend, caches, the queue."""
