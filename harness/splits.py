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
    """(train, eval) from (family, behavior_id, item) triples; a fixed function of ids and seed.

    `train_families` / `train_per_family` keep only the first families (in input order) and the
    first organisms of each (in the seeded order) for training, so a smaller training set is
    always a subset of a larger one; the evaluation organisms do not change.
    """
    train: list[tuple[str, T]] = []
    evaluate: list[T] = []
    families = list(dict.fromkeys(f for f, _, _ in targets))
    for family in families:
        members = sorted([(bid, item) for f, bid, item in targets if f == family], key=lambda m: _order(m[0], seed))
        if cfg.name == "leave_one_family_out":
            n_train = 0 if family == cfg.heldout_family else len(members)
        else:
            n_train = min(len(members) - 1, max(1, math.ceil(cfg.train_fraction * len(members))))
        train += [(family, item) for _, item in members[:n_train]]
        evaluate += [item for _, item in members[n_train:]]
    training_families = [f for f in families if any(tf == f for tf, _ in train)][: cfg.train_families]
    kept = [item for f in training_families for item in [i for tf, i in train if tf == f][: cfg.train_per_family]]
    if not kept or not evaluate:
        raise ConfigError(f"split {cfg.name!r} leaves {'no training' if not kept else 'no evaluation'} organisms")
    return kept, evaluate
