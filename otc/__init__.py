"""Shared kernel of the OTC RFQ platform: settings, clock, money, the Kafka bus,
the outbox relay, logging and metrics, the embedded infrastructure and the `otc` CLI."""
