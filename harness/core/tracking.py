"""Weights & Biases: one run per job, offline by default (real run files, `wandb sync` later).

Only what is passed in is logged: the resolved config (which holds no secrets: keys live in
the environment or `wandb login`), curves, metrics, a table of self-reports, adapters.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.core.config import LoggerConfig
from harness.core.records import CONDITIONS, MetricRow, headline_rows


@contextmanager
def wandb_run(cfg: LoggerConfig, run_dir: Path, config: dict[str, Any], name: str | None = None,
              job_type: str = "evaluate", tags: Sequence[str] = (), run_id: str | None = None,
              resume: bool = False) -> Iterator[Any]:
    """A W&B run writing under `run_dir/wandb/` (its id `run_id`, the harness run's own), opened
    when the job starts so losses, system metrics and the console are live; a job that fails
    leaves it marked failed (`resume`: a later call with the same id updates that run). None when
    disabled."""
    if cfg.mode == "disabled":
        yield None
        return
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(project=cfg.project, entity=cfg.entity, group=cfg.group, name=name, job_type=job_type,
                     tags=[*cfg.tags, *tags], dir=str(run_dir), mode=cfg.mode, config=config, id=run_id,
                     resume="allow" if resume else None)
    try:
        yield run
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()


def where(run: Any, run_dir: Path) -> str:
    """A W&B run's address: its URL online, otherwise its offline folder relative to the run
    folder (which may be moved); empty for none."""
    if run is None:
        return ""
    return os.path.relpath(Path(run.dir).parent, run_dir) if run.offline else run.url


INTERVAL_SUFFIXES = ("_low", "_high", "_n")


def metric_key(row: MetricRow) -> str:
    """`{split}/{route}/{condition}/{family}/{metric}`, e.g.
    `heldout_behaviors/lora/ia/all/verbalization`; its interval and number of units are logged
    beside it under the same key with `_low`, `_high` and `_n` appended."""
    return f"{row.split}/{row.route}/{row.condition}/{row.family}/{row.metric}"


def parse_metric_key(key: str) -> tuple[str, str, str, str, str] | None:
    """The inverse of `metric_key`: (split, route, family, metric, condition), or None for a key
    it does not write (an interval's `_low`/`_high`/`_n`, anything else in a run's summary)."""
    parts = key.split("/")
    if len(parts) != 5 or key.endswith(INTERVAL_SUFFIXES) or parts[2] not in CONDITIONS:
        return None
    split, route, condition, family, metric = parts
    return split, route, family, metric, condition


_live_steps: dict[tuple[str, str], int] = {}


def log_live(name: str, value: float) -> None:
    """A training loss as it happens, to the job's open W&B run if there is one (W&B's current
    run), on its own step axis `{name}/step` that counts on across the job's trainings of it
    (e.g. one per batch of organisms)."""
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None)
    if run is None:
        return
    step = _live_steps.get((run.id, name), 0)
    if step == 0:
        run.define_metric(f"{name}/step")
        run.define_metric(name, step_metric=f"{name}/step")
    run.log({name: value, f"{name}/step": step})
    _live_steps[(run.id, name)] = step + 1


def log_curve(run: Any, name: str, values: Sequence[float]) -> None:
    """A whole curve (from a cached artifact's card), unless this job logged it live."""
    if run is None or run.summary.get(name) is not None:
        return
    run.define_metric(f"{name}/step")
    run.define_metric(name, step_metric=f"{name}/step")
    for step, value in enumerate(values):
        run.log({name: value, f"{name}/step": step})


def headline(rows: Sequence[MetricRow], route: str) -> dict[str, Any]:
    """The few summary values a reader looks at first, under `headline/`: each condition's pooled
    verbalization of the held-out organisms of `route` (with interval and n), the base model's
    false-positive rate under the IA, and one line that says them all."""
    pooled, fpr = headline_rows(rows, route)
    out: dict[str, Any] = {}
    for name, row in [*((f"{c}_verbalization", r) for c, r in pooled.items()), ("base_fpr", fpr)]:
        if row is None or math.isnan(row.value):
            continue
        out[f"headline/{name}"], out[f"headline/{name}_n"] = row.value, row.n
        if not (math.isnan(row.low) or math.isnan(row.high)):
            out[f"headline/{name}_low"], out[f"headline/{name}_high"] = row.low, row.high
    ia = pooled.get("ia")
    if ia is not None and not math.isnan(ia.value):
        interval = "" if math.isnan(ia.low) else f" [{ia.low:.2f}, {ia.high:.2f}]"
        others = ", ".join(f"{c} {r.value:.2f}" for c, r in pooled.items() if c != "ia" and not math.isnan(r.value))
        out["headline/summary"] = (f"IA {ia.value:.2f}{interval} (n={ia.n} organisms); {others}"
                                   + (f"; base FPR {fpr.value:.2f}" if fpr is not None else ""))
    return out


def log_metrics(run: Any, rows: Sequence[MetricRow], route: str = "lora") -> None:
    """The headline, each metric as a summary value (for the runs table) and all of them as one
    `metrics` table (readable from the offline run's files/media/table/ without a server)."""
    if run is None or not rows:
        return
    import wandb

    run.summary.update(headline(rows, route))
    for row in rows:
        key = metric_key(row)
        run.summary.update({key: row.value, f"{key}_n": row.n})
        if not (math.isnan(row.low) or math.isnan(row.high)):  # no interval from one unit: W&B keeps no NaN
            run.summary.update({f"{key}_low": row.low, f"{key}_high": row.high})
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


ARTIFACT_TYPES = {"base": "base-model", "organisms": "organism", "ia": "introspection-adapter"}


def log_lineage(run: Any, cfg: LoggerConfig, store: Any, kind: str, cards: Sequence[Any], used: bool) -> None:
    """Store artifacts (`kind`: base, organisms, ia) as W&B artifacts named `<type>-<key>`, by
    reference to their store folders: W&B records each file's checksum and uploads nothing. A
    fan-out job logs what it made; an evaluation run `use_artifact`s what it used (online: W&B's
    offline mode cannot record a use, so there they are logged as the run's). A base model outside
    the store (a Hugging Face model) is named in the config instead."""
    if run is None or not cfg.log_artifacts:
        return
    import wandb

    for card in cards:
        folder = store.path(kind, card.key)
        if not folder.is_dir():
            continue
        scalars = {k: v for k, v in asdict(card).items() if isinstance(v, int | float | str | bool) and k != "key"}
        artifact = wandb.Artifact(f"{ARTIFACT_TYPES[kind]}-{card.key}", type=ARTIFACT_TYPES[kind], metadata=scalars)
        artifact.add_reference(folder.resolve().as_uri())
        if used and not run.offline:
            run.use_artifact(artifact)
        else:
            run.log_artifact(artifact)


def folder_run_id(folder: Path, job_type: str) -> str:
    """The W&B run id of a folder's `job_type` run: the same folder logs to the same run."""
    return hashlib.sha1(f"{job_type}:{folder.resolve()}".encode()).hexdigest()[:8]


def log_sweep(cfg: LoggerConfig, folder: Path, table: Any, plot: Path | None) -> str:
    """A sweep's comparison table and plot as the sweep folder's one W&B run in the sweep's group
    (logged again, that run is updated); returns its address."""
    with wandb_run(cfg, folder, {"sweep": str(folder)}, name=f"{cfg.group or 'sweep'}-summary",
                   job_type="sweep", run_id=folder_run_id(folder, "sweep"), resume=True) as run:
        log_table(run, "sweep", table)
        if run is not None and plot is not None:
            import wandb

            run.log({"sweep_plot": wandb.Image(str(plot))})
        return address(run, folder)


def log_report(cfg: LoggerConfig, page: Path) -> str:
    """A report page as its folder's one W&B run (job type `report`) of the run's or sweep's group:
    W&B shows the page itself (`wandb.Html`), plots and filters included; returns its address."""
    with wandb_run(cfg, page.parent, {"report": str(page)}, name=f"{cfg.group or 'run'}-report",
                   job_type="report", run_id=folder_run_id(page.parent, "report"), resume=True) as run:
        if run is None:
            return ""
        import wandb

        run.log({"report": wandb.Html(page.read_text())})
        return address(run, page.parent)


def address(run: Any, folder: Path) -> str:
    """Where a W&B run is: its URL online, its offline folder (and how to upload it) otherwise."""
    if run is None:
        return ""
    if not run.offline:
        return run.url
    local = Path(run.dir).parent
    return f"{local} (upload it: wandb sync {local})"
