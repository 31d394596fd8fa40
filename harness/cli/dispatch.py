"""Console script `harness`: the parser and the dispatch to each command, one module of this
package per command with its own `--help` and examples (`NAME`, `HELP`, `EXAMPLES`, `arguments`,
`command`; `run` hands over to Hydra)."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence

from harness.cli import (
    agreement,
    audit,
    cache,
    compare,
    export_inspect,
    export_lm_eval,
    families,
    leaderboard,
    report,
    run,
)
from harness.cli.compose import UNUSABLE_LAUNCHERS
from harness.core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, ConfigError, internal_error

COMMANDS = {m.NAME: m for m in (leaderboard, export_lm_eval, audit, report, families, agreement, compare,
                                export_inspect, cache)}
"""Every command but `run`, in the order `harness --help` lists them."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one `harness: error: ...` line."""

    def error(self, message: str):
        raise ConfigError(f"{self.prog.removeprefix('harness ')}: {message}")


def build_parser() -> Parser:
    parser = Parser(prog="harness", formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="Train and evaluate introspection adapters on model organisms.",
                    epilog="`harness <command> --help` shows a command's options and examples.")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=Parser)
    for m in (run, *COMMANDS.values()):
        epilog = m.examples() if m is run else m.EXAMPLES
        m.arguments(sub.add_parser(m.NAME, help=m.HELP, description=m.HELP, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        if args and args[0] not in ("run", *COMMANDS) and not args[0].startswith("-"):
            raise ConfigError(f"unknown command {args[0]!r} (known: run, {', '.join(COMMANDS)})")
        if {"-sc", "--shell-completion"} & set(args[:2]):
            return shell_completion([a for a in args if a != "run"])
        if args[:1] == ["run"] and not {"-h", "--help"} & set(args):
            return run.run_command(args[1:])  # Hydra's own flags and overrides, in their order
        parsed = parser.parse_args(args)
        if parsed.command is None:
            parser.print_help()
            return 0
        return COMMANDS[parsed.command].command(parsed)
    except ConfigError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SystemExit as e:  # --help, or the Hydra app's status
        return int(e.code or 0)
    except KeyboardInterrupt:  # Ctrl-C: what a kill -9 leaves (harness/core/store.py), and one line
        print("harness: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `harness families | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush raises nothing
        return 0
    except OSError as e:  # disk full, no permission (what is written is renamed into place whole, or not at all)
        print(f"harness: error: {e.strerror or e} ({e.filename or 'while writing'})", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:
        return internal_error(e)


def shell_completion(flags: list[str]) -> int:
    """Hydra's shell completion, for the `harness` command: `eval "$(harness run -sc install=bash)"`
    installs it; the shell then asks `harness -sc query=bash` with the line typed so far, and the
    overrides after `harness run` are completed from the config tree (the commands after `harness`)."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split(" ", 2)  # harness, run, the overrides typed so far
    if line and (len(words) < 3 or words[1] != "run"):
        typed = words[1] if len(words) > 1 else ""
        print(" ".join(c for c in ("run", *COMMANDS) if c.startswith(typed)))
        return 0
    if line:
        os.environ["COMP_LINE"] = f"harness {words[2]}"
    sys.argv = ["harness", *flags]
    offered = io.StringIO()
    with contextlib.redirect_stdout(offered):
        run.hydra_run()
    unusable = {f"hydra/launcher={name}" for name in UNUSABLE_LAUNCHERS}
    print(" ".join(w for w in offered.getvalue().split(" ") if w.strip() not in unusable))
    return 0
