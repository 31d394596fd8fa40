"""The `harness` command: the CLI (harness/cli.py) behind a guard that makes Ctrl-C at any moment,
its imports included, one line and exit status 130 (what a shell reports for SIGINT)."""

import os
import signal
import sys

from harness.errors import EXIT_INTERRUPTED  # a module without imports: cheap before the guard


def main() -> int:
    # While the CLI's modules import, a KeyboardInterrupt can surface wrapped in another error (an
    # import machinery's RuntimeError); nothing is written yet, so Ctrl-C ends the process at once.
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    from harness.cli import main as cli_main

    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here: KeyboardInterrupt, see cli.main
    return cli_main()


def _interrupted_while_starting(_signum, _frame) -> None:
    sys.stderr.write("harness: interrupted\n")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
