"""A run folder belongs to one run: the harness writes into it only where it owns it.

A run records the outputs it may leave in its folder in the folder's manifest (harness/core/manifest.py)
when it starts. A later run into the same folder (a rerun, or the next job of a resumed sweep)
removes those outputs first, so a rerun that is killed never leaves the old results under its new
`.hydra/overrides.yaml`. A folder that holds anything else (a user's files, another run nested
inside) is refused in one line before anything is written.

A run holds its folder's lock (`locked`) from before Hydra writes into it until it ends, so a second
run started into the same folder at once is refused in one line. The lock is the kernel's (flock:
released on any exit, a killed run's included, so a dead run's lock is simply taken; on NFS the
kernel makes it a lock on the server, which every host sees).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.core import manifest
from harness.core.errors import ConfigError

LOCK = ".harness.lock"
"""The file whose lock a run holds: who holds it (host and pid) is written in it."""
HYDRA = (".hydra", "cli.log", LOCK)
"""What Hydra writes into the folder when the job starts, before the harness runs (and the lock)."""
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


_HELD: dict[Path, list[int]] = {}
"""Run folders this process holds: the lock file's descriptor and how many `locked` blocks hold it."""


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the run folder for the block (created if missing): ConfigError (one line, naming the
    holder) while another process holds it. Blocks of one process on one folder nest."""
    key = folder.resolve()
    if key not in _HELD:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(f"run folder {folder} is in use by another run ({holder}): wait for it to end, or "
                              "choose another hydra.run.dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        _HELD[key] = [fd, 0]
    _HELD[key][1] += 1
    try:
        yield
    finally:
        _HELD[key][1] -= 1
        if not _HELD[key][1]:
            os.close(_HELD.pop(key)[0])  # closing the descriptor releases the lock


@contextmanager
def owned(folder: Path) -> Iterator[None]:
    """The run folder this run's for the block: refused while another run holds it, or when it
    holds what no run wrote (before anything is written there); the outputs of the run before
    it removed."""
    previous_outputs(folder)
    with locked(folder):
        claim(folder)
        yield


def claim(folder: Path) -> None:
    """Make `folder` this run's: refuse it (see `previous_outputs`) or remove the outputs of the run
    before, then record what this run may write."""
    for path in previous_outputs(folder):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    manifest.record(folder, OUTPUTS)
