"""order_core: the authoritative order state machine, persisted in PostgreSQL, fed
by idempotent Kafka consumers and publishing through a transactional outbox."""
