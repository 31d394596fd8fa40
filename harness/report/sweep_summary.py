"""A sweep's summary, from its runs' results: the swept values as columns (`sweep.md`, `.csv`,
`.json`), each run's IA against its best baseline with what it could have found (`power.md`,
`.csv`), the plot of the IA's verbalization against the swept value, and over seeds the seed
summary (`seeds.md`, `.csv`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.core.config import LoggerConfig
from harness.core.records import RunResults
from harness.core.store import write_atomic, write_text
from harness.measure.metrics import across_seeds
from harness.measure.power import holm
from harness.report.leaderboard import (
    BASE_COLUMNS,
    FPR,
    METRICS,
    POOLED,
    compact,
    grader_label,
    id_columns,
    leaderboard,
    run_id,
    swept_values,
    to_markdown,
    value_columns,
    write,
)


def _sort_key(value: str) -> tuple:
    """Numbers in numeric order, then other values, then null (all) last."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (2 if value in ("null", "") else 1, 0.0, value)


def swept_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in id_columns(df) if c not in ("run", "ia", "split", "route", "condition", *BASE_COLUMNS)]


def sweep_table(results: list[RunResults]) -> pd.DataFrame:
    """One table for a sweep: the leaderboard's rows in order of the swept values (numbers in
    numeric order, null last), the IA's own route first."""
    df = leaderboard(results)
    keys = swept_columns(df)
    order = sorted(range(len(df)), key=lambda i: ([_sort_key(df.at[i, k]) for k in keys], df.at[i, "route"] != "lora",
                                                  df.at[i, "route"], df.at[i, "condition"]))
    return df.iloc[order].reset_index(drop=True)


def power_table(results: list[RunResults]) -> pd.DataFrame:
    """Per run, by its swept values (in the sweep table's order): the IA against its best baseline
    on the held-out organisms (RunResults.headline_power), the paired difference with its 95%
    interval, the sign-flip p-value and that p Holm-corrected over the sweep's runs, the minimum
    detectable effect (80% power, 5% two-sided) and the organisms the observed difference would
    need. Runs without a headline comparison have no row."""
    rows = [{"run": run_id(r), **values, "baseline": h["baseline"], "n": h["n"], "ia": h["b"],
             "baseline value": h["a"], "difference": h["difference"], "low": h["low"], "high": h["high"],
             "p": h["p"], "mde": h["mde"], "needed": h["needed"]}
            for r, values in zip(results, swept_values(results), strict=True) if (h := r.headline_power)]
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    df.insert(df.columns.get_loc("p") + 1, "p holm", holm([float(p) for p in df.p]))
    keys = [k for k in swept_values(results)[0] if k in df.columns]
    order = sorted(range(len(df)), key=lambda i: [_sort_key(str(df.at[i, k])) for k in keys])
    return df.iloc[order].reset_index(drop=True)


POWER_NOTE = ("the IA minus its best baseline per run, paired by organism (95% interval; p: sign flips, p holm: "
              "Holm-corrected over the runs); mde: the smallest difference the run's organisms could tell from "
              "zero (80% power, 5% two-sided); needed: the organisms the observed difference would need")


def power_view(df: pd.DataFrame) -> pd.DataFrame:
    """The power table for reading, every value as text: the difference as `+0.49 [+0.30, +0.69]`,
    p-values to 3 places, rates and the MDE to 2."""
    def fixed(values, places: int) -> list[str]:
        return ["" if pd.isna(v) else f"{v:.{places}f}" for v in values]

    return df.drop(columns=["low", "high"]).assign(
        difference=[f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for d, lo, hi in zip(df.difference, df.low, df.high,
                                                                               strict=True)],
        ia=fixed(df.ia, 2), **{"baseline value": fixed(df["baseline value"], 2), "p holm": fixed(df["p holm"], 3)},
        p=fixed(df.p, 3), mde=fixed(df.mde, 2), needed=["" if pd.isna(x) else str(int(x)) for x in df.needed])


def seed_summary(results: list[RunResults]) -> pd.DataFrame:
    """For runs that differ in `seed` (each seed a whole experiment: split, base model, organisms,
    IA): every metric's mean over the seeds with a Student t interval over them, so the spread
    between seeds is in it (`n` counts seeds), per value of the other swept parameters (and the
    grader, when the runs' results are graded differently), route, condition and family. Empty
    when the seed is not swept."""
    swept = swept_values(results)
    if not swept or "seed" not in swept[0]:
        return pd.DataFrame()
    graders = [grader_label(run) for run in results]
    differ = len(set(graders)) > 1  # a run's results as two graders score them: never pooled together
    groups: dict[tuple, list[float]] = {}
    for run, values, grader in zip(results, swept, graders, strict=True):
        others = tuple((k, v) for k, v in values.items() if k != "seed") + ((("grader", grader),) if differ else ())
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


def positions(values: list[str]) -> tuple[list[float], bool]:
    """x positions of a sweep's values, and whether the axis is logarithmic: positive numbers in a
    geometric progression (1, 4, 16, 64) sit at their value on a log axis, `null` (all) one step
    past the last; anything else is evenly spaced in the given order."""
    try:
        numbers = [float(v) for v in values if v not in ("null", "")]
    except ValueError:  # a value that is not a number: evenly spaced
        numbers = []
    ratios = {round(b / a, 6) for a, b in zip(numbers, numbers[1:], strict=False) if a > 0}
    if len(numbers) < 3 or min(numbers) <= 0 or len(ratios) != 1 or ratios == {1.0}:
        return [float(i) for i in range(len(values))], False
    step = ratios.pop()
    return [float(v) if v not in ("null", "") else numbers[-1] * step for v in values], True


def parameter_counts(df: pd.DataFrame, x: str, values: list[str]) -> list[float]:
    """x positions for a sweep over base models: each swept value's base model parameter count,
    when every value has one base model with a known count and no two share one (`model=tiny,
    tiny_3m,tiny_large`); [] otherwise (the swept values are then the axis)."""
    if "base params" not in df.columns:
        return []
    counts = [set(df.loc[df[x] == v, "base params"]) for v in values]
    if any(len(c) != 1 or pd.isna(next(iter(c))) for c in counts):
        return []
    sizes = [float(next(iter(c))) for c in counts]
    return sizes if len(set(sizes)) == len(sizes) else []


def plot_sweep(df: pd.DataFrame, path: Path) -> Path | None:
    """Verbalization against the swept parameter with 95% intervals: by condition, and per family
    under the IA; a log axis where the values are powers, or the base models' parameter counts for a
    sweep over base models. Only for a sweep over one parameter (a scaling curve); returns None
    otherwise."""
    swept = swept_columns(df)
    if len(swept) != 1:
        return None
    df = df[df.route == df.route.iloc[0]]  # the organisms of the IA's own route
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = swept[0]
    values = list(dict.fromkeys(df[x]))
    sizes = parameter_counts(df, x, values)
    xs, log = (sizes, True) if sizes else positions(values)
    ticks = [f"{v}\n{p / 1e6:.1f}M" for v, p in zip(values, sizes, strict=True)] if sizes else [
        "all" if v in ("null", "") else v for v in values]
    at = dict(zip(values, xs, strict=True))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)

    def curve(ax, rows: pd.DataFrame, name: str, label: str) -> None:
        errors = [(rows[name] - rows[f"{name}_low"]).fillna(0).clip(lower=0),
                  (rows[f"{name}_high"] - rows[name]).fillna(0).clip(lower=0)]
        ax.errorbar([at[v] for v in rows[x]], rows[name], yerr=errors, marker="o", capsize=3, label=label)

    for condition, rows in df.groupby("condition", sort=False):
        curve(left, rows, "all/verbalization", condition)
    ia = df[df.condition == "ia"]
    for name in [c for c in value_columns(df) if c.endswith("/verbalization") and not c.startswith("all/")]:
        curve(right, ia, name, name.split("/")[0])
    for ax, title in ((left, "held-out organisms, by condition"), (right, "with the IA, by family")):
        if log:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks(xs, ticks)
        ax.set_xlabel((f"{x}: base model parameters" if sizes else x) + (" (log scale)" if log else ""))
        ax.set_title(title)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    left.set_ylabel("verbalization rate (95% CI)")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


SWEEP_FILES = ("sweep.md", "sweep.csv", "sweep.json", "power.md", "power.csv", "sweep.png", "seeds.md", "seeds.csv")
"""What a sweep's summary writes into the sweep folder."""


def write_sweep(results: list[RunResults], folder: Path,
                logger: LoggerConfig | None) -> tuple[pd.DataFrame, list[Path], str]:
    """The sweep's table (markdown, CSV) and its plot, beside each other in `folder`, both also
    logged to the sweep folder's W&B run in the sweep's group (job type `sweep`) unless `logger`
    is None; over seeds, the seed summary too. Returns (the table, the files written, the W&B
    run's address or "")."""
    from harness.core import manifest, tracking

    manifest.check_replaceable(folder, SWEEP_FILES, "the sweep's summary")
    df = sweep_table(results)
    written = write(df, folder, "sweep")
    png = plot_sweep(df, folder / "sweep.png")
    logged = tracking.log_sweep(logger, folder, df, png) if logger is not None else ""
    written = [*written, *write_power(results, folder), *([png] if png else []), *write_seeds(results, folder)]
    manifest.record(folder, [p.name for p in written])
    return df, written, logged


def sweep_text(table: pd.DataFrame, written: list[Path]) -> str:
    """What a sweep prints: its compact table, the seed summary when there is one, the files."""
    text = "verbalization per family, by swept value and condition\n" + to_markdown(compact(table))
    power = [p for p in written if p.name == "power.md"]
    if power:
        text += "\n\n" + power[0].read_text()
    seeds = [p for p in written if p.name == "seeds.md"]
    if seeds:
        text += "\n\nover seeds: mean [95% t interval] of the pooled metrics (n = seeds)\n" + seeds[0].read_text()
    return text + f"\nwritten to {', '.join(map(str, written))}"


def write_power(results: list[RunResults], folder: Path) -> list[Path]:
    """`power.md` (the power table for reading, under its note) and `power.csv` (every column);
    nothing when no run has a headline comparison."""
    df = power_table(results)
    if df.empty:
        return []
    md, csv = folder / "power.md", folder / "power.csv"
    write_text(md, f"{POWER_NOTE}\n{power_view(df).to_markdown(index=False, disable_numparse=True)}\n")
    write_text(csv, df.to_csv(index=False))
    return [md, csv]


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
