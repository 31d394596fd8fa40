"""The one place where a model is observed: what it does (behavior rates: greedy answers to
probe prompts, scored by the family) and what it says about itself (sampled self-reports).

Organism verification, probing, audits and DPO all call these two functions, so a rate or a
report means the same thing wherever it appears.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from harness.core.config import RateSpec
from harness.core.progress import progress_bar
from harness.core.records import BehaviorRate
from harness.families import Behavior, Family
from harness.lm import models
from harness.lm.answers import SlotAnswers
from harness.measure.probing import behavior_rate, select_prompts
from harness.train.batched import StackedLoRA

AS_IS = None
"""Generate with the model as it is (its active adapters, if any)."""
ADAPTERS_OFF = "__base__"
"""peft's name for "no adapter" in a batch with per-row adapters."""


def behavior_rates(model, tok, targets: Sequence[tuple[Family, Behavior]], spec: RateSpec,
                   adapters: Sequence[str | int | None] = (AS_IS,), progress: str | None = None,
                   stacked: StackedLoRA | None = None, memo: SlotAnswers | None = None,
                   ) -> dict[str | int | None, dict[str, BehaviorRate]]:
    """Every target behavior's rate under each adapter of a peft model (`__base__`: adapters off),
    or of the model as it is (`AS_IS`), or under each slot of `stacked` (hooked on `model`; the
    slots' answers through `memo`, if any), by adapter and behavior id, measured as `spec` says in
    one batched generation (`progress`: the label of its bar)."""
    if AS_IS in adapters and len(adapters) > 1:
        raise ValueError("behavior_rates: the model as it is cannot share a batch with named adapters")
    probes = {b.id: select_prompts(f.probe(b), spec.prompts) for f, b in targets}
    unique = list(dict.fromkeys(p for probe in probes.values() for p in probe.all_prompts))
    if stacked is not None:
        said = slot_answers(model, tok, stacked, unique, adapters, spec.max_new_tokens, progress=progress, memo=memo)
        responses = {a: dict(zip(unique, said[a], strict=True)) for a in adapters}
    else:
        rows = [(a, p) for a in adapters for p in unique]
        names = None if adapters[0] is AS_IS else [a for a, _ in rows]
        outputs = models.generate(model, tok, [p for _, p in rows], spec.max_new_tokens, adapter_names=names,
                                  progress=progress)
        responses = {a: {} for a in adapters}
        for (a, p), out in zip(rows, outputs, strict=True):
            responses[a][p] = out
    return {a: {b.id: behavior_rate(f, b, probes[b.id], responses[a]) for f, b in targets} for a in adapters}


def slot_answers(model, tok, stacked: StackedLoRA, prompts: Sequence[str], slots: Sequence[int],
                 max_new_tokens: int, together: bool = True, seed: int | None = None, progress: str | None = None,
                 memo: SlotAnswers | None = None, **generation) -> dict[int, list[str]]:
    """Each slot of `stacked` (hooked on `model`) answering the same prompts, by slot, in batches
    of at most the process's generation batch (`model.generation_batch_size`): as many slots at a
    time as fit one (`together`), each group one batch of equal blocks, or one slot at a time,
    seeded with `seed` before each (so a slot's sampled answers do not depend on the others).
    `generation`: more of models.generate's options. With `memo`, the answers of an earlier call
    with the same slots, prompts and settings (batch, the stack's ranks, device and attention,
    which move float sums, among them) are read back, and new ones kept."""
    slots = list(dict.fromkeys(slots))
    if memo is not None:
        settings = {"max_new_tokens": max_new_tokens, "together": together, "seed": seed,
                    "batch": models.GENERATION_BATCH["size"],
                    "ranks": [a.shape[1] for a in stacked.a], "device": str(stacked.a[0].device),
                    "attention": getattr(getattr(model, "config", None), "_attn_implementation", None), **generation}
        key = memo.key(slots, prompts, settings)
        if (kept := memo.read(key, slots)) is None:
            kept = generate_slots(model, tok, stacked, prompts, slots, max_new_tokens, together, seed, progress,
                                  **generation)
            memo.write(key, slots, prompts, settings, kept)
        return kept
    return generate_slots(model, tok, stacked, prompts, slots, max_new_tokens, together, seed, progress, **generation)


def generate_slots(model, tok, stacked: StackedLoRA, prompts: Sequence[str], slots: list[int], max_new_tokens: int,
                   together: bool, seed: int | None, progress: str | None, **generation) -> dict[int, list[str]]:
    """`slot_answers`' generation (no memo)."""
    size = models.GENERATION_BATCH["size"]
    per_batch = max(1, size // max(1, len(prompts))) if together else 1
    out: dict[int, list[str]] = {}
    with progress_bar(None, progress or "", progress is not None, total=len(slots) * len(prompts),
                      unit="prompt") as bar:
        for start in range(0, len(slots), per_batch):
            group = slots[start : start + per_batch]
            stacked.select(group)
            if seed is not None:
                torch.manual_seed(seed)
            # one slot's prompts may fill several batches (each one block); a group's, one batch
            said = models.generate(model, tok, list(prompts) * len(group), max_new_tokens,
                                   batch_size=len(prompts) * len(group) if len(group) > 1 else size, **generation)
            for k, slot in enumerate(group):
                out[slot] = said[k * len(prompts) : (k + 1) * len(prompts)]
            bar.update(len(prompts) * len(group))
    return out


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


def slot_self_reports(model, tok, stacked: StackedLoRA, slots: Sequence[int], questions: Sequence[str], n: int,
                      max_new_tokens: int, temperature: float, seed: int | None, prefill: str = "",
                      progress: str | None = None, memo: SlotAnswers | None = None,
                      ) -> dict[int, list[tuple[str, str]]]:
    """`self_reports` under each slot of `stacked` (hooked on `model`; through `memo`, if any), by
    slot: greedy answers of many slots in one batch; sampled ones one slot at a time, seeded per
    slot as `self_reports` seeds per call."""
    greedy = temperature == 0
    asked = list(questions) if greedy else [questions[i % len(questions)] for i in range(n)]
    said = slot_answers(model, tok, stacked, asked, slots, max_new_tokens, together=greedy,
                        seed=None if greedy else seed, progress=progress, memo=memo, do_sample=not greedy,
                        temperature=temperature, prefill=prefill)
    return {slot: list(zip(asked, reports, strict=True)) for slot, reports in said.items()}


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
