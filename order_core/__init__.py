"""order_core."""
