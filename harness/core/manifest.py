"""What the harness wrote into a folder it may later clear or overwrite: run folders, lm-eval
exports, sweep summaries. Each such folder holds `harness_files.json`, the list of paths (relative
to the folder; a listed folder covers what is inside it) that the harness wrote there. Only listed
paths are ever replaced or removed; a folder with anything else in it is refused in one line.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from harness.core.errors import ConfigError
from harness.core.store import write_json

MANIFEST = "harness_files.json"
T = TypeVar("T")


def listed(folder: Path) -> list[str] | None:
    """The paths the harness wrote into `folder` (None: it holds no manifest); ConfigError when the
    manifest is not one the harness wrote."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        entries = json.loads(path.read_text())["files"]
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"{path}: not a file list the harness wrote ({type(e).__name__})") from e
    if not isinstance(entries, list) or not all(isinstance(e, str) and inside(folder, e) for e in entries):
        raise ConfigError(f"{path}: not a file list the harness wrote (it names a path outside {folder})")
    return entries


def inside(folder: Path, name: str) -> bool:
    """Whether `name` is a relative name of a path inside `folder`: no absolute path, no `..`, and
    no link on the way there that leads out (the last part may itself be a link)."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        return False
    root = folder.resolve()
    return (folder / name).parent.resolve().is_relative_to(root)


def record(folder: Path, entries: Iterable[str]) -> None:
    """Add `entries` to the folder's manifest."""
    write_json(folder / MANIFEST, {"files": sorted(set(listed(folder) or []) | set(entries))})


def foreign(folder: Path, also: Iterable[str] = ()) -> list[str]:
    """Every file in `folder` (recursively) that its manifest does not cover, nor `also` (names
    others write there: Hydra's `.hydra/`, Python's `__pycache__/`), nor the manifest itself."""
    covered = {*(listed(folder) or []), *also, MANIFEST}
    out = []
    for path in sorted(folder.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        parts = path.relative_to(folder).parts
        if not any("/".join(parts[:i]) in covered for i in range(1, len(parts) + 1)):
            out.append("/".join(parts))
    return out


def check_replaceable(folder: Path, names: Iterable[str], what: str) -> None:
    """Before writing `names` into `folder`: ConfigError if one of them is there and the harness
    did not write it."""
    ours = set(listed(folder) or [])
    for name in names:
        if (folder / name).exists() and name not in ours:
            raise ConfigError(f"{what}: {folder / name} exists and the harness did not write it; "
                              "move it, or choose another folder")


def check_folder(out: Path, what: str, also: Iterable[str] = ()) -> None:
    """An export goes into a new or empty folder, or replaces a previous one (every file in the
    folder listed in its manifest); any other folder is refused: the harness never removes what it
    did not write. `also`: names others write there."""
    if out.is_symlink():  # replacing it would replace the link, not the folder it leads to
        raise ConfigError(f"--out {out}: is a link; name the folder it leads to ({out.resolve()})")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and (listed(out) is None or foreign(out, also)):
        raise ConfigError(f"--out {out}: the folder holds files that are not {what}; choose a new or empty folder")


def write_folder(out: Path, fill: Callable[[Path], T], what: str, also: Iterable[str] = ()) -> T:
    """Fill a folder beside `out` and put it in place whole (a previous export is set aside, then
    removed): a failure leaves the old folder, or none, never half of one."""
    out = Path(os.path.abspath(out))
    check_folder(out, what, also)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.mkdir()
    try:
        made = fill(tmp)
        record(tmp, [p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.is_dir() and any(out.iterdir()):
        aside = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(aside)
        tmp.rename(out)
        shutil.rmtree(aside)
    else:
        os.replace(tmp, out)
    return made
