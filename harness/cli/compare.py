"""`harness compare`: the paired difference of two runs on the organisms both scored."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.cli.leaderboard import conditions
from harness.core.errors import ConfigError

NAME = "compare"
HELP = "the paired difference of two runs on the organisms both scored"
EXAMPLES = """\
examples:
  harness compare multirun/ia_dpo/<date>/0 multirun/ia_dpo/<date>/1   # two IAs of one sweep, B minus A
  harness compare RUN_A RUN_B --metric kind --condition no_ia        # another metric, another condition
each row: the organisms both runs scored (n), their mean under A and under B, the mean of the
per-organism differences B - A with a paired bootstrap 95% interval over organisms, and the
two-sided sign-flip permutation p-value (exact up to 16 organisms)
"""


def report_metrics() -> tuple[str, ...]:
    from harness.measure.metrics import REPORT_VALUES

    return tuple(REPORT_VALUES)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_a", type=Path, help="a run folder (A)")
    p.add_argument("run_b", type=Path, help="a run folder (B): the rows are B minus A")
    p.add_argument("--metric", default="verbalization", choices=report_metrics(),
                   help="a per-organism metric (default: verbalization)")
    p.add_argument("--condition", default="ia", choices=conditions()[:3], help="the condition (default: ia)")
    p.add_argument("--route", default="lora", help="the evaluation organisms' route (default: lora)")


def same_run(run_a: Path, run_b: Path) -> None:
    """Refuse a run compared with itself: one folder twice, or two folders of one run id (a copy)."""
    if run_a.resolve() == run_b.resolve():
        raise ConfigError(f"{run_a} and {run_b} are the same run folder: compare two runs")
    ids = [recorded_run_id(run) for run in (run_a, run_b)]
    if ids[0] and ids[0] == ids[1]:
        raise ConfigError(f"{run_a} and {run_b} hold the same run (run id {ids[0]}): compare two runs")


def recorded_run_id(run: Path) -> str | None:
    """The run id in a run folder's metrics.json, if it has a readable one (compare itself reads
    only the self-reports)."""
    from harness.report.leaderboard import RESULTS_FILE

    try:
        raw = json.loads((run / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return raw.get("run_id") if isinstance(raw, dict) and isinstance(raw.get("run_id"), str) else None


def command(a: argparse.Namespace) -> int:
    from harness.core.record_io import read_jsonl
    from harness.core.records import ReportRow
    from harness.measure.compare import compare

    reports = []
    for run in (a.run_a, a.run_b):
        if not (run / "self_reports.jsonl").is_file():
            raise ConfigError(f"{run}: no self_reports.jsonl (a run folder of `harness run`)")
    same_run(a.run_a, a.run_b)
    for run in (a.run_a, a.run_b):
        reports.append(read_jsonl(run / "self_reports.jsonl", ReportRow))
    rows = compare(*reports, metric=a.metric, condition=a.condition, route=a.route)
    print(f"{a.metric} under {a.condition} ({a.route} organisms), B minus A\n  A: {a.run_a}\n  B: {a.run_b}\n")
    print("| family | n | A | B | B - A [95% CI] | p |\n|---|---:|---:|---:|---|---:|")
    for r in rows:
        interval = f" [{r.low:+.2f}, {r.high:+.2f}]" if r.n > 1 else ""
        print(f"| {r.family} | {r.n} | {r.a:.2f} | {r.b:.2f} | {r.difference:+.2f}{interval} | {r.p:.3f} |")
    return 0
