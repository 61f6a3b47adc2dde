"""smtpeter-exporter: SMTPeter webhooks in, Prometheus metrics and JSON log lines out."""

__version__ = "0.1.0"
