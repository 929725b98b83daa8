"""cloudtrail-sqs-exporter: Prometheus metrics and OTel logs from the SQS events in CloudTrail."""

__version__ = "0.1.0"
