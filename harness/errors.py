"""Errors that the CLI reports as one line, before any expensive work."""


class ConfigError(ValueError):
    """A config, family file or input is invalid; the message names the problem."""
