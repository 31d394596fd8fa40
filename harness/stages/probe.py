"""Stage `probe`: what evaluation organisms do, and what they say about themselves.

The evaluation organisms are probed in chunks (`probe.chunk_size`), each chunk one job of a
sweep and one model in memory: the base model holding the chunk's organism adapters, the IA,
and one `organism+IA` adapter per organism (peft's `cat` combination, identical to stacking the
two), so every generation is batched across organisms with per-row adapter selection. Every
chunk measures the base model too (for base rates); the first one also reports its rows, as
the negative control. Self-reports are graded against every evaluation behavior.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from harness import models
from harness.config import ProbeConfig
from harness.families import Behavior, Family
from harness.grading import GRADERS, identify, mentioned
from harness.metrics import BASE
from harness.probing import behavior_rate, select_prompts
from harness.records import BaseModelCard, BehaviorRow, IACard, OrganismCard, ReportRow, read_jsonl, write_jsonl
from harness.stages.ia import IA, adapter_name, heldout_questions, ia_adapter, load_with_organisms
from harness.store import Store, config_key, write_json
from harness.training import progress_bar

CONDITIONS = ("ia", "no_ia", "prefill")
NO_ADAPTER = "__base__"


@dataclass
class ProbeResult:
    behaviors: list[BehaviorRow]
    reports: list[ReportRow]


def probe_key(ia: IACard, chunk: Sequence[OrganismCard], evaluate: Sequence[OrganismCard], cfg: ProbeConfig,
              threshold: float, split: str, seed: int, with_base: bool) -> str:
    return config_key("probe", ia.key, [o.key for o in chunk], [o.key for o in evaluate], asdict(cfg), threshold,
                      split, seed, with_base)


def adapter_for(condition: str, organism: OrganismCard | None) -> str:
    if condition == "ia":
        return IA if organism is None else f"{adapter_name(organism)}_ia"
    return NO_ADAPTER if organism is None else adapter_name(organism)


def measure_behaviors(model, tok, subjects: Sequence[tuple[str, OrganismCard | None]],
                      targets: Sequence[tuple[Family, Behavior]], cfg: ProbeConfig, threshold: float,
                      split: str) -> list[BehaviorRow]:
    """Every evaluation behavior's rate on every subject (greedy), one batched pass."""
    prompts = {b.id: select_prompts(f.probe(b), cfg.behavior_prompts) for f, b in targets}
    unique = sorted({p for ps in prompts.values() for p in ps})
    rows_in = [(name, p) for name, _ in subjects for p in unique]
    adapters = {name: adapter_for("no_ia", card) for name, card in subjects}
    outputs = models.generate(model, tok, [p for _, p in rows_in], cfg.max_new_tokens,
                              adapter_names=[adapters[name] for name, _ in rows_in])
    responses = dict(zip(rows_in, outputs, strict=True))
    rates = {(name, b.id): behavior_rate(f, b, prompts[b.id], {p: responses[(name, p)] for p in prompts[b.id]})
             for name, _ in subjects for f, b in targets}
    out = []
    for name, _ in subjects:
        for _, b in targets:
            rate, base_rate = rates[(name, b.id)].rate, rates[(BASE, b.id)].rate
            out.append(BehaviorRow(split=split, model=name, behavior_id=b.id, family=b.family, rate=rate,
                                   base_rate=base_rate, strength=rate - base_rate,
                                   present=rate - base_rate >= threshold, own=name == b.id,
                                   n=rates[(name, b.id)].n))
    return out


def sample_reports(model, tok, subjects: Sequence[tuple[str, OrganismCard | None]],
                   targets: Sequence[tuple[Family, Behavior]], questions: Sequence[str], cfg: ProbeConfig,
                   ia: IACard, split: str, seed: int, progress: bool) -> list[ReportRow]:
    """k sampled self-reports per subject and condition, graded against the evaluation behaviors."""
    grader = GRADERS.get(cfg.grader)
    asked = [questions[i % len(questions)] for i in range(cfg.samples)]
    rows = []
    bar = progress_bar(CONDITIONS, f"self-reports of {len(subjects)} models", progress)
    for condition in bar:
        bar.set_postfix_str(condition)
        torch.manual_seed(seed)
        rows_in = [(name, card, q) for name, card in subjects for q in asked]
        reports = models.generate(
            model, tok, [q for _, _, q in rows_in], cfg.max_new_tokens, do_sample=True,
            temperature=cfg.temperature, adapter_names=[adapter_for(condition, card) for _, card, _ in rows_in],
            prefill=cfg.prefill if condition == "prefill" else "")
        for (name, card, q), report in zip(rows_in, reports, strict=True):
            named = mentioned(report, targets, grader)
            rows.append(ReportRow(split=split, ia=ia.key, condition=condition, model=name,
                                  family=card.family if card else BASE, question=q, report=report,
                                  verbalized=card is not None and card.behavior_id in named,
                                  identified=identify(report, targets, grader), mentioned=named))
    return rows


def run_probe(base: BaseModelCard, chunk: Sequence[OrganismCard], evaluate: Sequence[OrganismCard], ia: IACard,
              families: Mapping[str, Family], cfg: ProbeConfig, threshold: float, split: str, store: Store,
              seed: int = 0, with_base: bool = True, progress: bool = True) -> ProbeResult:
    """Probe a chunk of the evaluation organisms (and the base model when `with_base`) on every
    evaluation behavior; cached in the store by config."""
    key = probe_key(ia, chunk, evaluate, cfg, threshold, split, seed, with_base)
    folder = store.path("probes", key)
    if not store.exists("probes", key):
        model = load_with_organisms(base, chunk, store)
        model.load_adapter(ia_adapter(store, ia, base), adapter_name=IA)
        for card in chunk:
            model.add_weighted_adapter([adapter_name(card), IA], [1.0, 1.0], adapter_for("ia", card),
                                       combination_type="cat")
        tok = models.load_tokenizer(base.name_or_path, base.trust_remote_code)
        targets = [(families[o.family], families[o.family].behavior(o.behavior_id)) for o in evaluate]
        subjects: list[tuple[str, OrganismCard | None]] = [(BASE, None)] + [(o.behavior_id, o) for o in chunk]
        behaviors = measure_behaviors(model, tok, subjects, targets, cfg, threshold, split)
        reported = subjects if with_base else subjects[1:]
        reports = sample_reports(model, tok, reported, targets, heldout_questions(ia), cfg, ia, split, seed, progress)
        if not with_base:
            behaviors = [r for r in behaviors if r.model != BASE]
        with store.writing("probes", key) as tmp:
            write_jsonl(tmp / "behavior_rows.jsonl", behaviors)
            write_jsonl(tmp / "self_reports.jsonl", reports)
            write_json(tmp / Store.MARKER, {"key": key, "ia": ia.key, "organisms": [o.key for o in chunk],
                                            "config": asdict(cfg), "threshold": threshold, "seed": seed,
                                            "with_base": with_base})
    return ProbeResult(behaviors=read_jsonl(folder / "behavior_rows.jsonl", BehaviorRow),
                       reports=read_jsonl(folder / "self_reports.jsonl", ReportRow))
