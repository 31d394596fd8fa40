"""`harness leaderboard`: one table from every run's metrics.json (run folders, a sweep, a W&B
group, or W&B runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.core.errors import ConfigError

NAME = "leaderboard"
HELP = "one table from every run's metrics.json"
EXAMPLES = """\
examples:
  harness leaderboard                                  # every run under outputs/ and multirun/
  harness leaderboard multirun/2026-11-26              # every run under a folder, one table
  harness leaderboard --sweep multirun/ia_rank/2026-11-27_10-00-00   # swept values as columns + plot
  harness leaderboard --ci --sort quirks               # values with 95% intervals and n, best quirks first
  harness leaderboard --condition ia --sort verbalization          # the IA's rows, best first
  harness leaderboard --format json > board.json       # every column (csv, json): intervals, n, direction
  harness leaderboard multirun/seeds --over-seeds      # runs that differ in seed: one row, mean [t interval over seeds]
  harness leaderboard --group ia_rank-2026-11-27_10-00-00-4321    # the runs of one sweep's W&B group
  harness leaderboard --from-wandb me/introspection-harness          # from W&B (the API, or offline files)
"""


def conditions() -> tuple[str, ...]:
    from harness.core.records import CONDITIONS

    return tuple(CONDITIONS)


def leaderboard_metrics() -> tuple[str, ...]:
    from harness.report.leaderboard import METRICS

    return tuple(METRICS)


def leaderboard_formats() -> tuple[str, ...]:
    from harness.report.leaderboard import FORMATS

    return FORMATS


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folders", nargs="*", type=Path, help="folders to search (default: outputs multirun)")
    p.add_argument("--sweep", type=Path, help="a sweep's folder: swept values as columns, and a plot")
    p.add_argument("--group", help="the runs of a W&B group")
    p.add_argument("--from-wandb", metavar="ENTITY/PROJECT|DIR", help="W&B runs: the API, or offline run files")
    p.add_argument("--out", type=Path, help="also write the table (markdown, csv and json) here")
    p.add_argument("--format", choices=leaderboard_formats(), default="md",
                   help="what is printed: md (the compact table), csv or json (every column, with intervals)")
    p.add_argument("--condition", choices=conditions(), help="only the rows of one condition (the IA: ia)")
    p.add_argument("--ci", action="store_true", help="md: each value as `value [95%% interval] n=N`")
    p.add_argument("--metric", default="verbalization", choices=leaderboard_metrics(),
                   help="md: the metric shown per family (default: verbalization)")
    p.add_argument("--sort", metavar="METRIC", help="best first by a metric column (all/verbalization), a "
                   "metric (hallucination: all/hallucination) or a family (quirks: quirks/verbalization); "
                   "lower is better for hallucination, denial and the base FPR")
    p.add_argument("--over-seeds", action="store_true",
                   help="runs that differ only in seed as one row: each metric's mean over the seeds with a t "
                   "interval over them (the spread between seeds counts); csv/json: every metric and family")
    p.add_argument("--log", action="store_true",
                   help="with --sweep or --group: also log the table and plot as a W&B run (job type sweep)")


def command(a: argparse.Namespace) -> int:
    from harness.core.config import LoggerConfig
    from harness.report import leaderboard, sweep_summary

    out, sweep, group, source, args = a.out, a.sweep, a.group, a.from_wandb, [str(f) for f in a.folders]
    if a.log and sweep is None and group is None:
        raise ConfigError("--log goes with --sweep or --group (it logs their table and plot as a W&B run)")
    if a.ci and a.format != "md":
        raise ConfigError(f"--ci goes with --format md (--format {a.format} holds every interval already)")
    if a.metric != "verbalization" and a.format != "md":
        raise ConfigError(f"--metric goes with --format md (--format {a.format} holds every metric already)")
    if a.over_seeds and (sweep is not None or group is not None or source is not None or a.condition or a.sort
                         or a.ci or a.metric != "verbalization"):
        raise ConfigError("--over-seeds takes run folders and --format, --out only (it pools the runs' seeds; "
                          "--sweep writes a sweep's seeds.md itself)")
    if out is not None and sweep is None and group is None:  # a sweep's summary checks its own files
        check_out(out, seeds=a.over_seeds)
    if source is not None:
        from harness.report.wandb_runs import load_wandb_results

        if args or sweep:
            raise ConfigError("--from-wandb takes no run folders and no --sweep")
        board = leaderboard.leaderboard(load_wandb_results(source))
        if board.empty:
            raise ConfigError(f"no evaluation runs in {source}")
        return show(board, a, f"by W&B run and condition ({source})", out)
    if sweep is not None:
        if args or group:
            raise ConfigError("--sweep takes one sweep folder and no other folder or --group")
        args = [sweep]
    missing = [a for a in args if not Path(a).is_dir()]
    if missing:
        raise ConfigError(f"no such folder: {missing[0]}")
    folders = [Path(a) for a in args] or [f for f in (Path("outputs"), Path("multirun")) if f.is_dir()]
    # a plain table shows a run's results as every grader scored them (`harness agreement`), each its own row
    plain = sweep is None and group is None
    results = leaderboard.load_results(folders, progress=sys.stderr.isatty(), regraded=plain)
    if group is not None:
        results = leaderboard.in_group(results, group) or no_group(results, group)
    if not results:
        where = ", ".join(map(str, folders)) or "outputs, multirun"
        raise ConfigError(f"no {leaderboard.RESULTS_FILE} under {where}: run `harness run` first")
    if sweep is not None or group is not None:
        target = out or Path(sweep or f"multirun/{group}")
        target.mkdir(parents=True, exist_ok=True)
        logger = LoggerConfig(group=group or results[0].group) if a.log else None  # reading writes no W&B run
        board, written, logged = sweep_summary.write_sweep(results, target, logger)
        if a.format != "md" or a.ci or a.sort or a.metric != "verbalization":
            show(board, a, "by swept value and condition", out=None)  # written above
        else:
            print(f"{len(results)} runs; " + sweep_summary.sweep_text(board, written))
        if logged:
            print(f"W&B run (job type sweep): {logged}", file=sys.stdout if a.format == "md" else sys.stderr)
        return 0
    if a.over_seeds:
        return show_seeds(results, a.format, out)
    return show(leaderboard.leaderboard(results), a, "by run and condition", out)


def show_seeds(results, fmt: str, out: Path | None) -> int:
    """Print the runs pooled over their seeds (the seed summary) and write it under `out`."""
    from harness.core import manifest
    from harness.core.store import strict_dumps
    from harness.report import sweep_summary

    summary = sweep_summary.seed_summary(results)
    if summary.empty:
        raise ConfigError(f"--over-seeds: the {len(results)} runs do not differ in seed (their overrides name "
                          "no seed=...): nothing to pool")
    if fmt == "md":
        print(f"{len(results)} runs over {int(summary.n.max())} seeds: mean [95% t interval over seeds] of the "
              "pooled metrics")
        print(sweep_summary.seed_table(summary).to_markdown(index=False))
    else:
        print(summary.to_csv(index=False) if fmt == "csv" else
              strict_dumps(summary.to_dict("records"), indent=1))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        written = sweep_summary.write_seeds(results, out)
        manifest.record(out, [p.name for p in written])
        print(f"\nwritten to {', '.join(map(str, written))}", file=sys.stdout if fmt == "md" else sys.stderr)
    return 0


def show(board, a: argparse.Namespace, rows: str, out: Path | None) -> int:
    """Print a leaderboard as asked (sorted, in a format) and write it under `out`."""
    from harness.core import manifest
    from harness.report import leaderboard

    if a.condition:
        board = board[board.condition == a.condition].reset_index(drop=True)
    if a.sort:
        board = leaderboard.sort(board, a.sort)
    if a.format == "md":
        print(f"{a.metric} per family, {rows} (↓: lower is better; every column: --format csv or json)")
    print(leaderboard.render(board, a.format, a.ci, a.metric).rstrip("\n"))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        written = leaderboard.write(board, out)
        manifest.record(out, [p.name for p in written])
        print(f"\nwritten to {', '.join(map(str, written))}", file=sys.stdout if a.format == "md" else sys.stderr)
    return 0


def check_out(out: Path, seeds: bool = False) -> None:
    """`--out` must be a folder (or none yet) whose leaderboard files (`seeds`: seed summary), if
    any, the harness wrote."""
    from harness.core import manifest
    from harness.report.leaderboard import FORMATS

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    names = ["seeds.md", "seeds.csv"] if seeds else [f"leaderboard.{ext}" for ext in FORMATS]
    manifest.check_replaceable(out, names, "leaderboard --out")


def no_group(results, group: str) -> list:
    """`--group` names no group: say which groups there are (a sweep's group is its preset's name
    and the time it started, e.g. ia_rank-2026-11-28_10-00-00-4321)."""
    groups = sorted({r.group for r in results if r.group})
    near = [g for g in groups if g.startswith(f"{group}-")]
    known = f"groups of {group!r}: {', '.join(near)}" if near else f"known: {', '.join(groups) or 'none'}"
    raise ConfigError(f"no run of W&B group {group!r} ({known})")
