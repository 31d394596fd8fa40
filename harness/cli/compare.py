"""`harness compare`: the paired difference of two runs on the organisms both scored."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict
from pathlib import Path

from harness.cli.leaderboard import conditions
from harness.core.errors import ConfigError

NAME = "compare"
HELP = "the paired difference of two runs on the organisms both scored"
EXAMPLES = """\
examples:
  harness compare multirun/ia_dpo/<date>/0 multirun/ia_dpo/<date>/1   # two IAs of one sweep, B minus A
  harness compare RUN_A RUN_B --metric kind --condition no_ia        # another metric, another condition
  harness compare RUN_A RUN_B --format json --correction bh         # every field; Benjamini-Hochberg
  harness compare A_SEED0 B_SEED0 A_SEED1 B_SEED1 A_SEED2 B_SEED2   # pairs pooled, each seed a cluster
  harness compare outputs/smollm2 outputs/qwen05                     # two base models, paired by behavior
each row: the organisms both runs scored (n), their mean under A and under B, the mean of the
per-organism differences B - A with a paired bootstrap 95% interval over organisms, the
two-sided sign-flip permutation p-value (exact up to 16 organisms) and, for the family rows, the
p-values corrected for testing the families together (Holm's, or --correction bh); MDE: the
smallest true difference the n organisms find with 80% power at 5% two-sided (the paired t-test's
power, from the spread of the differences), and the organisms the observed difference would need;
with several pairs, the differences of every pair pooled with a cluster-robust t interval and
p-value (each pair a cluster: the spread between seeds counts) and the MDE at that error
"""


ACROSS = "on different base models: each pair is one behavior both runs held out and scored"


def report_metrics() -> tuple[str, ...]:
    from harness.measure.metrics import REPORT_VALUES

    return tuple(REPORT_VALUES)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                   help="two run folders A B (the rows are B minus A), or pairs A1 B1 A2 B2 ... (two recipes at "
                        "several seeds: pooled, each pair a cluster)")
    p.add_argument("--metric", default="verbalization", choices=report_metrics(),
                   help="a per-organism metric (default: verbalization)")
    p.add_argument("--condition", default="ia", choices=conditions()[:3], help="the condition (default: ia)")
    p.add_argument("--route", default="lora", help="the evaluation organisms' route (default: lora)")
    p.add_argument("--correction", default="holm", choices=("holm", "bh"),
                   help="how the family rows' p-values are corrected: holm (family-wise error, default) or bh "
                        "(Benjamini-Hochberg, false discovery rate)")
    p.add_argument("--format", default="md", choices=("md", "json"), help="md (the table, default) or json")
    p.add_argument("--any-grader", action="store_true",
                   help="compare runs whose self-reports were graded differently (refused otherwise)")


def check_pair(run_a: Path, run_b: Path, any_grader: bool) -> None:
    """Refuse a run compared with itself (one folder twice, or two folders of one run id: a copy),
    and two runs whose self-reports were graded differently (unless `any_grader`)."""
    if run_a.resolve() == run_b.resolve():
        raise ConfigError(f"{run_a} and {run_b} are the same run folder: compare two runs")
    a, b = recorded(run_a), recorded(run_b)
    if a.get("run_id") and a.get("run_id") == b.get("run_id"):
        raise ConfigError(f"{run_a} and {run_b} hold the same run (run id {a['run_id']}): compare two runs")
    if a.get("grader") and b.get("grader") and a["grader"] != b["grader"] and not any_grader:
        raise ConfigError(f"the runs were graded differently ({grader_name(a['grader'])} against "
                          f"{grader_name(b['grader'])}): their differences would be the graders'; add --any-grader "
                          "to compare them anyway")


def grader_name(grader: dict) -> str:
    return f"{grader.get('name')} {grader.get('version', '')[:8]}".strip()


def recorded(run: Path) -> dict:
    """A run folder's metrics.json as written, or {} when it has no readable one (compare itself
    reads only the self-reports)."""
    from harness.report.leaderboard import RESULTS_FILE

    try:
        raw = json.loads((run / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def command(a: argparse.Namespace) -> int:
    from harness.core.record_io import read_jsonl
    from harness.core.records import ReportRow
    from harness.core.store import strict_dumps
    from harness.measure.compare import compare_pairs

    if len(a.runs) < 2 or len(a.runs) % 2:
        raise ConfigError(f"compare takes run folders in pairs (A B, or A1 B1 A2 B2 ...), got {len(a.runs)}")
    for run in a.runs:
        if not (run / "self_reports.jsonl").is_file():
            raise ConfigError(f"{run}: no self_reports.jsonl (a run folder of `harness run`)")
    pairs = list(zip(a.runs[::2], a.runs[1::2], strict=True))
    for run_a, run_b in pairs:
        check_pair(run_a, run_b, a.any_grader)
    reports = [tuple(read_jsonl(run / "self_reports.jsonl", ReportRow) for run in pair) for pair in pairs]
    rows = compare_pairs(reports, metric=a.metric, condition=a.condition, route=a.route, correction=a.correction)
    bases = {run: recorded(run).get("base_model", "") for run in a.runs}
    across = len(set(bases.values())) > 1  # organisms of different base models: paired by behavior
    if a.format == "json":
        print(strict_dumps({"metric": a.metric, "condition": a.condition, "route": a.route, "correction": a.correction,
                            "pairs": [[str(x), str(y)] for x, y in pairs],
                            "base_models": [[bases[x], bases[y]] for x, y in pairs], "rows": [asdict(r) for r in rows]},
                           indent=2))
        return 0

    def named(run: Path) -> str:
        return f"{run} ({bases[run] or 'base model not recorded'})" if across else str(run)

    print(f"{a.metric} under {a.condition} ({a.route} organisms), B minus A"
          + "".join(f"\n  A: {named(x)}\n  B: {named(y)}" for x, y in pairs)
          + (f"\n  {ACROSS}" if across else "") + "\n")
    print(f"| family | n | A | B | B - A [95% CI] | p | p ({a.correction}) | MDE | n needed |\n"
          "|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        interval = f" [{r.low:+.2f}, {r.high:+.2f}]" if not math.isnan(r.low) else ""
        print(f"| {r.family} | {r.n} | {r.a:.2f} | {r.b:.2f} | {r.difference:+.2f}{interval} | {cell(r.p, '.3f')} | "
              f"{cell(r.p_adjusted, '.3f')} | {cell(r.mde, '.2f')} | {r.needed if r.needed else ''} |")
    print("\n" + reading(rows, a.correction))
    return 0


def cell(value: float, spec: str) -> str:
    return "" if math.isnan(value) else format(value, spec)


def reading(rows, correction: str) -> str:
    """What the table can and cannot say: the pooled row's smallest detectable difference and the
    organisms its observed difference would need, and which family rows survive the correction."""
    pooled, families = rows[0], rows[1:]
    said = []
    if not math.isnan(pooled.mde):
        need = (f"; the observed {pooled.difference:+.2f} would need {pooled.needed} organisms" if pooled.needed
                else "; the observed difference is zero" if not pooled.difference else "")
        over = f"{pooled.n} organisms" + (f" in {pooled.clusters} pairs of runs" if pooled.clusters > 1 else "")
        said.append(f"With {over} a difference below {pooled.mde:.2f} cannot be told from zero "
                    f"(80% power, 5% two-sided){need}.")
    name = {"holm": "Holm's correction", "bh": "Benjamini-Hochberg's correction"}[correction]
    survive = [r.family for r in families if r.p_adjusted < 0.05]
    said.append(f"Families whose difference survives {name} over {len(families)} families at 5%: "
                f"{', '.join(survive) or 'none'}.")
    return " ".join(said)
