"""The `harness` command: the CLI (harness/cli/) behind a guard that makes Ctrl-C at any moment,
its imports included, one line and exit status 130 (what a shell reports for SIGINT)."""

import atexit
import os
import signal
import sys

from harness.core.errors import EXIT_INTERRUPTED  # a module of stdlib imports only: cheap before the guard

# What a run imports before its first write: seconds of torch, transformers and peft in which a
# KeyboardInterrupt can be swallowed by a library's own `except:` or raised inside exec'd code
# (dataclasses), after which CPython kills itself with SIGINT at exit, whatever the program returns.
RUN_MODULES = ("harness.run.pipeline", "harness.lm.gguf", "harness.measure.grading")


def main() -> int:
    # While the modules import, nothing is written yet: Ctrl-C ends the process at once.
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    from importlib import import_module

    from harness.cli import main as cli_main

    if sys.argv[1:2] == ["run"]:
        for name in RUN_MODULES:
            import_module(name)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here: KeyboardInterrupt, see cli.main
    code = cli_main()
    if code == EXIT_INTERRUPTED:  # exit 130 even where the KeyboardInterrupt passed through exec'd code
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _interrupted_while_starting(_signum, _frame) -> None:
    sys.stderr.write("harness: interrupted\n")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
