"""Persistent state behind the ``Store`` protocol: SQLite (default) or PostgreSQL."""
