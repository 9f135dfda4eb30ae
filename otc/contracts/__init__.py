"""Generated wire contracts (from `proto/`); regenerate with `make proto`, never edit."""
