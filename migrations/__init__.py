"""Alembic migrations. Each service owns one PostgreSQL schema and touches no other."""
