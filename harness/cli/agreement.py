"""`harness agreement`: how often another grader agrees with the rules grader on a run's
self-reports."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.compose import check
from harness.core.errors import ConfigError

NAME = "agreement"
HELP = "how often another grader (the LLM judge) agrees with the rules grader on a run's self-reports"
EXAMPLES = """\
examples:
  harness agreement outputs/<date>/<time> --judge-model /models/Qwen3-4B   # the judge against the rules
  harness agreement outputs/<date>/<time> --grader embedding                # the embedding grader instead
"""


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="a run folder (its self_reports.jsonl)")
    p.add_argument("--grader", default="judge", help="the grader to compare with the rules (default: judge)")
    p.add_argument("--judge-model", help="with --grader judge: a local Hugging Face causal LM")
    p.add_argument("overrides", nargs="*", help="families_dir=DIR for runs of your own families")


def command(a: argparse.Namespace) -> int:
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
    out = a.run / f"agreement_{a.grader}.json"
    write_json(out, figures)
    print(f"written to {out}")
    return 0
