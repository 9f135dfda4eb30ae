"""What the quoter does with each message it consumes."""
