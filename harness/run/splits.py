"""Splits: which behaviors train the IA and which evaluate it. A new split is one registered
class (plus its YAML in conf/split/)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.core.config import Config, SplitConfig
from harness.core.errors import ConfigError
from harness.core.registry import Registry


def _order(behavior_id: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{behavior_id}".encode()).hexdigest()


class Split:
    """Held-out behaviors: per family, about `train_fraction` of the behaviors train the IA and the
    others (at least one) evaluate it."""

    def n_train(self, family: str, n_members: int, cfg: SplitConfig) -> int:
        """How many of a family's behaviors (in the seeded order) train the IA."""
        return min(n_members - 1, max(1, math.ceil(cfg.train_fraction * n_members)))

    def problems(self, cfg: SplitConfig, families: Sequence[str]) -> list[str]:
        """What is wrong with the split's config for these selected families."""
        if cfg.heldout_family is not None:  # it would be ignored: the run would evaluate held-out behaviors
            return [f"split.heldout_family is used only by split=leave_one_family_out (split={cfg.name} holds out "
                    "behaviors of every family)"]
        return []


SPLITS: Registry[type[Split]] = Registry("split")
for _name in ("heldout_behaviors", "heldout_route", "symmetry_attack"):  # the last two differ in eval_routes only
    SPLITS.register(_name)(Split)


@SPLITS.register("leave_one_family_out")
class LeaveOneFamilyOut(Split):
    """Every family but `heldout_family` trains the IA; that one evaluates it."""

    def n_train(self, family, n_members, cfg):
        return 0 if family == cfg.heldout_family else n_members

    def problems(self, cfg, families):
        if cfg.heldout_family in families:
            return []
        return [f"split.heldout_family {cfg.heldout_family!r} is not a selected family ({', '.join(families)})"]


def problems(cfg: Config) -> list[str]:
    """What is wrong with `split.*`: its name, and what its split says of its settings."""
    if cfg.split.name not in SPLITS.names():
        return [f"split.name must be one of {', '.join(SPLITS.names())}, got {cfg.split.name!r}"]
    return SPLITS.get(cfg.split.name)().problems(cfg.split, list(cfg.families))


@dataclass(frozen=True)
class Assignment:
    """A split applied to the selected behaviors: the ids that train the IA and those that
    evaluate it, each in a fixed order (family by family, seeded within a family)."""

    train: list[str]
    evaluate: list[str]


def assign(behaviors: Sequence[tuple[str, str]], cfg: SplitConfig, seed: int) -> Assignment:
    """The split of (family, behavior id) pairs; a fixed function of the ids and the seed.

    `train_families` / `train_per_family` keep only the first families (in input order) and the
    first organisms of each (in the seeded order) for training, so a smaller training set is
    always a subset of a larger one; the evaluation behaviors do not change.
    """
    split = SPLITS.get(cfg.name)()
    train: list[tuple[str, str]] = []
    evaluate: list[str] = []
    for family in dict.fromkeys(f for f, _ in behaviors):
        members = sorted([b for f, b in behaviors if f == family], key=lambda b: _order(b, seed))
        n_train = split.n_train(family, len(members), cfg)
        train += [(family, b) for b in members[:n_train]]
        evaluate += members[n_train:]
    training_families = list(dict.fromkeys(f for f, _ in train))[: cfg.train_families]
    kept = [b for f in training_families for b in [b for tf, b in train if tf == f][: cfg.train_per_family]]
    if not kept or not evaluate:
        raise ConfigError(f"split {cfg.name!r} leaves {'no training' if not kept else 'no evaluation'} organisms")
    return Assignment(train=kept, evaluate=evaluate)
