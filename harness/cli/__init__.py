"""The `harness` command line: `main` dispatches to one module per command (harness/cli/<command>.py);
`compose` checks a command's config before any work."""

from harness.cli.dispatch import main

__all__ = ["main"]
