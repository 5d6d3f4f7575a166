"""Durable state (SQLite, Redis), the Redis chat bus, and keeping nodes in step."""
