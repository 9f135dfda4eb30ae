"""rfq_service: the trader-facing edge. REST and WebSocket in, Kafka out and in."""
