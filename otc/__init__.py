"""Shared kernel of the OTC RFQ platform: settings, clock, money, the Kafka bus,
the outbox relay, logging and metrics. It imports no service and nothing of the
composition root (`stack`), which runs the platform on it."""
