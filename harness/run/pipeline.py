"""Runs the DAG (harness/run/dag.py) up to the config's `stage`, then reports: metrics, self-reports,
the leaderboard and one W&B run. Nothing else lives here."""

from __future__ import annotations

import logging
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from harness.core import run_folder, tracking
from harness.core.config import Config
from harness.core.provenance import environment
from harness.core.record_io import save_record, write_jsonl
from harness.core.records import (
    BaseModelCard,
    ExcludedOrganism,
    IACard,
    MetricRow,
    OrganismCard,
    RunResults,
    headline_rows,
)
from harness.core.store import write_text
from harness.lm import models
from harness.measure import compare, grading, metrics
from harness.report import leaderboard
from harness.run.dag import ALL, execute
from harness.run.stage import Run
from harness.run.stages.organisms import organisms_table
from harness.run.stages.probe import ProbeResult, evaluation_organisms, merge

log = logging.getLogger("harness")


@dataclass
class RunResult:
    base: BaseModelCard
    organisms: list[OrganismCard]
    ia: IACard
    table: pd.DataFrame
    leaderboard: pd.DataFrame
    output_dir: Path
    wandb: str
    """Where its W&B run is (tracking.address); empty for none."""
    metrics: list[MetricRow]
    run_id: str
    scored: list[OrganismCard]
    """The evaluation organisms whose self-reports were scored."""
    headline_power: dict
    """RunResults.headline_power."""


def headline_power(reports, rows: list[MetricRow], route: str) -> dict:
    """The IA against its best baseline (the headline's comparison), paired by organism; {} when
    the run scored no IA or no baseline."""
    best = leaderboard.best_baseline(rows, route)
    if "ia" not in headline_rows(rows, route)[0] or best is None:
        return {}
    return {"baseline": best, **asdict(compare.against_baseline(reports, best, route))}


def tracked_config(cfg: Config, overrides: dict[str, str]) -> dict:
    """The resolved config for W&B, with each family reduced to its behavior count and the
    job's overrides (in a sweep: the swept values) under `overrides`, for the runs table."""
    plain = asdict(cfg)
    plain["families"] = {name: len(f.behaviors) for name, f in cfg.families.items()}
    plain["overrides"] = overrides
    plain["environment"] = environment()
    return plain


def run(cfg: Config, progress: bool = True, overrides: dict[str, str] | None = None,
        command: str = "") -> RunResult | None:
    """Every stage of the DAG up to `cfg.stage` in order, each reusing its cached artifacts, under
    one W&B run opened now (live losses; job type `evaluate`, or the stage of a sweep's fan-out
    job). With `stage=all` the results land in the run folder and W&B (`overrides`: what made this
    job, e.g. the swept values, named in its W&B run); the other stages only fill the store."""
    r = Run.of(cfg)
    models.set_generation_batch(cfg.model.generation_batch_size)
    out = Path(cfg.output_dir)
    overrides = overrides or {}
    identity = RunIdentity.new(command)
    log.info(f"artifacts: {r.store.root.resolve()}\nrun folder: {out.resolve()}")
    if r.left_out:
        log.info(f"left out on model.kind={cfg.model.kind}: {len(r.left_out)} behaviors whose evidence is the tiny "
                 f"world's own answers, which free text does not give ({', '.join(r.left_out[:3])}, ...)")
    job_type = "evaluate" if cfg.stage == ALL else cfg.stage
    name = " ".join(f"{k}={v}" for k, v in overrides.items()) or None
    with run_folder.owned(out), \
            tracking.wandb_run(cfg.logger, out, tracked_config(cfg, overrides) | {"run_id": identity.run_id},
                               name=f"{cfg.stage}: {name or ''}".strip() if job_type != "evaluate" else name,
                               job_type=job_type, tags=[f"family:{f}" for f in cfg.families],
                               run_id=identity.run_id) as wb:
        done = {}
        for stage, artifacts in execute(r, progress):
            done[stage.name] = artifacts
            log.info(stage.summary(r, done))
            if stage.name == cfg.stage:  # a sweep's fan-out job: its artifacts are in the store
                stage.track(wb, artifacts)
                if stage.kind in tracking.ARTIFACT_TYPES:
                    tracking.log_lineage(wb, cfg.logger, r.store, stage.kind, artifacts, used=False)
                return None
            if stage.name == "organisms":  # visible before the IA trains
                table = organisms_table(artifacts)
                write_text(out / "organisms.csv", table.to_csv(index=False))
                write_text(out / "organisms.md", table.to_markdown(index=False, floatfmt=".2f") + "\n")
        for kind in tracking.ARTIFACT_TYPES:  # what this evaluation used
            tracking.log_lineage(wb, cfg.logger, r.store, kind, done[kind], used=True)
        (base,), (ia,) = done["base"], done["ia"]
        own = list(r.own_route(done["organisms"]).values())
        return report(cfg, out, base, own, organisms_table(done["organisms"]), ia,
                      evaluation_organisms(r, done["organisms"]), merge(done["probe"]), identity, wb,
                      grading.grader_record(cfg.probe.grader, cfg.probe.judge_model, r.targets))


def base_name(card: BaseModelCard) -> str:
    """`embedded tiny Llama (1.0M parameters)`, `SmolLM2-135M-Instruct.Q4_1.gguf (134.5M parameters)`,
    or the Hugging Face model's name or path."""
    if card.kind == "tiny":
        return f"embedded tiny Llama ({card.n_params / 1e6:.1f}M parameters)"
    if card.kind == "gguf":
        return f"{Path(card.config['gguf_file']).name} ({card.n_params / 1e6:.1f}M parameters)"
    return card.name_or_path


@dataclass(frozen=True)
class RunIdentity:
    """What tells one run from another: a random id (also its W&B run's), the command, the start."""

    run_id: str
    command: str
    started: str

    @classmethod
    def new(cls, command: str) -> RunIdentity:
        return cls(secrets.token_hex(4), command, datetime.now(UTC).isoformat(timespec="seconds"))


def report(cfg: Config, out: Path, base: BaseModelCard, cards: list[OrganismCard], table: pd.DataFrame,
           ia: IACard, evaluate: list[OrganismCard], probe: ProbeResult, identity: RunIdentity,
           wb, grader: dict) -> RunResult:
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
                         reports=[r for r in probe.reports if (r.route, r.model) not in dropped],
                         samples=[s for s in probe.samples if (s.route, s.model) not in dropped])
    rows = metrics.summarize(scored.reports, scored.behaviors, cfg.split.name, cfg.probe.report_threshold)
    power = headline_power(scored.reports, rows, cfg.organism.route)
    write_jsonl(out / "self_reports.jsonl", scored.reports)
    write_jsonl(out / "behavior_rows.jsonl", scored.behaviors)
    write_jsonl(out / "probe_samples.jsonl", scored.samples)
    save_record(out / leaderboard.RESULTS_FILE, RunResults(
        split=cfg.split.name, ia=ia.key, metrics=rows, base=base.key, group=cfg.logger.group,
        ia_config=asdict(cfg.ia), train_organisms=ia.organisms,
        eval_organisms=[c.behavior_id for c in evaluate if (c.route, c.behavior_id) not in dropped],
        excluded=excluded, environment=environment(), run_id=identity.run_id, command=identity.command,
        started=identity.started, base_model=base_name(base), base_params=base.n_params, seed=cfg.seed,
        wandb=tracking.where(wb, out),
        divergences=metrics.divergences(scored.reports, scored.behaviors, cfg.probe.report_threshold),
        distinct_reports=metrics.distinct_table(scored.reports), headline_power=power, grader=grader,
        decoding={"temperature": cfg.probe.temperature, "max_new_tokens": cfg.probe.max_new_tokens,
                  **({"samples": cfg.probe.samples} if cfg.probe.temperature > 0 else {})}))
    board = leaderboard.leaderboard(leaderboard.load_results([out]))
    leaderboard.write(board, out)

    if wb is not None:
        wb.config.update({"ia_key": ia.key}, allow_val_change=True)
    tracking.log_curve(wb, "ia/loss", ia.losses)
    tracking.log_metrics(wb, rows, cfg.organism.route)
    tracking.log_table(wb, "organisms", table)
    tracking.log_table(wb, "self_reports", scored.reports)
    return RunResult(base=base, organisms=cards, ia=ia, table=table, leaderboard=board, output_dir=out, metrics=rows,
                     wandb=tracking.address(wb, out), run_id=identity.run_id,
                     scored=[c for c in evaluate if (c.route, c.behavior_id) not in dropped], headline_power=power)
