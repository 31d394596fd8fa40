"""`harness report`: one self-contained HTML page for a run or a sweep folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.core import manifest
from harness.core.errors import ConfigError

NAME = "report"
HELP = "one static HTML page for a run or a sweep folder"
EXAMPLES = """\
examples:
  harness report                                       # the newest run under outputs/
  harness report multirun/ia_rank/2026-11-27_10-00-00  # a sweep folder
"""


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", nargs="?", type=Path, help="a run or sweep folder (default: the newest run)")
    p.add_argument("--out", type=Path)
    p.add_argument("--log", action="store_true", help="also log the plots as a W&B run (job type report)")


def command(a: argparse.Namespace) -> int:
    from harness.core import tracking
    from harness.core.config import LoggerConfig
    from harness.report import leaderboard
    from harness.report.html import write_report

    out = a.out
    if a.folder is not None:
        folder = a.folder
    else:
        runs = sorted(Path("outputs").glob("*/*/metrics.json"))
        if not runs:
            raise ConfigError("no run under outputs/: run `harness run` first, or name a folder")
        folder = runs[-1].parent
    if not folder.is_dir():
        raise ConfigError(f"no such folder: {folder}")
    if (out or folder).is_dir():
        manifest.check_replaceable(out or folder, ["report.html"], "report")
    path = write_report(folder, out)
    manifest.record(path.parent, ["report.html"])
    print(f"report written to {path} (one self-contained file: open it in a browser, or send it)")
    if a.log:  # reading writes no W&B run unless asked
        group = next((r.group for r in leaderboard.load_results([folder]) if r.group), None)
        print(f"W&B run (job type report): {tracking.log_report(LoggerConfig(group=group), path)}")
    return 0
