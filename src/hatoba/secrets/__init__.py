"""Secret resolution for task start (``secrets: [{name, valueFrom}]``)."""
