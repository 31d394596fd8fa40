"""`harness agreement`: how often another grader agrees with the rules grader on a run's
self-reports, and the run's metrics as that grader scores them (beside the rules', never over
them: `metrics_<grader>.json`, which the leaderboard shows as a row of its own)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.compose import check
from harness.core.errors import ConfigError

NAME = "agreement"
HELP = ("how often another grader (the LLM judge) agrees with the rules grader on a run's self-reports, and the "
        "run's metrics as that grader scores them")
EXAMPLES = """\
examples:
  harness agreement outputs/<date>/<time> --judge-model /models/Qwen3-4B   # the judge against the rules
  harness agreement outputs/<date>/<time> --grader embedding                # the embedding grader instead
  harness leaderboard outputs/<date>/<time>      # then: the run's rows as each grader scores them
"""


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="a run folder (its self_reports.jsonl)")
    p.add_argument("--grader", default="judge", help="the grader to compare with the rules (default: judge)")
    p.add_argument("--judge-model", help="with --grader judge: a local Hugging Face causal LM")
    p.add_argument("overrides", nargs="*", help="families_dir=DIR for runs of your own families")


def command(a: argparse.Namespace) -> int:
    from harness.core import manifest
    from harness.core.record_io import read_jsonl
    from harness.core.records import ReportRow
    from harness.core.store import write_json
    from harness.families import build_families
    from harness.measure.grading import check_grader, grader_for, prepare, rules
    from harness.measure.metrics import agreement

    check_grader(a.grader, a.judge_model)
    if a.judge_model:
        from harness.lm.models import check_model_source

        check_model_source(a.judge_model)
    if a.grader == "rules":
        raise ConfigError("--grader rules: compare another grader with the rules (judge, embedding)")
    path = a.run / "self_reports.jsonl"
    if not path.is_file():
        raise ConfigError(f"{a.run}: no self_reports.jsonl (a run folder of `harness run`)")
    manifest.check_replaceable(a.run, written_names(a.grader), f"harness agreement --grader {a.grader}")
    reports = read_jsonl(path, ReportRow)
    cfg = check(a.overrides)
    families = build_families(cfg.families, cfg.model.free_text)
    scored = sorted({r.model for r in reports if r.model != "base"})
    unknown = [m for m in scored if m.split("/")[0] not in families]
    if unknown:
        raise ConfigError(f"{unknown[0]}: its family is not known here (families_dir=DIR for your own)")
    behaviors = {}
    for m in scored:
        family = families[m.split("/")[0]]
        behaviors[m] = (family, family.behavior(m))
    # each organism's reports against its own behavior; the base model's against every behavior
    pairs = [(r.report, behaviors[m]) for r in reports for m in ([r.model] if r.model != "base" else scored)]
    other = grader_for(a.grader, a.judge_model)
    prepare(other, [r for r, _ in pairs], list(behaviors.values()))
    verdicts = [(rules(f, b, r), other(f, b, r)) for r, (f, b) in pairs]
    figures = agreement([x for x, _ in verdicts], [y for _, y in verdicts])
    figures |= {"grader": a.grader, "judge_model": a.judge_model, "run": str(a.run)}
    print(f"rules vs {a.grader} on {figures['n']} (report, behavior) pairs of {a.run}: agreement "
          f"{figures['agreement']:.2f}, Cohen's kappa {figures['kappa']:.2f}; both yes {figures['both']}, rules only "
          f"{figures['only_a']}, {a.grader} only {figures['only_b']}, neither {figures['neither']}")
    out = a.run / written_names(a.grader)[0]
    write_json(out, figures)
    manifest.record(a.run, [out.name])
    print(f"written to {out}")
    written = write_regraded(a.run, reports, families, other, a.grader, a.judge_model, cfg.probe.report_threshold)
    if written:
        print(f"the run's metrics as {a.grader} scores them (beside the rules'): {', '.join(map(str, written))}")
    return 0


def written_names(grader: str) -> list[str]:
    """What `harness agreement --grader G` writes into the run folder: the agreement figures, the
    reports as G grades them, the run's results as G scores them."""
    from harness.report.leaderboard import regraded_file

    return [f"agreement_{grader}.json", f"self_reports_{grader}.jsonl", regraded_file(grader)]


def write_regraded(run: Path, reports, families, grader, name: str, judge_model: str | None,
                   threshold: float) -> list[Path]:
    """The run's self-reports graded by `grader` (`self_reports_<name>.jsonl`) and its metrics as
    they score (`metrics_<name>.json`: its results with the grader, the metrics, the headline's
    comparison and the divergences of that grading), beside the rules' files, never over them;
    nothing for a folder without the run's metrics.json and behavior_rows.jsonl. The report
    threshold and the headline's route are the run's own (its `.hydra/config.yaml`); without one,
    `threshold` and the route of its first IA row."""
    from dataclasses import replace

    from omegaconf import OmegaConf

    from harness.core import manifest
    from harness.core.record_io import read_jsonl, save_record, write_jsonl
    from harness.core.records import BehaviorRow
    from harness.measure import grading, metrics
    from harness.report import leaderboard
    from harness.run.pipeline import headline_power

    results_file, behaviors_file = run / leaderboard.RESULTS_FILE, run / "behavior_rows.jsonl"
    if not (results_file.is_file() and behaviors_file.is_file()):
        print(f"no {leaderboard.RESULTS_FILE} and behavior_rows.jsonl in {run}: its metrics are not regraded")
        return []
    results = leaderboard.read_results(results_file)
    hydra_config = run / ".hydra" / "config.yaml"  # the run's own report threshold and organisms' route
    config = OmegaConf.load(hydra_config) if hydra_config.is_file() else OmegaConf.create()
    threshold = OmegaConf.select(config, "probe.report_threshold", default=threshold)
    route = OmegaConf.select(config, "organism.route", default=None) or next(
        (m.route for m in results.metrics if m.condition == "ia"), "lora")
    evaluated = [*results.eval_organisms, *(e.behavior_id for e in results.excluded)]
    candidates = [(families[i.split("/")[0]], families[i.split("/")[0]].behavior(i))
                  for i in dict.fromkeys(evaluated) if i.split("/")[0] in families]
    regraded = grading.regrade(reports, candidates, grader)
    behaviors = read_jsonl(behaviors_file, BehaviorRow)
    rows = metrics.summarize(regraded, behaviors, results.split, threshold)
    names = written_names(name)[1:]
    write_jsonl(run / names[0], regraded)
    save_record(run / names[1], replace(
        results, metrics=rows, grader=grading.grader_record(name, judge_model, candidates),
        headline_power=headline_power(regraded, rows, route),
        divergences=metrics.divergences(regraded, behaviors, threshold)))
    manifest.record(run, names)
    return [run / n for n in names]
