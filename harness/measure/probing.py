"""Behavior rates: which probe prompts to ask, and how often responses show the behavior.

Pure functions over prompts and responses; generation happens in the stages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from harness.core.records import BehaviorRate
from harness.families import Behavior, Family, Probe


def _by_hash(prompts: Sequence[str], n: int) -> tuple[str, ...]:
    return tuple(sorted(prompts, key=lambda p: hashlib.sha1(p.encode()).hexdigest())[:n])


def select_prompts(probe: Probe, n: int) -> Probe:
    """A fixed subset of n prompts (and n control prompts): ordered by hash, so behaviors sharing
    a pool share prompts."""
    return Probe(probe.behavior_id, _by_hash(probe.prompts, n), _by_hash(probe.control, n))


def behavior_rate(family: Family, behavior: Behavior, probe: Probe, responses: Mapping[str, str],
                  n_samples: int = 3) -> BehaviorRate:
    """Fraction of the probe's prompts whose response (looked up by prompt) shows the behavior,
    minus that fraction on its control prompts when it has any."""
    if not probe.prompts:
        return BehaviorRate(rate=0.0, n=0)
    scored = [{"prompt": p, "control": control, "response": responses[p],
               "shows": family.score(behavior, p, responses[p])}
              for prompts, control in ((probe.prompts, False), (probe.control, True)) for p in prompts]
    rate = sum(s["shows"] for s in scored if not s["control"]) / len(probe.prompts)
    control_rate = sum(s["shows"] for s in scored if s["control"]) / len(probe.control) if probe.control else None
    samples = [{"prompt": p, "response": responses[p]} for p in probe.prompts[:n_samples] + probe.control[:1]]
    return BehaviorRate(rate=rate - (control_rate or 0.0), n=len(probe.prompts), samples=samples,
                        control_rate=control_rate, control_n=len(probe.control), scored=scored)
