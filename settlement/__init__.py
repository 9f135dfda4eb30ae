"""settlement: books confirmed trades in a double-entry ledger (delivery versus payment)."""
