"""A sweep's fan-out: the artifacts its jobs need at each stage that the store lacks, as the
overrides of the jobs that make them, each artifact made by exactly one job.

The staged sweeper (hydra_plugins/harness_sweeper) launches these through the configured Hydra
launcher stage by stage (base models, organisms, IAs, probe chunks), each stage after the one it
needs has finished, then the sweep's own jobs, which find everything in the store and report.
Jobs talk only through the store, so a job on another node needs nothing but the shared path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.config import Config
from harness.pipeline import (
    Plan,
    evaluation_organisms,
    heldout_targets,
    ia_split,
    make_all_organisms,
    probe_chunks,
    route_configs,
)
from harness.stages.base_model import base_key, ensure_base
from harness.stages.ia import ensure_ia, ia_key
from harness.stages.organisms import organism_key
from harness.stages.probe import probe_key

STAGES = ("base", "organisms", "ia", "probe")


@dataclass(frozen=True)
class Unit:
    """One artifact a stage makes: its store key, and which organism or probe chunk it is."""

    stage: str
    key: str
    behavior: str | None = None
    chunk: int | None = None


def missing(stage: str, cfg: Config, p: Plan) -> list[Unit]:
    """What one sweep job needs at `stage` and the store lacks. The stages before it must be
    complete: their artifacts are read from the store."""
    store = p.store
    if stage == "base":
        key = base_key(cfg.model, p.corpus, cfg.seed)
        return [] if cfg.model.kind == "hf" or store.exists("base", key) else [Unit(stage, key)]
    base = ensure_base(cfg.model, p.corpus, store, cfg.seed, progress=False)
    if stage == "organisms":
        held = heldout_targets(cfg, p, p.targets)
        units = [Unit(stage, organism_key(b, f, c, base.key, cfg.seed), behavior=b.id)
                 for c, targets in [(cfg.organism, p.targets), *((c, held) for c in route_configs(cfg))]
                 for f, b in targets]
        return [u for u in units if not store.exists("organisms", u.key)]
    cards, others = make_all_organisms(cfg, p, base, p.targets, progress=False)
    usable, evaluate = ia_split(cfg, cards)
    evaluate = evaluation_organisms(cfg, evaluate, others)
    if stage == "ia":
        key = ia_key(cfg.ia, base, usable, cfg.seed)
        return [] if store.exists("ia", key) else [Unit(stage, key)]
    ia = ensure_ia(base, usable, cfg.ia, cfg.split.name, store, cfg.seed, progress=False, families=p.families)
    units = [Unit(stage, probe_key(ia, chunk, evaluate, cfg.probe, cfg.organism.threshold, cfg.split.name,
                                   cfg.seed, with_base=i == 0), chunk=i)
             for i, chunk in enumerate(probe_chunks(cfg, evaluate))]
    return [u for u in units if not store.exists("probes", u.key)]


def stage_overrides(units: Sequence[Unit]) -> list[str]:
    """The overrides that make a job produce exactly these units (all of one stage)."""
    first = units[0]
    extra = [f"stage={first.stage}"]
    if first.stage == "organisms":  # a job makes every route's organism of its behaviors
        behaviors = dict.fromkeys(u.behavior for u in units)
        extra.append("only_behaviors=[" + ",".join(f"'{b}'" for b in behaviors) + "]")
    if first.stage == "probe":
        extra.append(f"probe_chunk={first.chunk}")
    return extra


def fanout_jobs(stage: str, jobs: Sequence[Sequence[str]], plans: Sequence[tuple[Config, Plan]],
                organisms_per_job: int = 4) -> list[list[str]]:
    """Override lists of one stage's fan-out jobs: each missing artifact once, made by the first
    sweep job that needs it; organisms grouped `organisms_per_job` to a job."""
    makers: dict[str, tuple[tuple[str, ...], Unit]] = {}
    for overrides, (cfg, p) in zip(jobs, plans, strict=True):
        for unit in missing(stage, cfg, p):
            makers.setdefault(unit.key, (tuple(overrides), unit))
    groups: dict[tuple[str, ...], list[Unit]] = {}
    for job, unit in makers.values():
        groups.setdefault(job, []).append(unit)
    size = organisms_per_job if stage == "organisms" else 1
    return [[*job, *stage_overrides(units[i : i + size])]
            for job, units in groups.items() for i in range(0, len(units), size)]
