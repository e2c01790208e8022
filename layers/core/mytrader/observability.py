"""Logger, Tracer and Metrics, created once and shared by every handler (Powertools' own pattern)."""
from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
