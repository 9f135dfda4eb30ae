"""Kafka as the platform uses it: enveloped protobuf messages, at-least-once,
keyed by RFQ, with a dead-letter topic for whatever cannot be handled."""
