"""Weights & Biases: one run per job, offline by default (real run files, `wandb sync` later).

Only what is passed in is logged: the resolved config (which holds no secrets: keys live in
the environment or `wandb login`), curves, metrics, a table of self-reports, adapters.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.config import LoggerConfig
from harness.records import CONDITIONS, MetricRow


@contextmanager
def wandb_run(cfg: LoggerConfig, run_dir: Path, config: dict[str, Any], name: str | None = None,
              job_type: str = "evaluate", tags: Sequence[str] = ()) -> Iterator[Any]:
    """A W&B run writing under `run_dir/wandb/`, finished even when the job fails; None when disabled."""
    if cfg.mode == "disabled":
        yield None
        return
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(project=cfg.project, entity=cfg.entity, group=cfg.group, name=name, job_type=job_type,
                     tags=list(tags), dir=str(run_dir), mode=cfg.mode, config=config)
    try:
        yield run
    finally:
        wandb.finish()


def metric_key(row: MetricRow) -> str:
    """`{split}/{family}/{metric}` for the IA; baselines get the condition as a suffix, evaluation
    organisms of routes other than lora the route (`heldout_route/full/all/verbalization`)."""
    suffix = "" if row.condition == "ia" else f"_{row.condition}"
    route = "" if row.route == "lora" else f"{row.route}/"
    return f"{row.split}/{route}{row.family}/{row.metric}{suffix}"


def parse_metric_key(key: str) -> tuple[str, str, str, str, str] | None:
    """The inverse of `metric_key`: (split, route, family, metric, condition), or None for a key
    it does not write (an interval `..._ci`, anything else in a run's summary)."""
    parts = key.split("/")
    if len(parts) not in (3, 4) or key.endswith("_ci"):
        return None
    split, *route, family, metric = parts
    condition = next((c for c in CONDITIONS[1:] if metric.endswith(f"_{c}")), "ia")
    metric = metric.removesuffix(f"_{condition}") if condition != "ia" else metric
    return split, route[0] if route else "lora", family, metric, condition


def log_curve(run: Any, name: str, values: Sequence[float]) -> None:
    if run is None:
        return
    run.define_metric(f"{name}/step")
    run.define_metric(name, step_metric=f"{name}/step")
    for step, value in enumerate(values):
        run.log({name: value, f"{name}/step": step})


def log_metrics(run: Any, rows: Sequence[MetricRow]) -> None:
    """Each metric as a summary value (for the runs table) and all of them as one `metrics` table
    (readable from the offline run's files/media/table/ without a server)."""
    if run is None or not rows:
        return
    import wandb

    for row in rows:
        run.summary[metric_key(row)] = row.value
        run.summary[metric_key(row) + "_ci"] = [row.low, row.high]
    columns = ["key", *asdict(rows[0])]
    run.log({"metrics": wandb.Table(columns=columns, data=[[metric_key(r), *asdict(r).values()] for r in rows])})


def log_record(run: Any, name: str, record: Any) -> None:
    """A card's scalar fields into the run summary, under `name/`."""
    if run is None:
        return
    for key, value in asdict(record).items():
        if isinstance(value, int | float | str | bool) or value is None:
            run.summary[f"{name}/{key}"] = value


def log_table(run: Any, name: str, rows: Sequence[Any]) -> None:
    """Dataclass rows (self-reports) or a DataFrame (organisms) as a `wandb.Table`."""
    if run is None or len(rows) == 0:
        return
    import pandas as pd
    import wandb

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame([asdict(r) for r in rows])
    frame = frame.map(lambda v: str(v) if isinstance(v, list) else v)
    run.log({name: wandb.Table(dataframe=frame)})


def log_adapter(run: Any, cfg: LoggerConfig, path: Path, name: str, kind: str) -> None:
    if run is None or not cfg.log_artifacts:
        return
    import wandb

    artifact = wandb.Artifact(name=name, type=kind)
    artifact.add_dir(str(path))
    run.log_artifact(artifact)


def log_sweep(cfg: LoggerConfig, folder: Path, table: Any, plot: Path | None) -> None:
    """A sweep's comparison table and plot as one W&B run in the sweep's group."""
    with wandb_run(cfg, folder, {"sweep": str(folder)}, name=f"{cfg.group or 'sweep'}-summary",
                   job_type="sweep") as run:
        log_table(run, "sweep", table)
        if run is not None and plot is not None:
            import wandb

            run.log({"sweep_plot": wandb.Image(str(plot))})


def log_report(cfg: LoggerConfig, folder: Path, images: Sequence[Path]) -> None:
    """A report's plots as one W&B run (job type `report`) of the run's or sweep's group."""
    with wandb_run(cfg, folder, {"report": str(folder)}, name=f"{cfg.group or 'run'}-report", job_type="report") as run:
        if run is None:
            return
        import wandb

        run.log({p.stem: wandb.Image(str(p)) for p in images})
