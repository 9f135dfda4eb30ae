"""The composition root: what runs the platform rather than what it is made of.

The `otc` command (`cli/`), the launcher and where its servers come from
(`infra/`), demo seeding and the demo, the benches, the trader client, the
simulated price feed, the fault drill and the platform-wide invariant check. It
may import every service; nothing in `otc/` or in a service imports it.
"""
