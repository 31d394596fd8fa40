"""Content-addressed artifact store: every artifact lives under a key derived from its config.

An artifact folder is written under a temporary name and renamed into place when complete,
so a folder at its final path is always whole; a killed job leaves only `*.tmp-<host>-<pid>`
debris, which is ignored and cleaned on the next write of the same artifact from the same host
(a writer on another node of a shared cache is never taken for debris).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any


def config_key(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (dataclasses allowed)."""
    plain = [asdict(p) if is_dataclass(p) else p for p in parts]
    blob = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Store:
    """Folders `<root>/<kind>/<key>/`, complete when their marker file exists."""

    MARKER = "card.json"

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def exists(self, kind: str, key: str) -> bool:
        return (self.path(kind, key) / self.MARKER).is_file()

    @contextmanager
    def writing(self, kind: str, key: str) -> Iterator[Path]:
        """Yield a temporary folder; on success it becomes the artifact, on error it is removed.

        The body must write the marker file (card.json) last.
        """
        final = self.path(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        for stale in final.parent.glob(f"{key}.tmp-*"):
            if _is_debris(stale.name[len(key) + len(".tmp-") :]):
                shutil.rmtree(stale, ignore_errors=True)
        tmp = final.parent / f"{key}.tmp-{_writer()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield tmp
            if not (tmp / self.MARKER).is_file():
                raise RuntimeError(f"artifact {kind}/{key} was written without its {self.MARKER}")
            self._publish(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _publish(self, tmp: Path, final: Path) -> None:
        """Rename a finished temporary folder into place. A finished artifact is never replaced:
        if a concurrent writer of the same key finished first (someone may be reading it), its
        artifact is kept and this one dropped. An incomplete folder at the final path (no
        marker) is moved aside first."""
        if final.exists() and not (final / self.MARKER).is_file():
            aside = final.with_name(f"{final.name}.tmp-{_writer()}-incomplete")
            os.replace(final, aside)
            shutil.rmtree(aside, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:  # the final folder appeared meanwhile: another writer finished first
            if not (final / self.MARKER).is_file():
                raise


def _host() -> str:
    """This machine's name, as a temporary name may hold it (no '/' or '.')."""
    return socket.gethostname().replace("/", "_").replace(".", "_") or "localhost"


def _writer() -> str:
    """`<host>-<pid>`: who writes a temporary folder or file."""
    return f"{_host()}-{os.getpid()}"


def _is_debris(writer: str) -> bool:
    """A temporary folder left by a dead writer on this host. A folder of another host (a node
    sharing the cache), or in the old `<pid>` form, is left alone: its writer may be alive."""
    host, _, pid = writer.rpartition("-")
    return host == _host() and not _pid_alive(pid)


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write a file through `write(temporary path)`, then rename it into place: a reader sees the
    old file or the new one, never half of one."""
    tmp = path.with_name(path.name + f".tmp-{_writer()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")
