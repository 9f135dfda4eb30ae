"""The quoter as a running service."""
