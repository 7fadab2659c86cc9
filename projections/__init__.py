"""Read models: pure projectors (envelope → idempotent SQL), their registry, queries, rebuild."""
