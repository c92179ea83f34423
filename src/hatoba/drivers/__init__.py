"""Drivers run containers: ``process`` (default, local process groups), ``fake`` (tests)."""
