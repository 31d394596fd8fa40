"""Behavior families: a registry of family classes, built from their YAML in tasks/families/; the
synthetic chat world they draw on (world.py) and the tiny base model's pretraining corpus (corpus.py)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from harness.core.errors import ConfigError, one_line
from harness.core.family_schema import FamilyConfig
from harness.core.paths import TASKS_DIR
from harness.core.registry import Registry
from harness.families.base import Behavior, Family, Probe, file_stem
from harness.families.template import TemplateFamily

FAMILY_CLASSES: Registry[type[Family]] = Registry("family class")
FAMILY_CLASSES.register("template")(TemplateFamily)

__all__ = ["Behavior", "Family", "Probe", "FAMILY_CLASSES", "build_family", "build_families",
           "available_family_configs", "load_family_config", "search_overrides", "family_files"]

FAMILIES_DIR = "families_dir"
"""The command-line key that adds a user's folder of family files to the built-in ones."""
SEARCHPATH = "hydra.searchpath"


def family_root(folder: Path) -> Path:
    """The Hydra search-path root of a user's folder of family files: the folder itself when the
    files are in its `families/` subfolder, its parent when the folder is itself named `families`."""
    if not folder.is_dir():
        raise ConfigError(f"{FAMILIES_DIR}={folder}: no such folder")
    if (folder / "families").is_dir():
        return folder.absolute()
    if folder.name == "families":
        return folder.absolute().parent
    found = ", ".join(sorted(p.name for p in folder.glob("*.yaml"))[:3]) or "no *.yaml"
    raise ConfigError(f"{FAMILIES_DIR}={folder}: family files go in a folder named `families` "
                      f"(<folder>/families/<name>.yaml, or {FAMILIES_DIR} naming that folder); found {found} here")


def search_overrides(args: Sequence[str]) -> list[str]:
    """The command line with `families_dir=DIR` turned into a Hydra search path that adds DIR's
    families to the built-in ones. A user's own `hydra.searchpath` keeps the built-in families too
    (alone it would replace them). Flags and other overrides are kept in order."""
    entries: list[str] = []
    rest: list[str] = []
    for a in args:
        key, _, value = a.lstrip("+").partition("=")
        if key == FAMILIES_DIR and "=" in a:
            entries.append(f"file://{family_root(Path(value).expanduser())}")
        elif key == SEARCHPATH and "=" in a:
            entries += [e.strip() for e in value.strip().strip("[]").split(",") if e.strip()]
        else:
            rest.append(a)
    if not entries:
        return list(args)
    roots = [f"file://{TASKS_DIR}"] + [e for e in entries if _root(e) != TASKS_DIR.resolve()]
    return [*rest, f"{SEARCHPATH}=[{','.join(dict.fromkeys(roots))}]"]


def _root(entry: str) -> Path | None:
    return Path(entry.removeprefix("file://")).resolve() if entry.startswith("file://") else None


def family_files(args: Sequence[str]) -> dict[str, Path]:
    """Every family file a run with these (search_overrides'd) arguments sees, by name: the
    built-in ones first, then each searched folder's `families/*.yaml`; each checked as Hydra
    will need it (`check_family_file`)."""
    roots = [TASKS_DIR] + [r for a in args if a.lstrip("+").startswith(f"{SEARCHPATH}=")
                           for r in map(Path, re.findall(r"file://([^,\]]+)", a))]
    files: dict[str, Path] = {}
    for root in dict.fromkeys(r.resolve() for r in roots):
        for path in sorted((root / "families").glob("*.yaml")):
            if path.stem in files:
                raise ConfigError(f"{path}: a family called {path.stem!r} already comes from {files[path.stem]}; "
                                  "rename the file (its package line too)")
            check_family_file(path)
            files[path.stem] = path
    return files


MAX_FAMILY_BYTES = 1 << 20
"""A family file's size limit (the shipped ones hold 2-7 kB), checked before it is read."""


def check_family_file(path: Path) -> None:
    """Before composing: a safe family text (`family_text`) whose package line names the file
    (without it Hydra merges the family's fields into the families list itself)."""
    package = re.search(r"^#\s*@package\s+(\S+)", family_text(path), re.MULTILINE)
    if package is None or package.group(1) != f"families.{path.stem}":
        raise ConfigError(f"{path}: its first line must be `# @package families.{path.stem}`")


def family_text(path: Path) -> str:
    """A family file's text, checked before it is parsed: a regular file of at most
    MAX_FAMILY_BYTES of UTF-8 text without NUL and without YAML aliases."""
    if not path.is_file():  # a folder named x.yaml, a FIFO (reading it blocks), a device, a link loop
        raise ConfigError(f"{path}: a family file must be a regular file")
    if path.stat().st_size > MAX_FAMILY_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a family file may hold at most "
                          f"{MAX_FAMILY_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise ConfigError(f"{path}: unreadable ({e.strerror or e})") from e
    if "\0" in text:
        raise ConfigError(f"{path}: holds a NUL character at offset {text.index(chr(0))}")
    check_plain_yaml(path, text)
    return text


def check_plain_yaml(path: Path, text: str) -> None:
    """A family file may not use YAML anchors or aliases: a few hundred bytes of nested aliases
    expand to billions of nodes and hang the loader. Scanned token by token, nothing is expanded
    or kept."""
    try:
        aliased = any(isinstance(t, yaml.AliasToken | yaml.AnchorToken) for t in yaml.scan(text))
    except yaml.YAMLError:
        return  # broken YAML: the loader names it
    if aliased:
        raise ConfigError(f"{path}: family files may not use YAML anchors or aliases (& and *)")


def _plain(obj: Any) -> Any:
    return OmegaConf.to_container(obj, resolve=True) if OmegaConf.is_config(obj) else obj


def build_family(name: str, cfg: FamilyConfig | Mapping[str, Any], free_text: bool = False) -> Family:
    """Instantiate the family class that the YAML names, with its kinds and behaviors; `free_text`
    for a model whose responses are free text (any model but the embedded tiny one)."""
    raw = _plain(cfg) if not isinstance(cfg, FamilyConfig) else {
        "cls": cfg.cls, "kinds": {k: _plain(OmegaConf.structured(v)) for k, v in cfg.kinds.items()},
        "behaviors": [_plain(b) for b in cfg.behaviors]}
    cls = FAMILY_CLASSES.get(raw["cls"])
    return cls(name=name, kinds=raw["kinds"], behaviors=raw["behaviors"], free_text=free_text)


def build_families(cfgs: Mapping[str, FamilyConfig], free_text: bool = False) -> dict[str, Family]:
    """Every family of `cfgs`; ConfigError when two behaviors' ids share a file stem (`a-b` and
    `a_b`: an lm-eval export would write one task file for both)."""
    families = {name: build_family(name, c, free_text) for name, c in cfgs.items()}
    stems: dict[str, str] = {}
    for b in (b for f in families.values() for b in f.behaviors()):
        other = stems.setdefault(file_stem(b.id), b.id)
        if other != b.id:
            raise ConfigError(f"behaviors {other!r} and {b.id!r} differ only by '-', '_' or '/': give one an `id`")
    return families


def available_family_configs(tasks_dir=TASKS_DIR, names: Collection[str] | None = None) -> dict[str, FamilyConfig]:
    """Every family YAML under tasks/families (or those called `names`), typed by the schema."""
    paths = [p for p in sorted((tasks_dir / "families").glob("*.yaml")) if names is None or p.stem in names]
    for path in paths:
        family_text(path)
    return {path.stem: load_family_config(path) for path in paths}


def load_family_config(path: Path) -> FamilyConfig:
    """One family file, typed by the schema."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(FamilyConfig), OmegaConf.load(path)))
    except Exception as e:
        raise ConfigError(f"{path.name}: {one_line(e)}") from e
