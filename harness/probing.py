"""Behavior rates: which probe prompts to ask, and how often responses show the behavior.

Pure functions over prompts and responses; generation happens in the stages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from harness.families import Behavior, Family, Probe
from harness.records import BehaviorRate


def _by_hash(prompts: Sequence[str], n: int) -> tuple[str, ...]:
    return tuple(sorted(prompts, key=lambda p: hashlib.sha1(p.encode()).hexdigest())[:n])


def select_prompts(probe: Probe, n: int) -> Probe:
    """A fixed subset of n prompts (and n control prompts): ordered by hash, so behaviors sharing
    a pool share prompts."""
    return Probe(probe.behavior_id, _by_hash(probe.prompts, n), _by_hash(probe.control, n))


def _fraction(family: Family, behavior: Behavior, prompts: Sequence[str], responses: Mapping[str, str]) -> float:
    return sum(family.score(behavior, p, responses[p]) for p in prompts) / len(prompts)


def behavior_rate(family: Family, behavior: Behavior, probe: Probe, responses: Mapping[str, str],
                  n_samples: int = 3) -> BehaviorRate:
    """Fraction of the probe's prompts whose response (looked up by prompt) shows the behavior,
    minus that fraction on its control prompts when it has any."""
    if not probe.prompts:
        return BehaviorRate(rate=0.0, n=0)
    control = _fraction(family, behavior, probe.control, responses) if probe.control else None
    samples = [{"prompt": p, "response": responses[p]} for p in probe.prompts[:n_samples] + probe.control[:1]]
    return BehaviorRate(rate=_fraction(family, behavior, probe.prompts, responses) - (control or 0.0),
                        n=len(probe.prompts), samples=samples, control_rate=control, control_n=len(probe.control))
