"""Splits: disjoint, deterministic, about three quarters per family for training."""

import pytest

from harness.core.config import SplitConfig
from harness.core.errors import ConfigError
from harness.run.splits import assign


def targets(sizes):
    return [(f, f"{f}/b{i}") for f, n in sizes.items() for i in range(n)]


def split_targets(items, cfg, seed):
    a = assign(items, cfg, seed)
    return a.train, a.evaluate


def test_heldout_behaviors_per_family():
    items = targets({"preferences": 16, "biases": 12, "hidden_goals": 13})
    train, evaluate = split_targets(items, SplitConfig(), seed=0)
    assert not set(train) & set(evaluate) and len(train) + len(evaluate) == 41
    for family, n in {"preferences": 16, "biases": 12, "hidden_goals": 13}.items():
        n_eval = sum(e.startswith(family) for e in evaluate)
        assert 1 <= n_eval <= n // 4 + 1
    assert split_targets(items, SplitConfig(), seed=0) == (train, evaluate)
    assert split_targets(items, SplitConfig(), seed=1) != (train, evaluate)


def test_leave_one_family_out():
    items = targets({"preferences": 4, "biases": 4})
    train, evaluate = split_targets(items, SplitConfig(name="leave_one_family_out", heldout_family="biases"), 0)
    assert all(e.startswith("biases") for e in evaluate) and len(evaluate) == 4
    assert all(t.startswith("preferences") for t in train)


def test_empty_split_is_an_error():
    with pytest.raises(ConfigError, match="no training"):
        split_targets(targets({"preferences": 1}), SplitConfig(), 0)
    with pytest.raises(ConfigError, match="no evaluation"):
        split_targets(targets({"preferences": 3}), SplitConfig(name="leave_one_family_out",
                                                               heldout_family="biases"), 0)


def test_training_subsets_are_nested_and_keep_the_evaluation_set():
    items = targets({"preferences": 8, "biases": 8, "hidden_goals": 8})
    full_train, full_eval = split_targets(items, SplitConfig(), 0)
    previous: set[str] = set()
    for n_families in (1, 2, 3):
        train, evaluate = split_targets(items, SplitConfig(train_families=n_families), 0)
        assert evaluate == full_eval
        assert {t.split("/")[0] for t in train} == set(["preferences", "biases", "hidden_goals"][:n_families])
        assert previous < set(train) <= set(full_train)
        previous = set(train)
    train, evaluate = split_targets(items, SplitConfig(train_per_family=2), 0)
    assert len(train) == 6 and evaluate == full_eval
    assert set(train) < set(split_targets(items, SplitConfig(train_per_family=4), 0)[0])


def test_a_new_split_is_one_registered_class():
    from types import SimpleNamespace

    from harness.run.splits import SPLITS, Split, problems

    cfg = SimpleNamespace(split=SplitConfig(name="all_but_one"), families={"preferences": None})
    assert problems(cfg) == ["split.name must be one of heldout_behaviors, heldout_route, leave_one_family_out, "
                             "symmetry_attack, got 'all_but_one'"]

    @SPLITS.register("all_but_one")
    class AllButOne(Split):
        def n_train(self, family, n_members, cfg):
            return n_members - 1

    try:
        train, evaluate = split_targets(targets({"preferences": 5, "biases": 3}), SplitConfig(name="all_but_one"), 0)
        assert len(train) == 6 and len(evaluate) == 2
        assert problems(cfg) == []
    finally:
        SPLITS._items.pop("all_but_one")
