"""Log capture format and readers."""
