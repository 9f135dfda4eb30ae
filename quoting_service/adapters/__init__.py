"""The quoter's I/O: the reference-price reader, the quote book and the wire contracts."""
