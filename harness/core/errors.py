"""Errors that the CLI reports as one line, before any expensive work, and the exit statuses."""

import sys
import traceback


class ConfigError(ValueError):
    """A config, family file or input is invalid; the message names the problem."""


# Exit statuses of the `harness` commands.
EXIT_FINDING = 1
"""A finding, not a failure: `audit` measured a behavior that went unreported, `cache verify` found damage."""
EXIT_BAD_INPUT = 2
"""Bad input (ConfigError): one line `harness: error: ...`."""
EXIT_INTERNAL = 3
"""A bug or an unexpected failure of the harness: the traceback, then one line."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT), at any moment: one line (the status a shell gives a process SIGINT ends)."""


def one_line(error: BaseException) -> str:
    """Hydra and OmegaConf write multi-line messages, with the reason often in the cause;
    keep the lines that say what is wrong, from the error and its causes."""
    parts: list[str] = []
    while error is not None and len(parts) < 3:
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
        keep = [ln for ln in lines if not ln.startswith(_NOISE)]
        text = " ".join(keep).rstrip(".")
        if text and not any(text in p for p in parts):
            parts.append(text)
        error = error.__cause__
    return ": ".join(parts) or type(error).__name__


_NOISE = ("full_key:", "object_type", "reference_type", "To append", "Set the environment", "value:",
          "See https://", "Config search path", "provider=")


def internal_error(error: Exception) -> int:
    """A failure that is not the input's fault: the traceback (for a bug report), then one line,
    and a status of its own so that scripts never take it for a finding (1) or bad input (2)."""
    traceback.print_exc()
    print(f"harness: internal error: {type(error).__name__}: {one_line(error)} (please report it with the "
          "traceback above)", file=sys.stderr)
    return EXIT_INTERNAL
