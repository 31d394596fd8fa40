"""What produced a result: library versions and the harness's git commit."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version

from harness.core.paths import PACKAGE_DIR

PACKAGES = ("torch", "transformers", "peft", "hydra-core", "wandb", "introspection-harness")


@cache
def environment() -> dict[str, str | None]:
    """Versions of the libraries that shape results, and `git_commit` (suffixed `+dirty` when the
    working tree has uncommitted changes; None outside a git checkout)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    out["git_commit"] = _git_commit()
    return out


def _git_commit() -> str | None:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    if not (PACKAGE_DIR.parent / ".git").exists():  # an installed copy, not a checkout
        return None
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")
