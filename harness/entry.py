"""The `harness` command: the CLI (harness/cli.py) behind a guard that makes Ctrl-C at any moment,
its imports included, one line and exit status 130 (what a shell reports for SIGINT)."""

import sys

from harness.errors import EXIT_INTERRUPTED  # a module without imports: cheap before the guard


def main() -> int:
    try:
        from harness.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
