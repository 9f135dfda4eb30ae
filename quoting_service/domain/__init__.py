"""The rules a maker's quotes must pass and the limits that halt a maker: pure, no I/O."""
