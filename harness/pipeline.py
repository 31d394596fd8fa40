"""The stage order: base model, organisms, IA, probe, report. Nothing else lives here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from harness import leaderboard, metrics, tracking
from harness.config import Config, OrganismConfig
from harness.errors import ConfigError
from harness.families import Behavior, Family, available_family_configs, build_families
from harness.provenance import environment
from harness.records import (
    BaseModelCard,
    ExcludedOrganism,
    IACard,
    OrganismCard,
    RunResults,
    save_record,
    write_jsonl,
)
from harness.splits import split_targets
from harness.stages.base_model import build_corpus, ensure_base
from harness.stages.ia import ensure_ia, ia_path, organism_adapter
from harness.stages.organisms import make_organisms, select_behaviors
from harness.stages.probe import ProbeResult, run_probe
from harness.store import Store, write_text
from harness.world import Chat


@dataclass
class RunResult:
    base: BaseModelCard
    organisms: list[OrganismCard]
    ia: IACard
    table: pd.DataFrame
    leaderboard: pd.DataFrame
    output_dir: Path
    wandb_dir: Path | None


def organisms_table(cards: list[OrganismCard]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "behavior": c.behavior_id,
                "family": c.family,
                "route": c.route,
                "rate": c.check.rate,
                "base_rate": c.check.base_rate,
                "strength": c.check.strength,
                "implanted": c.check.implanted,
                "loss": round(c.final_loss, 3),
                "seconds": c.seconds,
            }
            for c in cards
        ]
    )


def family_summary(table: pd.DataFrame) -> pd.DataFrame:
    return table.groupby(["family", "route"]).agg(
        organisms=("behavior", "count"),
        implanted=("implanted", "mean"),
        mean_strength=("strength", "mean"),
        mean_base_rate=("base_rate", "mean"),
    )


def tracked_config(cfg: Config, overrides: dict[str, str], ia_key: str = "") -> dict:
    """The resolved config for W&B, with each family reduced to its behavior count and the
    job's overrides (in a sweep: the swept values) under `overrides`, for the runs table."""
    plain = asdict(cfg)
    plain["families"] = {name: len(f.behaviors) for name, f in cfg.families.items()}
    plain["overrides"] = overrides
    plain["ia_key"] = ia_key
    plain["environment"] = environment()
    return plain


@dataclass
class Plan:
    """What a config asks for, derived without training anything."""

    families: dict[str, Family]
    corpus: list[Chat]
    targets: list[tuple[Family, Behavior]]
    store: Store


def plan(cfg: Config) -> Plan:
    families = build_families(cfg.families)
    # The base corpus covers every family on disk, so choosing a subset reuses the same base.
    corpus = build_corpus(build_families(available_family_configs()) | families, cfg.seed)
    return Plan(families=families, corpus=corpus, targets=select_behaviors(families, cfg.max_behaviors_per_family),
                store=Store(cfg.cache_dir))


def select_only(targets: list[tuple[Family, Behavior]], only: list[str] | None) -> list[tuple[Family, Behavior]]:
    """The targets whose organisms a job makes: all, or the `only_behaviors` of a sweep's fan-out job."""
    if only is None:
        return targets
    unknown = sorted(set(only) - {b.id for _, b in targets})
    if unknown:
        raise ConfigError(f"only_behaviors: {unknown[0]!r} is not a selected behavior")
    return [(f, b) for f, b in targets if b.id in only]


def check_selection(cfg: Config) -> None:
    """Before any work: the selected behaviors, `only_behaviors` and the split are usable."""
    targets = select_behaviors(build_families(cfg.families), cfg.max_behaviors_per_family)
    select_only(targets, cfg.only_behaviors)
    split_targets([(b.family, b.id, b) for _, b in targets], cfg.split, cfg.seed)


def ia_split(cfg: Config, cards: list[OrganismCard]) -> tuple[list[OrganismCard], list[OrganismCard]]:
    """(the IA's training organisms, the evaluation organisms of its route)."""
    train, evaluate = split_targets([(c.family, c.behavior_id, c) for c in cards], cfg.split, cfg.seed)
    usable = [c for c in train if c.check.implanted or not cfg.ia.only_implanted]
    if not usable:
        raise ConfigError("no implanted training organisms to train the IA on "
                          "(set ia.only_implanted=false to use them anyway)")
    return usable, evaluate


def route_configs(cfg: Config) -> list[OrganismConfig]:
    """The organism configs of the split's evaluation routes other than the IA's own."""
    return [replace(cfg.organism, route=r) for r in cfg.split.eval_routes if r != cfg.organism.route]


def heldout_targets(cfg: Config, p: Plan, targets: list[tuple[Family, Behavior]]) -> list[tuple[Family, Behavior]]:
    """Those of `targets` that the split evaluates on (made by every evaluation route)."""
    _, evaluate = split_targets([(b.family, b.id, b) for _, b in p.targets], cfg.split, cfg.seed)
    held = {b.id for b in evaluate}
    return [(f, b) for f, b in targets if b.id in held]


def make_all_organisms(cfg: Config, p: Plan, base: BaseModelCard, targets: list[tuple[Family, Behavior]],
                       progress: bool) -> tuple[list[OrganismCard], dict[str, list[OrganismCard]]]:
    """(organisms of the IA's route for every target, {other evaluation route: its organisms of
    the held-out targets})."""
    cards = make_organisms(targets, base, p.corpus, cfg.organism, p.store, cfg.seed, progress)
    held = heldout_targets(cfg, p, targets)
    others = {r.route: make_organisms(held, base, p.corpus, r, p.store, cfg.seed, progress) for r in route_configs(cfg)}
    return cards, others


def evaluation_organisms(cfg: Config, evaluate: list[OrganismCard], others: dict[str, list[OrganismCard]]
                         ) -> list[OrganismCard]:
    """The evaluation organisms of every route of the split, route by route."""
    return [c for r in cfg.split.eval_routes for c in (evaluate if r == cfg.organism.route else others[r])]


def probe_chunks(cfg: Config, evaluate: list[OrganismCard]) -> list[list[OrganismCard]]:
    n = cfg.probe.chunk_size
    return [evaluate[i : i + n] for i in range(0, len(evaluate), n)]


def probe_all(cfg: Config, p: Plan, base: BaseModelCard, ia: IACard, evaluate: list[OrganismCard],
              chunks: list[int], progress: bool) -> ProbeResult:
    """Probe the given chunks of the evaluation organisms (the base model with chunk 0)."""
    parts = [run_probe(base, probe_chunks(cfg, evaluate)[i], evaluate, ia, p.families, cfg.probe,
                       cfg.organism.threshold, cfg.split.name, p.store, cfg.seed, with_base=i == 0,
                       progress=progress) for i in chunks]
    return ProbeResult(behaviors=[r for part in parts for r in part.behaviors],
                       reports=[r for part in parts for r in part.reports])


def run(cfg: Config, progress: bool = True, overrides: dict[str, str] | None = None) -> RunResult | None:
    """Every stage up to `cfg.stage` in order, each reusing its cached artifact. With `stage=all`
    the results land in the run folder and W&B (`overrides`: what made this job, e.g. the swept
    values, named in its W&B run); the other stages only fill the store."""
    p = plan(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"artifacts: {p.store.root.resolve()}\nrun folder: {out.resolve()}")

    base = ensure_base(cfg.model, p.corpus, p.store, cfg.seed, progress)
    print(f"base model: {base.name_or_path} ({base.n_params:,} params, answer accuracy {base.answer_accuracy})")
    if cfg.stage == "base":
        log_stage(cfg, out, overrides, lambda wb: tracking.log_record(wb, "base", base))
        return None
    targets = select_only(p.targets, cfg.only_behaviors)
    cards, others = make_all_organisms(cfg, p, base, targets, progress)
    everything = cards + [c for route_cards in others.values() for c in route_cards]
    if cfg.stage == "organisms":
        print(f"{len(everything)} organisms in the store")
        log_stage(cfg, out, overrides, lambda wb: tracking.log_table(wb, "organisms", organisms_table(everything)))
        return None
    for card in everything:  # a damaged or foreign adapter in the store fails here, before the IA trains
        organism_adapter(card, base, p.store)
    table = organisms_table(everything)
    write_text(out / "organisms.csv", table.to_csv(index=False))
    write_text(out / "organisms.md", table.to_markdown(index=False, floatfmt=".2f") + "\n")

    usable, evaluate = ia_split(cfg, cards)
    evaluate = evaluation_organisms(cfg, evaluate, others)
    ia = ensure_ia(base, usable, cfg.ia, cfg.split.name, p.store, cfg.seed, progress, p.families)
    dpo = f", then DPO on {ia.dpo_pairs} report pairs of {len(ia.dpo_organisms)} more" if ia.dpo_organisms else ""
    print(f"IA: {ia_path(p.store, ia)} (SFT on {len(ia.organisms)} organisms{dpo}, final loss {ia.final_loss:.3f}); "
          f"evaluating on {len(evaluate)} held-out organisms")
    if cfg.stage == "ia":
        log_stage(cfg, out, overrides, lambda wb: tracking.log_curve(wb, "ia/loss", ia.losses))
        return None
    n_chunks = len(probe_chunks(cfg, evaluate))
    chunks = list(range(n_chunks)) if cfg.probe_chunk is None else [cfg.probe_chunk]
    if any(i >= n_chunks for i in chunks):
        raise ConfigError(f"probe_chunk={cfg.probe_chunk} but there are {n_chunks} chunks")
    probe = probe_all(cfg, p, base, ia, evaluate, chunks, progress)
    if cfg.stage == "probe":
        log_stage(cfg, out, overrides, lambda wb: tracking.log_table(wb, "self_reports", probe.reports))
        return None
    return report(cfg, out, base, cards, table, ia, evaluate, probe, p.store, overrides or {})


def log_stage(cfg: Config, out: Path, overrides: dict[str, str] | None, log) -> None:
    """A sweep's fan-out job as a W&B run whose job type is its stage, in the sweep's group."""
    with tracking.wandb_run(cfg.logger, out, tracked_config(cfg, overrides or {}), job_type=cfg.stage,
                            name=f"{cfg.stage}: " + " ".join(f"{k}={v}" for k, v in (overrides or {}).items()),
                            tags=[f"family:{f}" for f in cfg.families]) as wb:
        log(wb)


def report(cfg: Config, out: Path, base: BaseModelCard, cards: list[OrganismCard], table: pd.DataFrame,
           ia: IACard, evaluate: list[OrganismCard], probe: ProbeResult, store: Store,
           overrides: dict[str, str]) -> RunResult:
    """Metrics, self-reports and the leaderboard into the run folder, and one W&B run. Only the
    evaluation organisms whose implant took are scored (`probe.only_implanted`); the others are
    listed in metrics.json with their strength."""
    excluded = [ExcludedOrganism(c.behavior_id, c.route, c.check.strength) for c in evaluate
                if cfg.probe.only_implanted and not c.check.implanted]
    if excluded:
        print(f"scoring {len(evaluate) - len(excluded)} of {len(evaluate)} evaluation organisms; not implanted: "
              + ", ".join(f"{e.behavior_id} ({e.route}, strength {e.strength:.2f})" for e in excluded))
    dropped = {(e.route, e.behavior_id) for e in excluded}
    scored = ProbeResult(behaviors=[b for b in probe.behaviors if (b.route, b.model) not in dropped],
                         reports=[r for r in probe.reports if (r.route, r.model) not in dropped])
    rows = metrics.summarize(scored.reports, scored.behaviors, cfg.split.name, cfg.probe.report_threshold)
    write_jsonl(out / "self_reports.jsonl", scored.reports)
    write_jsonl(out / "behavior_rows.jsonl", scored.behaviors)
    save_record(out / leaderboard.RESULTS_FILE, RunResults(
        split=cfg.split.name, ia=ia.key, metrics=rows, base=base.key, group=cfg.logger.group,
        ia_config=asdict(cfg.ia), train_organisms=ia.organisms,
        eval_organisms=[c.behavior_id for c in evaluate if (c.route, c.behavior_id) not in dropped],
        excluded=excluded, environment=environment(),
        divergences=metrics.divergences(scored.reports, scored.behaviors, cfg.probe.report_threshold)))
    board = leaderboard.leaderboard(leaderboard.load_results([out]))
    leaderboard.write(board, out)

    name = " ".join(f"{k}={v}" for k, v in overrides.items()) or None
    with tracking.wandb_run(cfg.logger, out, tracked_config(cfg, overrides, ia.key), name=name,
                            tags=[f"family:{f}" for f in cfg.families]) as wb:
        tracking.log_curve(wb, "ia/loss", ia.losses)
        tracking.log_metrics(wb, rows)
        tracking.log_table(wb, "organisms", table)
        tracking.log_table(wb, "self_reports", scored.reports)
        tracking.log_adapter(wb, cfg.logger, ia_path(store, ia), f"ia-{ia.key}", "introspection-adapter")
        wandb_dir = Path(wb.dir).parent if wb is not None else None
    return RunResult(base=base, organisms=cards, ia=ia, table=table, leaderboard=board, output_dir=out,
                     wandb_dir=wandb_dir)
