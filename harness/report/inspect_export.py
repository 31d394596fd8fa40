"""A run folder as Inspect AI eval logs, so that `inspect view` browses it.

One log per condition of the self-reports (`selfreport_<condition>`: each report a sample, scored
by what it contributes to each per-organism metric, the `shuffled` baseline derived as the metrics
derive it) and one of the probes (`probe`: each probe generation a sample, scored by whether the
family's scorer sees the behavior). A log's results are the run's own figures from metrics.json
(route, condition, family `all`), so the viewer's headline is the leaderboard's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from harness.core.errors import ConfigError
from harness.core.record_io import load_record, read_jsonl
from harness.core.records import MetricRow, ProbeSample, ReportRow, RunResults
from harness.core.vocabulary import BASE
from harness.measure.metrics import REPORT_VALUES, normalized, shuffled_reports

SCORER = "harness_rules"


def run_inputs(run: Path) -> tuple[RunResults, list[ReportRow], list[ProbeSample]]:
    """A run folder's metrics, self-reports and probe samples; ConfigError naming what is missing."""
    for name in ("metrics.json", "self_reports.jsonl", "probe_samples.jsonl"):
        if not (run / name).is_file():
            raise ConfigError(f"{run}: no {name} (a run folder of `harness run`)")
    return (load_record(run / "metrics.json", RunResults), read_jsonl(run / "self_reports.jsonl", ReportRow),
            read_jsonl(run / "probe_samples.jsonl", ProbeSample))


def report_scores(row: ReportRow) -> dict[str, float]:
    """What one self-report contributes to each per-organism metric (the base model's: whether it
    names any evaluation behavior, a false positive)."""
    if row.model == BASE:
        return {"false_positive": float(bool(row.mentioned))}
    return {name: v for name, value in REPORT_VALUES.items() if (v := value(row)) is not None}


def eval_log(task: str, results: RunResults, samples: list, figures: dict[str, MetricRow], metadata: dict):
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalMetric, EvalResults, EvalScore, EvalSpec, EvalStats

    scores = [EvalScore(name=name, scorer=SCORER, metrics={
        "mean": EvalMetric(name="mean", value=row.value),
        **{k: EvalMetric(name=k, value=v) for k, v in (("low", row.low), ("high", row.high)) if math.isfinite(v)},
        "n": EvalMetric(name="n", value=row.n)}, metadata={"unit": row.unit}) for name, row in figures.items()]
    started = results.started or "1970-01-01T00:00:00+00:00"
    spec = EvalSpec(created=started, task=task, run_id=results.run_id or None,
                    dataset=EvalDataset(name=f"{results.split}/{task}", samples=len(samples)),
                    model=f"harness/{results.base_model or results.base}", config=EvalConfig(),
                    metadata={"split": results.split, "ia": results.ia, "base": results.base,
                              "command": results.command, **metadata})
    return EvalLog(eval=spec, status="success", samples=samples,
                   stats=EvalStats(started_at=started, completed_at=started),
                   results=EvalResults(total_samples=len(samples), completed_samples=len(samples), scores=scores))


def report_samples(rows: Sequence[ReportRow]) -> list:
    from inspect_ai.log import EvalSample
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import Score

    said: dict[str, list[str]] = {}  # each model's reports under this condition, the base model's too
    for r in rows:
        said.setdefault(r.model, []).append(normalized(r.report))
    distinct = {model: f"{len(set(reports))} of {len(reports)}" for model, reports in said.items()}
    return [EvalSample(id=i + 1, epoch=1, input=r.question, target=r.description or "",
                       output=ModelOutput.from_content(model=r.model, content=r.report),
                       scores={k: Score(value=v, answer=r.report, explanation=f"mentions: {', '.join(r.mentioned)}"
                                        if r.mentioned else "mentions no evaluation behavior")
                               for k, v in report_scores(r).items()},
                       metadata={"organism": r.model, "family": r.family, "behavior": r.model, "route": r.route,
                                 "condition": r.condition, "ia": r.ia, "identified": r.identified,
                                 "distinct_reports": distinct[r.model]})
            for i, r in enumerate(rows)]


def probe_samples(rows: Sequence[ProbeSample]) -> list:
    from inspect_ai.log import EvalSample
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import Score

    return [EvalSample(id=i + 1, epoch=1, input=s.prompt, target=s.behavior_id,
                       output=ModelOutput.from_content(model=s.model, content=s.response),
                       scores={"shows": Score(value=float(s.shows), answer=s.response)},
                       metadata={"organism": s.model, "family": s.family, "behavior": s.behavior_id,
                                 "route": s.route, "control": s.control})
            for i, s in enumerate(rows)]


def figures_of(results: RunResults, route: str, condition: str) -> dict[str, MetricRow]:
    """The run's pooled figures (family `all`, and the base model's false-positive rate) of one
    route and condition, by metric."""
    return {("false_positive" if m.metric == "false_positive_rate" else m.metric): m for m in results.metrics
            if (m.route, m.condition) == (route, condition) and m.family in ("all", BASE)}


def log_name(results: RunResults, task: str) -> str:
    """Inspect's own file name, which `inspect view` lists: `<started>_<task>_<run id>.eval`."""
    stamp = (results.started or "1970-01-01T00:00:00+00:00").replace(":", "-")
    return f"{stamp}_{task.replace('_', '-')}_{results.run_id or 'run'}.eval"


def eval_logs(run: Path) -> dict[str, object]:
    """Every log of the run, by file name (see `log_name`; tasks `selfreport_<condition>[_<route>]`
    and `probe`)."""
    results, reports, probes = run_inputs(run)
    reports = [*reports, *shuffled_reports(reports)]
    routes = list(dict.fromkeys(r.route for r in reports if r.model != BASE)) or ["lora"]
    logs = {}
    for route in routes:
        suffix = f"_{route}" if len(routes) > 1 else ""
        mine = [r for r in reports if r.route in (route, BASE)]
        for condition in dict.fromkeys(r.condition for r in mine):
            rows = sorted((r for r in mine if r.condition == condition), key=lambda r: r.model == BASE)  # base last
            logs[log_name(results, f"selfreport_{condition}{suffix}")] = eval_log(
                f"selfreport_{condition}", results, report_samples(rows), figures_of(results, route, condition),
                {"route": route, "condition": condition})
    shown = [s for s in probes if not s.control]
    rate = MetricRow(results.split, "probe", "all", "shows", sum(s.shows for s in shown) / max(len(shown), 1),
                     float("nan"), float("nan"), len(shown), unit="samples")
    logs[log_name(results, "probe")] = eval_log("probe", results, probe_samples(probes), {"shows": rate},
                                                {"condition": "probe"})
    return logs


def export(run: Path, out: Path) -> list[Path]:
    """Write the run's eval logs into `out` (a new folder, or a previous export, replaced whole)."""
    from inspect_ai.log import write_eval_log

    from harness.core.manifest import write_folder

    logs = eval_logs(run)  # every input read and checked before anything is written

    def fill(tmp: Path) -> None:
        for name, log in logs.items():
            write_eval_log(log, str(tmp / name), format="eval")

    write_folder(out, fill, "an Inspect export of the harness")
    return [out / name for name in logs]
