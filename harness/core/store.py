"""Content-addressed artifact store: every artifact lives under a key derived from its config.

An artifact folder is written under a temporary name and renamed into place when complete,
so a folder at its final path is always whole; a killed job leaves only `*.tmp-<host>-<pid>`
debris, which is ignored and cleaned on the next write of the same artifact from the same host
(a writer on another node of a shared cache is never taken for debris).

Each artifact is sealed when written: its card (`card.json`, written last) records the size and
sha256 of every other file, the artifact's kind and key, and a hash of the card itself. Loading an
artifact verifies the seal (once per process), so a truncated, edited or swapped file, or a whole
folder copied under another key, is a one-line error naming the artifact, not a silently
different result.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError


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
            seal(tmp, self.MARKER, kind, key)
            self._publish(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def card(self, kind: str, key: str) -> dict[str, Any]:
        """The artifact's card (JSON), its seal verified first (once per process)."""
        problems = self.verify(kind, key)
        if problems:
            fix = (f"remove it with `harness cache rm {kind}/{key}` and rerun to rebuild it" if self.owns(kind, key)
                   else "the harness did not write that folder there: move or delete it yourself")
            raise CorruptArtifact(f"artifact {kind}/{key} in {self.root}: {problems[0]} ({fix})")
        return read_card(self.path(kind, key) / self.MARKER)

    def verify(self, kind: str, key: str) -> list[str]:
        """What is wrong with an artifact's files against its seal (nothing: []). A verified
        artifact is not checked again in this process."""
        if (self.root.resolve(), kind, key) in _VERIFIED:
            return []
        problems = check_seal(self.path(kind, key), self.MARKER, kind, key)
        if not problems:
            _VERIFIED.add((self.root.resolve(), kind, key))
        return problems

    def owns(self, kind: str, key: str) -> bool:
        """Whether `<kind>/<key>` is a folder the store wrote: a real folder (no link) whose card
        names this key and, in its seal, this kind. Its files may still be damaged (verify)."""
        folder = self.path(kind, key)
        if not KEY.fullmatch(key) or kind in ("", ".", "..") or "/" in kind or folder.is_symlink():
            return False
        return self.exists(kind, key) and sealed_as(folder / self.MARKER) in {(kind, key), (None, key)}

    def remove(self, kind: str, key: str) -> None:
        """Remove an artifact, so the next run that needs it rebuilds it; ConfigError for a folder
        the store did not write there (see `owns`)."""
        if not self.owns(kind, key):
            raise ConfigError(f"{kind}/{key} is not an artifact of {self.root} (a sealed folder whose "
                              f"{self.MARKER} names its kind and key); nothing removed")
        _VERIFIED.discard((self.root.resolve(), kind, key))
        try:
            _remove(self.path(kind, key))
        except OSError as e:
            raise ConfigError(f"cannot remove {kind}/{key} from {self.root}: {e.strerror or e} (left in place, "
                              "whatever of it is left: `harness cache verify` says whether it is whole)") from e

    def artifacts(self) -> Iterator[tuple[str, str]]:
        """(kind, key) of every finished artifact."""
        if self.root.is_dir():
            for card in sorted(self.root.glob(f"*/*/{self.MARKER}")):
                if ".tmp-" not in card.parent.name and card.is_file():  # a FIFO would block its reader
                    yield card.parent.parent.name, card.parent.name

    def strays(self) -> Iterator[tuple[str, str]]:
        """(kind, key) of every folder `<kind>/<key>` that is no finished artifact and no write in
        progress: its card missing, or not a file."""
        if self.root.is_dir():
            for folder in sorted(self.root.glob("*/*")):
                if folder.is_dir() and ".tmp-" not in folder.name and not (folder / self.MARKER).is_file():
                    yield folder.parent.name, folder.name

    def _publish(self, tmp: Path, final: Path) -> None:
        """Rename a finished temporary folder into place. A finished artifact is never replaced:
        if a concurrent writer of the same key finished first (someone may be reading it), its
        artifact is kept and this one dropped. An incomplete folder at the final path (no
        marker) is moved aside first."""
        if final.exists() and not (final / self.MARKER).is_file():
            _remove(final)
        try:
            os.replace(tmp, final)
        except OSError:  # the final folder appeared meanwhile: another writer finished first
            if not (final / self.MARKER).is_file():
                raise


class CorruptArtifact(ConfigError):
    """An artifact's files do not match its seal."""


_VERIFIED: set[tuple[Path, str, str]] = set()
SEAL = "integrity"
KEY = re.compile(r"[0-9a-f]{16}")
"""An artifact key, as config_key makes it."""


MAX_CARD_BYTES = 64 * 2**20
"""The largest card read: a card holds a record and its files' checksums (the largest of a full
`preset=real` run's store is 13 KB); a larger file is no card, and is not read."""


class OversizedCard(ValueError):
    """A file in a card's place larger than a card can be."""


def read_card(path: Path) -> Any:
    """A card's JSON: OSError when it is no regular file, OversizedCard when it is larger than a
    card can be (left unread), ValueError when it is not JSON."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is no regular file")
    size = path.stat().st_size
    if size > MAX_CARD_BYTES:
        raise OversizedCard(f"{size / 2**20:.0f} MiB, larger than a card can be")
    return json.loads(path.read_text())


def sealed_as(card_path: Path) -> tuple[str | None, str | None]:
    """(kind, key) an artifact's card was sealed under: the kind from its seal (None in a seal
    made before seals recorded it), the key it names (None when unreadable)."""
    try:
        card = read_card(card_path)
    except (OSError, ValueError):
        return None, None
    if not isinstance(card, dict):
        return None, None
    recorded = card.get(SEAL) if isinstance(card.get(SEAL), dict) else {}
    return recorded.get("kind"), card.get("key")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _card_hash(card: dict[str, Any]) -> str:
    """A hash of the card: its fields and the seal's kind and key (when it records them)."""
    body = {k: v for k, v in card.items() if k != SEAL}
    recorded = card.get(SEAL) if isinstance(card.get(SEAL), dict) else {}
    body |= {f"{SEAL}.{k}": recorded[k] for k in ("kind", "key") if k in recorded}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _files(folder: Path, marker: str) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() != marker)


def seal(folder: Path, marker: str, kind: str, key: str) -> None:
    """Record in the folder's card the size and sha256 of every other file, the artifact's kind and
    key, and the card's own hash."""
    card_path = folder / marker
    card = json.loads(card_path.read_text())
    files = {p.relative_to(folder).as_posix(): [p.stat().st_size, file_sha256(p)] for p in _files(folder, marker)}
    card[SEAL] = {"kind": kind, "key": key, "files": files}
    card[SEAL]["card"] = _card_hash(card)
    card_path.write_text(strict_dumps(card, indent=2) + "\n")


def check_seal(folder: Path, marker: str, kind: str, key: str) -> list[str]:
    """The ways a sealed folder differs from its seal: the kind and key it was sealed under, then
    sizes, then hashes."""
    try:
        card = read_card(folder / marker)
    except (OSError, ValueError) as e:
        return [f"its {marker} is unreadable ({e if isinstance(e, OversizedCard) else type(e).__name__})"]
    recorded = card.get(SEAL) if isinstance(card, dict) else None
    if not isinstance(recorded, dict) or not isinstance(recorded.get("files"), dict):
        return [f"its {marker} holds no checksums (made before they were recorded, or altered)"]
    if recorded.get("card") != _card_hash(card):
        return [f"its {marker} was edited after it was written"]
    if card.get("key") != key or recorded.get("key", key) != key or recorded.get("kind", kind) != kind:
        return [f"it was written as {recorded.get('kind', kind)}/{card.get('key')}, not {kind}/{key} "
                "(a folder copied or renamed in the store)"]
    present = {p.relative_to(folder).as_posix(): p for p in _files(folder, marker)}
    problems = [f"{name} is missing" for name in recorded["files"] if name not in present]
    problems += [f"{name} was added" for name in present if name not in recorded["files"]]
    for name, (size, digest) in recorded["files"].items():
        if name in present and present[name].stat().st_size != size:
            problems.append(f"{name} has {present[name].stat().st_size} bytes, not {size}")
        elif name in present and file_sha256(present[name]) != digest:
            problems.append(f"{name} does not match its checksum")
    return problems


def _remove(folder: Path) -> None:
    """Remove a folder, renamed aside first so that a half-removed one never looks finished; one
    that cannot be removed (a file the user may not delete) goes back where it was, whatever is
    left of it, for `cache verify` to judge."""
    aside = folder.with_name(f"{folder.name}.tmp-{_writer()}-removed")
    os.replace(folder, aside)
    try:
        shutil.rmtree(aside)
    except OSError:
        os.replace(aside, folder)
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


def strict_json(obj: Any) -> Any:
    """`obj` with every NaN or infinite float as None: what the harness writes is strict JSON
    (`null`, never `NaN` or `Infinity`, which JSON.parse and other strict readers refuse)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    return obj


def strict_dumps(obj: Any, indent: int | None = None) -> str:
    """Strict JSON text of `obj` (see `strict_json`; anything else unknown as its str)."""
    return json.dumps(strict_json(obj), indent=indent, default=str, allow_nan=False)


def write_json(path: Path, obj: Any) -> None:
    write_text(path, strict_dumps(obj, indent=2) + "\n")
