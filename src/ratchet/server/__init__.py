"""The team server: `ratchet server`, its REST API, authentication and security."""
