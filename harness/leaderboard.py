"""Leaderboards from the results store alone: one row per adapter and condition."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from harness.config import LoggerConfig, one_line
from harness.errors import ConfigError
from harness.metrics import across_seeds
from harness.records import SCHEMA_VERSION, RunResults, from_dict
from harness.store import write_atomic, write_text

METRICS = ("verbalization", "specificity", "identification", "confession", "hallucination")
# Pooled over every family only: self-reports that deny any behavior, backdoor reports naming the trigger.
POOLED = ("denial", "trigger")
RESULTS_FILE = "metrics.json"
FPR = "base/false_positive_rate"


def load_results(folders: Iterable[Path]) -> list[RunResults]:
    """Every run's aggregate results under the given folders (searched recursively), with the
    Hydra overrides that made the run when its `.hydra/overrides.yaml` is there."""
    out = []
    for folder in folders:
        for path in sorted(Path(folder).rglob(RESULTS_FILE)):
            record = read_results(path)
            record.path = str(path.parent)
            overrides = path.parent / ".hydra" / "overrides.yaml"
            record.overrides = list(OmegaConf.load(overrides)) if overrides.is_file() else []
            out.append(record)
    return out


def read_results(path: Path) -> RunResults:
    """A run's metrics.json, refused (one line) when unreadable or from another results schema."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable results file ({one_line(e)})") from e
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise ConfigError(f"{path}: results schema_version {version}, but this harness reads version "
                          f"{SCHEMA_VERSION}; rerun the job to rewrite it")
    return from_dict(RunResults, raw)


def in_group(results: list[RunResults], group: str) -> list[RunResults]:
    """The runs logged to the W&B group `group` (a sweep's runs share its name)."""
    return [r for r in results if r.group == group]


def leaderboard(results: list[RunResults]) -> pd.DataFrame:
    """Rows: (IA, route of the evaluation organisms, condition: the IA or a baseline); columns:
    `{family}/{metric}`, the pooled denial and trigger rates, and the base model's false-positive rate."""
    rows = []
    for run in results:
        by_condition: dict[tuple[str, str], dict] = {}
        for m in run.metrics:
            row = by_condition.setdefault((m.route, m.condition), {
                "ia": run.ia[:8], "split": run.split, "overrides": " ".join(run.overrides),
                "route": m.route, "condition": m.condition})
            if m.family == "base":
                row[FPR] = m.value
            elif m.metric in METRICS or (m.metric in POOLED and m.family == "all"):
                row[f"{m.family}/{m.metric}"] = m.value
        rows += by_condition.values()
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    first = ["ia", "split", "overrides", "route", "condition"]
    families = sorted({c.split("/")[0] for c in df.columns if "/" in c} - {"all", "base"})
    ordered = [f"{f}/{m}" for f in [*families, "all"] for m in (*METRICS, *POOLED) if f"{f}/{m}" in df.columns]
    return df[first + ordered + ([FPR] if FPR in df.columns else [])]


def compact(df: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader looks at first: the run's overrides or swept values and condition,
    then verbalization per family and the pooled figures."""
    keep = [c for c in df.columns if ("/" not in c and c not in ("ia", "split")) or c.endswith("/verbalization")
            or c in (*(f"all/{m}" for m in (*METRICS, *POOLED)), FPR)]
    if "overrides" in keep and not df["overrides"].astype(bool).any():
        keep.remove("overrides")
    return df[keep].rename(columns=lambda c: c.replace("/verbalization", "").replace(FPR, "base FPR"))


def override_pairs(overrides: list[str]) -> dict[str, str]:
    """`key=value` overrides (`+`/`~` prefixes dropped) as a dict."""
    return dict(o.lstrip("+~").split("=", 1) for o in overrides if "=" in o)


def swept_values(results: list[RunResults]) -> list[dict[str, str]]:
    """Per run, the override keys whose values differ between the runs (the swept parameters)."""
    pairs = [override_pairs(r.overrides) for r in results]
    keys = [k for k in dict.fromkeys(k for p in pairs for k in p) if len({p.get(k, "") for p in pairs}) > 1]
    return [{k: p.get(k, "") for k in keys} for p in pairs]


def _sort_key(value: str) -> tuple:
    """Numbers in numeric order, then other values, then null (all) last."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (2 if value in ("null", "") else 1, 0.0, value)


def sweep_table(results: list[RunResults]) -> pd.DataFrame:
    """One table for a sweep: the swept parameters as the first columns, then the leaderboard's."""
    swept = swept_values(results)
    keys = list(swept[0]) if swept else []
    frames = [leaderboard([run]).drop(columns="overrides").assign(**values)
              for run, values in zip(results, swept, strict=True)]
    df = pd.concat(frames, ignore_index=True)
    df = df[keys + [c for c in df.columns if c not in keys]]
    order = sorted(range(len(df)), key=lambda i: ([_sort_key(df.at[i, k]) for k in keys], df.at[i, "route"] != "lora",
                                                  df.at[i, "route"], df.at[i, "condition"]))
    return df.iloc[order].reset_index(drop=True)


def seed_summary(results: list[RunResults]) -> pd.DataFrame:
    """For a sweep over `seed` (each seed a whole experiment: split, base model, organisms, IA):
    every metric's mean over the seeds with a Student t interval (`n` counts seeds), per value of
    the other swept parameters, route, condition and family. Empty when the seed is not swept."""
    swept = swept_values(results)
    if not swept or "seed" not in swept[0]:
        return pd.DataFrame()
    groups: dict[tuple, list[float]] = {}
    for run, values in zip(results, swept, strict=True):
        others = tuple((k, v) for k, v in values.items() if k != "seed")
        for m in run.metrics:
            groups.setdefault((others, m.route, m.condition, m.family, m.metric), []).append(m.value)
    rows = []
    for (others, route, condition, family, metric), values in groups.items():
        e = across_seeds(values)
        rows.append({**dict(others), "route": route, "condition": condition, "family": family, "metric": metric,
                     "value": e.value, "low": e.low, "high": e.high, "n": e.n, "unit": e.unit})
    return pd.DataFrame(rows)


def seed_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The seed summary as one row per (other swept values, route, condition), a column per pooled
    metric and the base model's false-positive rate, each `mean [low, high]`."""
    if summary.empty:
        return summary
    pooled = summary[(summary.family == "all") | (summary.metric == "false_positive_rate")]
    cell = pooled.assign(
        column=pooled.family + "/" + pooled.metric,
        text=[f"{v:.2f} [{lo:.2f}, {hi:.2f}]" for v, lo, hi in zip(pooled.value, pooled.low, pooled.high, strict=True)])
    keys = [c for c in summary.columns if c not in ("route", "condition", "family", "metric", "value", "low", "high",
                                                    "n", "unit")] + ["route", "condition"]
    wide = cell.pivot_table(index=keys, columns="column", values="text", aggfunc="first", sort=False).reset_index()
    order = [f"all/{m}" for m in (*METRICS, *POOLED)] + [FPR]
    wide = wide[keys + [c for c in order if c in wide.columns]]
    wide.columns.name = None
    return wide.assign(seeds=int(summary.n.max()))


def plot_sweep(df: pd.DataFrame, path: Path) -> Path | None:
    """Verbalization against the swept parameter: by condition, and per family under the IA.
    Only for a sweep over one parameter (a scaling curve); returns None otherwise."""
    swept = [c for c in df.columns if c not in ("ia", "split", "route", "condition") and "/" not in c]
    if len(swept) != 1:
        return None
    df = df[df.route == df.route.iloc[0]]  # the organisms of the IA's own route
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = swept[0]
    labels = list(dict.fromkeys(df[x].map(lambda v: "all" if v in ("null", "") else v)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for condition, rows in df.groupby("condition", sort=False):
        left.plot(range(len(rows)), rows["all/verbalization"], marker="o", label=condition)
    ia = df[df.condition == "ia"]
    for column in [c for c in df.columns if c.endswith("/verbalization") and not c.startswith("all/")]:
        right.plot(range(len(ia)), ia[column], marker="o", label=column.split("/")[0])
    for ax, title in ((left, "held-out organisms, by condition"), (right, "with the IA, by family")):
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(x)
        ax.set_title(title)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
    left.set_ylabel("verbalization rate")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def write(df: pd.DataFrame, folder: Path, stem: str = "leaderboard") -> tuple[Path, Path]:
    md, csv = folder / f"{stem}.md", folder / f"{stem}.csv"
    write_text(md, to_markdown(df) + "\n")
    write_text(csv, df.to_csv(index=False))
    return md, csv


def to_markdown(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=".2f")


def write_sweep(results: list[RunResults], folder: Path,
                logger: LoggerConfig | None) -> tuple[pd.DataFrame, list[Path]]:
    """The sweep's table (markdown, CSV) and its plot, beside each other in `folder`, both also
    logged to a W&B run of the sweep's group (job type `sweep`) unless `logger` is None; over
    seeds, the seed summary too. Returns (the table, the files written)."""
    from harness import tracking

    df = sweep_table(results)
    md, csv = write(df, folder, "sweep")
    png = plot_sweep(df, folder / "sweep.png")
    if logger is not None:
        tracking.log_sweep(logger, folder, df, png)
    return df, [md, csv, *([png] if png else []), *write_seeds(results, folder)]


def sweep_text(table: pd.DataFrame, written: list[Path]) -> str:
    """What a sweep prints: its compact table, the seed summary when there is one, the files."""
    text = "verbalization per family, by swept value and condition\n" + to_markdown(compact(table))
    seeds = [p for p in written if p.name == "seeds.md"]
    if seeds:
        text += "\n\nover seeds: mean [95% t interval] of the pooled metrics (n = seeds)\n" + seeds[0].read_text()
    return text + f"\nwritten to {', '.join(map(str, written))}"


def write_seeds(results: list[RunResults], folder: Path) -> list[Path]:
    """A sweep over seeds: `seeds.md` (pooled metrics, mean [95% t interval] over seeds) and
    `seeds.csv` (every metric, family and condition); nothing when the seed is not swept."""
    summary = seed_summary(results)
    if summary.empty:
        return []
    md, csv = folder / "seeds.md", folder / "seeds.csv"
    write_text(md, seed_table(summary).to_markdown(index=False) + "\n")
    write_text(csv, summary.to_csv(index=False))
    return [md, csv]
