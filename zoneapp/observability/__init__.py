"""Tracing (OpenTelemetry, W3C context) and Prometheus exposition; the only OTel importer."""
