"""The checks the config schemas share: numeric ranges and sampling bounds of a group's fields, and
what a composed config may not hold (undeclared keys, interpolations that copy the environment or
secrets into the results)."""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.core.errors import ConfigError


def ranges(obj: Any, group: str, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = (),
            fractions: tuple[str, ...] = ()) -> list[str]:
    """Problems of numeric fields that must be > 0, >= 0 or in [0, 1] (NaN and inf never pass);
    a learning rate (a field named `lr` or `*_lr`) must also be at most 1 (AdamW steps of more
    than the weights' scale only diverge)."""
    out = []
    for k in positive + non_negative + fractions:
        v = getattr(obj, k)
        if not math.isfinite(v):
            out.append(f"{group}.{k} must be a finite number, got {v}")
        elif k in positive and v <= 0:
            out.append(f"{group}.{k} must be > 0, got {v}")
        elif k in non_negative and v < 0:
            out.append(f"{group}.{k} must be >= 0, got {v}")
        elif k in fractions and not 0 <= v <= 1:
            out.append(f"{group}.{k} must be in [0, 1], got {v}")
        elif (k == "lr" or k.endswith("_lr")) and v > 1:
            out.append(f"{group}.{k} must be at most 1 (a learning rate), got {v}")
        elif k.endswith("max_new_tokens") and v > MAX_NEW_TOKENS:
            out.append(f"{group}.{k} must be at most {MAX_NEW_TOKENS} (a generation longer than a small model's "
                       f"context), got {v}")
    return out


MAX_TEMPERATURE = 10.0
MIN_TEMPERATURE = 1e-3
MAX_SAMPLES = 4096
MAX_NEW_TOKENS = 4096


def sampling_bounds(obj: Any, group: str, temperature: str, samples: str) -> list[str]:
    """Problems of a decoding's sampled self-reports: at most MAX_SAMPLES per model (and
    condition), at a temperature of at most MAX_TEMPERATURE."""
    out = []
    n, t = getattr(obj, samples), getattr(obj, temperature)
    if n > MAX_SAMPLES:
        out.append(f"{group}.{samples} must be at most {MAX_SAMPLES} (self-reports per model and condition), got {n}")
    if math.isfinite(t) and t > MAX_TEMPERATURE:
        out.append(f"{group}.{temperature} must be at most {MAX_TEMPERATURE} (above, samples are noise), got {t}")
    if 0 < t < MIN_TEMPERATURE:
        out.append(f"{group}.{temperature} must be 0 (greedy) or at least {MIN_TEMPERATURE} (below, the logits "
                   f"overflow), got {t}")
    return out


ENV_SETTINGS = ("cache_dir",)
"""The settings that may be read from the environment (${oc.env:...}): paths, never secrets."""


def interpolations(node: Any, path: str, marker: str = "${") -> list[str]:
    """Where a plain container holds a string with an interpolation (or with `marker`)."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in interpolations(v, f"{path}.{k}", marker)]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in interpolations(v, f"{path}[{i}]", marker)]
    return [path] if isinstance(node, str) and "${" in node and marker in node else []


def undeclared_keys(node: DictConfig, path: str = "") -> list[str]:
    """Keys added with `+key=...` that no schema dataclass declares."""
    schema = OmegaConf.get_type(node)
    declared = {f.name for f in fields(schema)} if is_dataclass(schema) else None
    out = []
    for key in node.keys():
        if declared is not None and key not in declared:
            out.append(f"{path}{key}")
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            out += undeclared_keys(child, f"{path}{key}.")
    return out


def check_composed(cfg: DictConfig) -> None:
    """Raise ConfigError at the first key no schema declares, or interpolation a config may not hold."""
    unknown = undeclared_keys(cfg)
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r} (not in the schema)")
    families = cfg.get("families")
    interpolated = interpolations(OmegaConf.to_container(families, resolve=False), "families") \
        if OmegaConf.is_config(families) else []
    if interpolated:
        # family text goes into organism cards, the corpus and W&B: ${oc.env:...} would copy secrets there
        raise ConfigError(f"{interpolated[0]}: family files may not use interpolations (${{...}})")
    # settings go into metrics.json, cards and W&B: an environment variable would be copied there
    from_env = [p for p in interpolations(OmegaConf.to_container(cfg, resolve=False), "", "oc.env")
                if p.lstrip(".") not in ENV_SETTINGS]
    if from_env:
        raise ConfigError(f"{from_env[0].lstrip('.')}: a setting may not read the environment (${{oc.env:...}}): "
                          "its value would be written into the results and W&B; give the value itself")
