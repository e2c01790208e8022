"""Adapters, one place per outside system: aws/ (S3, SSM, Comprehend, SQS, Secrets Manager), alpaca/ (one HTTP
session for data, news and orders), tradelog (the only DynamoDB code) and the paper broker."""
