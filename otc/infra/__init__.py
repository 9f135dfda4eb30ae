"""Embedded infrastructure: real PostgreSQL, Valkey and Kafka (Tansu) servers from
PyPI wheels, started as child processes for development, tests and the demo."""
