"""introspection-harness: measure whether a model's self-reports match its behavior."""

__version__ = "0.1.0"
