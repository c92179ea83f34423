"""hatoba: the Amazon ECS experience on your own machines."""

__version__ = "0.1.0"
