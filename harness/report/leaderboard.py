"""Leaderboards from the results store alone: one row per adapter and condition; the organisms
table summed per family for the console."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from harness.core.errors import ConfigError, one_line
from harness.core.progress import progress_bar
from harness.core.record_io import BadRecord, from_dict
from harness.core.records import SCHEMA_VERSION, MetricRow, RunResults, headline_rows
from harness.core.store import strict_dumps, write_text
from harness.measure.metrics import METRIC_SPECS, MetricSpec

METRICS = ("verbalization", "specificity", "identification", "confession", "hallucination", "kind")
# Pooled over every family only: self-reports that deny any behavior, backdoor reports naming the trigger,
# the share of distinct reports an organism gave.
POOLED = ("denial", "trigger", "distinct")
RESULTS_FILE = "metrics.json"
REGRADED = "metrics_*.json"
"""A run's results as another grader scores them, beside its own (`harness agreement`)."""
INTERVAL = ("", "_low", "_high", "_n")
"""A metric column's own value, then its interval and number of units, as column suffixes."""
FPR = "base/false_positive_rate"


# Overrides that change where and how a job runs and logs, never its results (threads, the stage a
# sweep's job stops at, the sweep preset, W&B settings, the store, Hydra folders): not what the
# user varied.
PLUMBING = ("threads=", "stage=", "sweeps=", "logger=", "logger.", "cache_dir=", "hydra.")


def override_pairs(overrides: list[str]) -> dict[str, str]:
    """`key=value` overrides (`+`/`~` prefixes dropped; a sweep's plumbing left out) as a dict."""
    kept = [o.lstrip("+~") for o in overrides if "=" in o]
    return dict(o.split("=", 1) for o in kept if not o.startswith(PLUMBING))


def swept_values(results: list[RunResults]) -> list[dict[str, str]]:
    """Per run, the override keys whose values differ between the runs (the swept parameters)."""
    pairs = [override_pairs(r.overrides) for r in results]
    keys = [k for k in dict.fromkeys(k for p in pairs for k in p) if len({p.get(k, "") for p in pairs}) > 1]
    return [{k: p.get(k, "") for k in keys} for p in pairs]


def regraded_file(grader: str) -> str:
    """The name of a run's results as `grader` scores them."""
    return REGRADED.replace("*", grader)


def load_results(folders: Iterable[Path], progress: bool = False, regraded: bool = False) -> list[RunResults]:
    """Every run's aggregate results under the given folders (searched recursively, but not inside
    a run's own folder), with the Hydra overrides that made the run when its
    `.hydra/overrides.yaml` is there (`progress`: a bar over the runs); with `regraded`, after each
    run's own results, its results as other graders score them (`metrics_<grader>.json`)."""
    runs = [p for folder in folders for p in outermost(sorted(Path(folder).rglob(RESULTS_FILE)))]
    out = []
    with progress_bar(runs, "reading runs", progress and len(runs) > 1, unit="run") as bar:
        for path in bar:
            overrides = path.parent / ".hydra" / "overrides.yaml"
            made_by = read_overrides(overrides) if overrides.is_file() else []
            for each in [path, *(sorted(path.parent.glob(REGRADED)) if regraded else [])]:
                record = read_results(each)
                record.path, record.overrides = str(path.parent), made_by
                out.append(record)
    return out


def outermost(results_files: Sequence[Path]) -> list[Path]:
    """The results files that are not inside another run's folder (a folder inside a run's is not
    part of it; the run folder refuses one), each checked against its own parents only."""
    runs = {p.parent for p in results_files}
    return [p for p in results_files if not any(q in runs for q in p.parent.parents)]


def read_overrides(path: Path) -> list[str]:
    """A run's Hydra overrides (a YAML list of strings); ConfigError naming the file otherwise."""
    try:
        overrides = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as e:  # yaml's and omegaconf's errors, a non-UTF-8 byte
        raise ConfigError(f"{path}: not a readable overrides file ({one_line(e)})") from e
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{path}: not a list of overrides")
    return overrides


def read_results(path: Path) -> RunResults:
    """A run's metrics.json, refused (one line) when unreadable or from another results schema."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable results file ({one_line(e)})") from e
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise ConfigError(f"{path}: results schema_version {version}, but this harness reads version "
                          f"{SCHEMA_VERSION}; rerun the job to rewrite it")
    try:
        return from_dict(RunResults, raw)
    except BadRecord as e:
        raise ConfigError(f"{path}: not a readable results file ({e})") from e


def in_group(results: list[RunResults], group: str) -> list[RunResults]:
    """The runs logged to the W&B group `group` (a sweep's runs share its name)."""
    return [r for r in results if r.group == group]


def run_id(run: RunResults) -> str:
    """The run's id (its W&B run's id too); for a results file written before runs had ids, a
    hash of its folder, so the same file always gets the same id."""
    return run.run_id or hashlib.sha256(run.path.encode()).hexdigest()[:8]


def grader_label(run: RunResults) -> str:
    """`rules 1a2b3c4d`: the grader of a run's self-reports and the start of its version ("" for
    results written before graders were recorded)."""
    return f"{run.grader.get('name', '')} {str(run.grader.get('version', ''))[:8]}".strip()


BASE_COLUMNS = ("base model", "base params")
"""The leaderboard's columns for runs on different base models: its name, its parameter count."""


def base_columns(run: RunResults) -> dict[str, Any]:
    """A run's base model as leaderboard columns: its name (its store key where results name none)
    and its parameter count (None where results do not record it)."""
    return dict(zip(BASE_COLUMNS, (run.base_model or run.base[:8], run.base_params or None), strict=True))


def column(m: MetricRow) -> str | None:
    """The leaderboard column of a metric row: `{family}/{metric}`, the pooled denial and trigger
    rates, the base model's false-positive rate; None for a row the table does not show."""
    if m.family == "base":
        return FPR
    if m.metric in METRICS or (m.metric in POOLED and m.family == "all"):
        return f"{m.family}/{m.metric}"
    return None


def spec(column: str) -> MetricSpec:
    return METRIC_SPECS[column.rsplit("/", 1)[-1]]


def leaderboard(results: list[RunResults]) -> pd.DataFrame:
    """Rows: (run, route of the evaluation organisms, condition: the IA or a baseline), with the
    run's id and the values it was swept over (override keys whose values differ between the
    runs) as columns; then one column per `{family}/{metric}`, the pooled denial and trigger rates
    and the base model's false-positive rate, each followed by its `_low`, `_high` and `_n`."""
    rows = []
    graders = [grader_label(run) for run in results]
    differ = len(set(graders)) > 1  # then which grader made each row is a column
    bases = len({run.base_model or run.base for run in results}) > 1  # then the base model is a column too
    for run, values, grader in zip(results, swept_values(results), graders, strict=True):
        by_condition: dict[tuple[str, str], dict] = {}
        for m in run.metrics:
            name = column(m)
            if name is None:
                continue
            row = by_condition.setdefault((m.route, m.condition), {
                "run": run_id(run), **values, **(base_columns(run) if bases else {}),
                **({"grader": grader} if differ else {}), "ia": run.ia[:8],
                "split": run.split, "route": m.route, "condition": m.condition})
            row |= {name: m.value, f"{name}_low": m.low, f"{name}_high": m.high, f"{name}_n": m.n}
        rows += by_condition.values()
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    first = [c for c in df.columns if "/" not in c]
    families = sorted({c.split("/")[0] for c in df.columns if "/" in c} - {"all", "base"})
    ordered = [f"{f}/{m}" for f in [*families, "all"] for m in (*METRICS, *POOLED) if f"{f}/{m}" in df.columns]
    ordered += [FPR] if FPR in df.columns else []
    return df[first + [c + suffix for c in ordered for suffix in INTERVAL]]


def value_columns(df: pd.DataFrame) -> list[str]:
    """The metric columns of a leaderboard (not their intervals)."""
    return [c for c in df.columns if "/" in c and not c.endswith(INTERVAL[1:])]


def id_columns(df: pd.DataFrame) -> list[str]:
    """The run id, the swept values (and the base model and grader where runs differ in them), IA,
    split, route and condition."""
    return [c for c in df.columns if "/" not in c]


def compact(df: pd.DataFrame, ci: bool = False, metric: str = "verbalization") -> pd.DataFrame:
    """The columns a reader looks at first: the run, its swept values and condition, then
    `metric` per family and the pooled figures; with `ci`, each as `value [low, high] n=N`.
    Headers of metrics where lower is better end in an arrow."""
    keep = [c for c in id_columns(df) if c not in ("ia", "split", "base params")]
    shown = [c for c in value_columns(df) if c.endswith(f"/{metric}")
             or c in (*(f"all/{m}" for m in (*METRICS, *POOLED)), FPR)]
    out = df[keep].copy()
    for c in shown:
        out[header(c)] = cells(df, c) if ci else df[c]
    return out


def cells(df: pd.DataFrame, column: str) -> list[str]:
    """A metric column as `value [low, high] n=N` cells."""
    return [cell(*(df.at[i, column + suffix] for suffix in INTERVAL)) for i in df.index]


def header(column: str, short: bool = True) -> str:
    """A metric column's header, `↓` after those where lower is better; `short`: a family's
    verbalization is the family's name, the base model's false-positive rate `base FPR`."""
    name = column if not short else "base FPR" if column == FPR else column.replace("/verbalization", "")
    return name if spec(column).higher_is_better else f"{name} ↓"


def cell(value: float, low: float, high: float, n: float) -> str:
    """`0.61 [0.38, 0.80] n=19`; no interval from one unit, blank for a missing value."""
    if pd.isna(value):
        return ""
    interval = f" [{low:.2f}, {high:.2f}]" if not (pd.isna(low) or pd.isna(high)) else ""
    return f"{value:.2f}{interval} n={int(n)}" if not pd.isna(n) else f"{value:.2f}{interval}"


def sort(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows ordered by one metric column, best first by the metric's direction (missing last).
    `by` is a column (`all/hallucination`), or a metric or family, which mean `all/<metric>` and
    `<family>/verbalization`."""
    columns = value_columns(df)
    name = next((c for c in (by, f"all/{by}", f"{by}/verbalization") if c in columns),
                FPR if by in ("false_positive_rate", "base FPR") else None)
    if name is None or name not in columns:
        raise ConfigError(f"cannot sort by {by!r}: not a column of this table (known: {', '.join(columns)})")
    ordered = df.sort_values(name, ascending=not spec(name).higher_is_better, na_position="last", kind="stable")
    return ordered.reset_index(drop=True)


def with_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """Every metric column as `value [low, high] n=N` (the full table, for reading)."""
    shown = {header(c, short=False): cells(df, c) for c in value_columns(df)}
    return pd.concat([df[id_columns(df)], pd.DataFrame(shown, index=df.index)], axis=1)


def to_json(df: pd.DataFrame) -> str:
    """The table as JSON: each metric's direction and aggregation, then one object per row whose
    metrics are `{value, low, high, n}` (null where missing)."""
    def number(v, count: bool = False):
        if pd.isna(v):
            return None
        v = v.item() if hasattr(v, "item") else v
        return int(v) if count else v

    columns = value_columns(df)
    rows = [{**{c: number(df.at[i, c], count=c == "base params") for c in id_columns(df)},
             **{c: {k: number(df.at[i, c + s], count=k == "n")
                    for k, s in zip(("value", "low", "high", "n"), INTERVAL, strict=True)}
                for c in columns}} for i in df.index]
    metrics = {c: {"higher_is_better": spec(c).higher_is_better, "aggregation": spec(c).aggregation} for c in columns}
    return strict_dumps({"metrics": metrics, "rows": rows}, indent=1)


FORMATS = ("md", "csv", "json")


def render(df: pd.DataFrame, fmt: str = "md", ci: bool = False, metric: str = "verbalization") -> str:
    """What `harness leaderboard` prints: markdown of the compact view (`ci`: with intervals and
    n; `metric` per family), or every column as CSV or JSON."""
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return to_json(df)
    return to_markdown(compact(df, ci, metric))


def write(df: pd.DataFrame, folder: Path, stem: str = "leaderboard") -> list[Path]:
    """`{stem}.md` (every metric with its interval and n), `.csv` (every column) and `.json`."""
    md, csv, js = (folder / f"{stem}.{ext}" for ext in FORMATS)
    write_text(md, to_markdown(with_intervals(df)) + "\n")
    write_text(csv, df.to_csv(index=False))
    write_text(js, to_json(df) + "\n")
    return [md, csv, js]


def to_markdown(df: pd.DataFrame) -> str:
    """Markdown of a table, missing values blank (not `nan`)."""
    return df.astype(object).where(df.notna(), None).to_markdown(index=False, floatfmt=".2f", missingval="")


def reading(rows: Iterable[MetricRow], route: str, power: Mapping[str, Any] | None = None) -> list[str]:
    """Two lines that say what a run's pooled verbalization shows: the IA's, against the best
    baseline's and the base model's false positives, and whether its interval clears every
    baseline (none for a run without a scored IA); with `power` (RunResults.headline_power), a
    third: the smallest difference from that baseline its organisms could tell from zero."""
    pooled, fpr = headline_rows(list(rows), route)
    ia, best = pooled.get("ia"), best_baseline(rows, route)
    baselines = {c: r.value for c, r in pooled.items() if c != "ia" and not pd.isna(r.value)}
    if ia is None or pd.isna(ia.value) or best is None:
        return []
    claims = f"; the base model under the IA claims one in {fpr.value:.2f} of its {fpr.n} reports" if fpr else ""
    first = (f"Reading: with the IA, the self-reports name {ia.value:.2f} [{ia.low:.2f}, {ia.high:.2f}] of the "
             f"{ia.n} held-out organisms' own behaviors; the best baseline ({best}) {baselines[best]:.2f}{claims}.")
    if ia.n < 2 or pd.isna(ia.low):
        return [first, "One organism gives no interval: the run shows nothing either way."]
    if ia.low > baselines[best]:
        second = ("Its interval lies above every baseline: the reports carry what each organism learned, "
                  "which neither the question, the family's typical answer nor another organism's report does.")
    else:
        second = (f"Its interval reaches the {best} baseline's {baselines[best]:.2f}: this run does not show "
                  "that the IA beats it.")
    return [first, second, *power_sentence(power)]


def best_baseline(rows: Iterable[MetricRow], route: str) -> str | None:
    """The baseline condition with the highest pooled verbalization (None without one)."""
    pooled, _ = headline_rows(list(rows), route)
    baselines = {c: r.value for c, r in pooled.items() if c != "ia" and not pd.isna(r.value)}
    return max(baselines, key=baselines.get) if baselines else None


def power_sentence(power: Mapping[str, Any] | None) -> list[str]:
    """"With 8 organisms a difference from the prefill baseline below 0.31 cannot be told from zero
    (...)": what a run's headline comparison could have found (none without one)."""
    if not power or power.get("mde") is None or pd.isna(power["mde"]):
        return []
    need = f"; the observed {power['difference']:+.2f} needs {power['needed']}" if power.get("needed") else ""
    return [f"With {power['n']} organisms a difference from the {power['baseline']} baseline below "
            f"{power['mde']:.2f} cannot be told from zero (80% power, 5% two-sided){need}."]


def family_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per family and route: organisms, how many implanted, their mean strength and base rate."""
    return table.groupby(["family", "route"]).agg(
        organisms=("behavior", "count"),
        implanted=("implanted", "sum"),
        mean_strength=("strength", "mean"),
        mean_base_rate=("base_rate", "mean"),
    ).reset_index()
