"""Behavior families: a registry of family classes, built from their YAML in tasks/families/."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from harness.config import TASKS_DIR, FamilyConfig, one_line
from harness.errors import ConfigError
from harness.families.base import Behavior, Family, Probe
from harness.families.template import TemplateFamily
from harness.registry import Registry

FAMILY_CLASSES: Registry[type[Family]] = Registry("family class")
FAMILY_CLASSES.register("template")(TemplateFamily)

__all__ = ["Behavior", "Family", "Probe", "FAMILY_CLASSES", "build_family", "build_families",
           "available_family_configs"]


def check_plain_yaml(path: Path) -> None:
    """A family file may not use YAML anchors or aliases: a few hundred bytes of nested aliases
    expand to billions of nodes and hang the loader. Scanned as tokens, nothing is expanded."""
    try:
        tokens = list(yaml.scan(path.read_text()))
    except (OSError, yaml.YAMLError):
        return  # unreadable or broken YAML: the loader names it
    if any(isinstance(t, yaml.AliasToken | yaml.AnchorToken) for t in tokens):
        raise ConfigError(f"{path}: family files may not use YAML anchors or aliases (& and *)")


def _plain(obj: Any) -> Any:
    return OmegaConf.to_container(obj, resolve=True) if OmegaConf.is_config(obj) else obj


def build_family(name: str, cfg: FamilyConfig | Mapping[str, Any]) -> Family:
    """Instantiate the family class that the YAML names, with its kinds and behaviors."""
    raw = _plain(cfg) if not isinstance(cfg, FamilyConfig) else {
        "cls": cfg.cls, "kinds": {k: _plain(OmegaConf.structured(v)) for k, v in cfg.kinds.items()},
        "behaviors": [_plain(b) for b in cfg.behaviors]}
    cls = FAMILY_CLASSES.get(raw["cls"])
    return cls(name=name, kinds=raw["kinds"], behaviors=raw["behaviors"])


def build_families(cfgs: Mapping[str, FamilyConfig]) -> dict[str, Family]:
    return {name: build_family(name, c) for name, c in cfgs.items()}


def available_family_configs(tasks_dir=TASKS_DIR, names: Collection[str] | None = None) -> dict[str, FamilyConfig]:
    """Every family YAML under tasks/families (or those called `names`), typed by the schema."""
    out = {}
    for path in sorted((tasks_dir / "families").glob("*.yaml")):
        if names is not None and path.stem not in names:
            continue
        try:
            node = OmegaConf.merge(OmegaConf.structured(FamilyConfig), OmegaConf.load(path))
            out[path.stem] = OmegaConf.to_object(node)
        except Exception as e:
            raise ConfigError(f"{path.name}: {one_line(e)}") from e
    return out
