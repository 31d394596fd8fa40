"""Runs the DAG (harness/dag.py) up to the config's `stage`, then reports: metrics, self-reports,
the leaderboard and one W&B run. Nothing else lives here."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from harness import leaderboard, metrics, tracking
from harness.adapters import ia_path
from harness.config import Config
from harness.dag import execute
from harness.provenance import environment
from harness.records import (
    BaseModelCard,
    ExcludedOrganism,
    IACard,
    MetricRow,
    OrganismCard,
    RunResults,
    save_record,
    write_jsonl,
)
from harness.stage import Run
from harness.stages.organisms import organisms_table
from harness.stages.probe import ProbeResult, evaluation_organisms, merge
from harness.store import Store, write_text

log = logging.getLogger("harness")


@dataclass
class RunResult:
    base: BaseModelCard
    organisms: list[OrganismCard]
    ia: IACard
    table: pd.DataFrame
    leaderboard: pd.DataFrame
    output_dir: Path
    wandb_dir: Path | None
    metrics: list[MetricRow]


def tracked_config(cfg: Config, overrides: dict[str, str], ia_key: str = "") -> dict:
    """The resolved config for W&B, with each family reduced to its behavior count and the
    job's overrides (in a sweep: the swept values) under `overrides`, for the runs table."""
    plain = asdict(cfg)
    plain["families"] = {name: len(f.behaviors) for name, f in cfg.families.items()}
    plain["overrides"] = overrides
    plain["ia_key"] = ia_key
    plain["environment"] = environment()
    return plain


def run(cfg: Config, progress: bool = True, overrides: dict[str, str] | None = None) -> RunResult | None:
    """Every stage of the DAG up to `cfg.stage` in order, each reusing its cached artifacts. With
    `stage=all` the results land in the run folder and W&B (`overrides`: what made this job, e.g.
    the swept values, named in its W&B run); the other stages only fill the store."""
    r = Run.of(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log.info(f"artifacts: {r.store.root.resolve()}\nrun folder: {out.resolve()}")
    done = {}
    for stage, artifacts in execute(r, progress):
        done[stage.name] = artifacts
        log.info(stage.summary(r, done))
        if stage.name == cfg.stage:  # a sweep's fan-out job: its artifacts are in the store
            log_stage(cfg, out, overrides, lambda wb, s=stage, a=artifacts: s.track(wb, a))
            return None
        if stage.name == "organisms":  # visible before the IA trains
            table = organisms_table(artifacts)
            write_text(out / "organisms.csv", table.to_csv(index=False))
            write_text(out / "organisms.md", table.to_markdown(index=False, floatfmt=".2f") + "\n")
    (base,), (ia,) = done["base"], done["ia"]
    own = [c for c in done["organisms"] if c.route == cfg.organism.route]
    return report(cfg, out, base, own, organisms_table(done["organisms"]), ia,
                  evaluation_organisms(r, done["organisms"]), merge(done["probe"]), r.store, overrides or {})


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
        log.info(f"scoring {len(evaluate) - len(excluded)} of {len(evaluate)} evaluation organisms; not implanted: "
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
    return RunResult(base=base, organisms=cards, ia=ia, table=table, leaderboard=board, output_dir=out, metrics=rows,
                     wandb_dir=wandb_dir)
