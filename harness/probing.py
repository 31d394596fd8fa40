"""Behavior rates: which probe prompts to ask, and how often responses show the behavior.

Pure functions over prompts and responses; generation happens in the stages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from harness.families import Behavior, Family, Probe
from harness.records import BehaviorRate


def select_prompts(probe: Probe, n: int) -> list[str]:
    """A fixed subset of n prompts: ordered by hash, so behaviors sharing a pool share prompts."""
    return sorted(probe.prompts, key=lambda p: hashlib.sha1(p.encode()).hexdigest())[:n]


def behavior_rate(
    family: Family, behavior: Behavior, prompts: Sequence[str], responses: Mapping[str, str], n_samples: int = 3
) -> BehaviorRate:
    """Fraction of prompts whose response (looked up by prompt) shows the behavior."""
    if not prompts:
        return BehaviorRate(rate=0.0, n=0)
    hits = [family.score(behavior, p, responses[p]) for p in prompts]
    samples = [{"prompt": p, "response": responses[p]} for p in prompts[:n_samples]]
    return BehaviorRate(rate=sum(hits) / len(hits), n=len(hits), samples=samples)
