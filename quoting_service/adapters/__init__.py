"""The quoting side's I/O: reference prices, the protection window and the wire contracts."""
