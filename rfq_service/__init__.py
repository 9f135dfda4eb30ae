"""rfq_service."""
