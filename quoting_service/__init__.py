"""quoting_service."""
