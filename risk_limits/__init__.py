"""risk_limits."""
