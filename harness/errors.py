"""Errors that the CLI reports as one line, before any expensive work."""


class ConfigError(ValueError):
    """A config, family file or input is invalid; the message names the problem."""


# Exit statuses of the `harness` commands.
EXIT_FINDING = 1
"""A finding, not a failure: `audit` measured a behavior that went unreported, `cache verify` found damage."""
EXIT_BAD_INPUT = 2
"""Bad input (ConfigError): one line `harness: error: ...`."""
EXIT_INTERNAL = 3
"""A bug or an unexpected failure of the harness: the traceback, then one line."""
