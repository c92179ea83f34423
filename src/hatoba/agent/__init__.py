"""The node side: starts and stops tasks through a driver, health checks, status reports."""
