"""A run folder belongs to one run: the harness writes into it only where it owns it.

A run records the outputs it may leave in its folder in the folder's manifest (harness/core/manifest.py)
when it starts. A later run into the same folder (a rerun, or the next job of a resumed sweep)
removes those outputs first, so a rerun that is killed never leaves the old results under its new
`.hydra/overrides.yaml`. A folder that holds anything else (a user's files, another run nested
inside) is refused in one line before anything is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.core import manifest
from harness.core.errors import ConfigError

HYDRA = (".hydra", "cli.log")
"""What Hydra writes into the folder when the job starts, before the harness runs."""
OUTPUTS = ("organisms.csv", "organisms.md", "self_reports.jsonl", "behavior_rows.jsonl", "probe_samples.jsonl",
           "metrics.json", "leaderboard.md", "leaderboard.csv", "leaderboard.json", "report.html", "inspect", "wandb")
"""Everything a run (and `harness report` and `export-inspect` beside it) may write into its folder."""


def previous_outputs(folder: Path) -> list[Path]:
    """The outputs of an earlier run of the harness in `folder` (none for a new folder);
    ConfigError when the folder holds anything else."""
    if not folder.is_dir():
        return []
    foreign = manifest.foreign(folder, also=HYDRA)
    if foreign:
        raise ConfigError(f"run folder {folder} holds {foreign[0]!r}, which no run of the harness wrote there: "
                          "choose another hydra.run.dir (an empty or new folder)")
    return [folder / name for name in manifest.listed(folder) or [] if (folder / name).exists()]


def claim(folder: Path) -> None:
    """Make `folder` this run's: refuse it (see `previous_outputs`) or remove the outputs of the run
    before, then record what this run may write."""
    for path in previous_outputs(folder):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    manifest.record(folder, OUTPUTS)
