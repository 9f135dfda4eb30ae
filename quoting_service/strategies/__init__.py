"""Demo pricing strategies, one per demo market maker; each is also a template for a real one."""
