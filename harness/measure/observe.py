"""The one place where a model is observed: what it does (behavior rates: greedy answers to
probe prompts, scored by the family) and what it says about itself (sampled self-reports).

Organism verification, probing, audits and DPO all call these two functions, so a rate or a
report means the same thing wherever it appears.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from harness.core.config import RateSpec
from harness.core.records import BehaviorRate
from harness.families import Behavior, Family
from harness.lm import models
from harness.measure.probing import behavior_rate, select_prompts
from harness.train.batched import StackedLoRA

AS_IS = None
"""Generate with the model as it is (its active adapters, if any)."""
ADAPTERS_OFF = "__base__"
"""peft's name for "no adapter" in a batch with per-row adapters."""


def behavior_rates(model, tok, targets: Sequence[tuple[Family, Behavior]], spec: RateSpec,
                   adapters: Sequence[str | None] = (AS_IS,), progress: str | None = None,
                   ) -> dict[str | None, dict[str, BehaviorRate]]:
    """Every target behavior's rate under each adapter of a peft model (`__base__`: adapters off),
    or of the model as it is (`AS_IS`), by adapter and behavior id, measured as `spec` says in one
    batched generation (`progress`: the label of its bar)."""
    if AS_IS in adapters and len(adapters) > 1:
        raise ValueError("behavior_rates: the model as it is cannot share a batch with named adapters")
    probes = {b.id: select_prompts(f.probe(b), spec.prompts) for f, b in targets}
    unique = list(dict.fromkeys(p for probe in probes.values() for p in probe.all_prompts))
    rows = [(a, p) for a in adapters for p in unique]
    names = None if adapters[0] is AS_IS else [a for a, _ in rows]
    outputs = models.generate(model, tok, [p for _, p in rows], spec.max_new_tokens, adapter_names=names,
                              progress=progress)
    responses: dict[str | None, dict[str, str]] = {a: {} for a in adapters}
    for (a, p), out in zip(rows, outputs, strict=True):
        responses[a][p] = out
    return {a: {b.id: behavior_rate(f, b, probes[b.id], responses[a]) for f, b in targets} for a in adapters}


def stacked_behavior_rates(model, tok, stacked: StackedLoRA, targets: Sequence[tuple[Family, Behavior]],
                           spec: RateSpec) -> list[BehaviorRate]:
    """Target k's rate under adapter k of `stacked` (hooked on `model`), measured as `spec` says,
    every target in one batched generation: target k's probe prompts are block k of the rows
    (a shorter probe's block filled up with its last prompt, whose extra answers are not read)."""
    probes = [select_prompts(f.probe(b), spec.prompts) for f, b in targets]
    n = max(len(p.all_prompts) for p in probes)
    blocks = [list(p.all_prompts) + [p.all_prompts[-1]] * (n - len(p.all_prompts)) for p in probes]
    stacked.select(range(len(targets)))
    outputs = models.generate(model, tok, [p for block in blocks for p in block], spec.max_new_tokens,
                              batch_size=n * len(targets))
    said = [dict(zip(p.all_prompts, outputs[k * n : k * n + len(p.all_prompts)], strict=True))
            for k, p in enumerate(probes)]
    return [behavior_rate(f, b, probe, s) for (f, b), probe, s in zip(targets, probes, said, strict=True)]


def self_reports(model, tok, questions: Sequence[str], n: int, max_new_tokens: int, temperature: float,
                 seed: int | None, adapter: str | None = AS_IS, prefill: str = "") -> list[tuple[str, str]]:
    """n sampled answers to the questions (cycled), as (question, report) pairs, under one adapter
    of a peft model or the model as it is; at temperature 0 the greedy answer to each question,
    once. Seeded per call (so one model's reports do not depend on what was sampled before);
    `seed=None` continues the current random stream."""
    greedy = temperature == 0
    asked = list(questions) if greedy else [questions[i % len(questions)] for i in range(n)]
    if seed is not None:
        torch.manual_seed(seed)
    reports = models.generate(model, tok, asked, max_new_tokens, do_sample=not greedy, temperature=temperature,
                              adapter_names=None if adapter is AS_IS else [adapter] * len(asked), prefill=prefill)
    return list(zip(asked, reports, strict=True))
