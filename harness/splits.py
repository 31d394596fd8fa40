"""Splits: which behaviors train the IA and which evaluate it."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TypeVar

from harness.config import SplitConfig
from harness.errors import ConfigError

T = TypeVar("T")


def _order(behavior_id: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{behavior_id}".encode()).hexdigest()


def split_targets(targets: Sequence[tuple[str, str, T]], cfg: SplitConfig, seed: int) -> tuple[list[T], list[T]]:
    """(train, eval) from (family, behavior_id, item) triples; a fixed function of ids and seed."""
    train: list[T] = []
    evaluate: list[T] = []
    if cfg.name == "leave_one_family_out":
        for family, _, item in targets:
            (evaluate if family == cfg.heldout_family else train).append(item)
    else:
        families = dict.fromkeys(f for f, _, _ in targets)
        for family in families:
            members = sorted([(bid, item) for f, bid, item in targets if f == family],
                             key=lambda m: _order(m[0], seed))
            n_train = min(len(members) - 1, max(1, math.ceil(cfg.train_fraction * len(members))))
            train += [item for _, item in members[:n_train]]
            evaluate += [item for _, item in members[n_train:]]
    if not train or not evaluate:
        raise ConfigError(f"split {cfg.name!r} leaves {'no training' if not train else 'no evaluation'} organisms")
    return train, evaluate
