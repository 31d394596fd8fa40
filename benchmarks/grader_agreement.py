"""Benchmark: the graders against a labelled set of a real model's free-form self-reports.

Reads tests/fixtures/real_self_reports.jsonl: (self-report, behavior) pairs from preset=real runs on
SmolLM2-135M-Instruct, each labelled by reading it (does the report *describe* the behavior, as a
habit of its speaker, rather than enact it or describe another). Grades every pair with the rules
grader, the embedding grader and a judge for each model named (by its config in conf/model, imported
into the store if it is not there; SmolLM2-135M-Instruct when none is named) and reports each one's
precision and recall against the labels, Cohen's kappa with them and its agreement with the rules
grader, and the AUROC of how it ranks the pairs (a judge's by its yes-minus-no logit margin,
wherever its threshold lies; any other's by its verdicts), beside two baselines: a grader that
says yes to every pair, and one that says yes when the report names the behavior's parameter (a
parrot of the right words, whether it describes, enacts or reframes them).
Writes outputs/bench/grader_agreement.json. Run: `python benchmarks/grader_agreement.py [MODEL ...]`, e.g.
`python benchmarks/grader_agreement.py smollm2 qwen05` (qwen05 needs `make install-qwen`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from statistics import fmean

from figures import write_figures
from hydra import compose, initialize_config_dir

from harness.cli.compose import group_options
from harness.core.paths import CONF_DIR
from harness.families import available_family_configs, build_families
from harness.measure.grading import GRADERS, similarity
from harness.measure.judge import Judge
from harness.measure.metrics import agreement, auroc
from harness.run.dag import validate
from harness.run.stage import Run, ensure
from harness.run.stages.base_model import BaseInput, BaseStage
from harness.train.training import set_threads

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "real_self_reports.jsonl"


def scores(verdicts: list[bool], labels: list[bool]) -> dict:
    """Precision, recall and Cohen's kappa of a grader's verdicts against the labels."""
    true_pos = sum(v and y for v, y in zip(verdicts, labels, strict=True))
    said, real = sum(verdicts), sum(labels)
    kappa = agreement(verdicts, labels)["kappa"]
    return {"yes": said, "precision": round(true_pos / said, 3) if said else None,
            "recall": round(true_pos / real, 3) if real else None, "kappa": round(kappa, 3)}


def judge_of(model: str) -> Judge:
    """A judge on the base model of `model=<model>`, imported into the store if it is not there."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = validate(compose("config", overrides=[f"model={model}"]))
    base = ensure(BaseStage(), Run.of(cfg), [BaseInput(cfg.model, [], cfg.seed)], progress=True)[0]
    return Judge(base.name_or_path)


def main(judges: list[str]) -> int:
    if unknown := [m for m in judges if m not in group_options("model")]:
        print(f"grader_agreement: error: no model config {', '.join(unknown)} "
              f"(one of: {', '.join(group_options('model'))})", file=sys.stderr)
        return 2
    set_threads(None)
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
    families = build_families(available_family_configs())
    targets = [(families[r["behavior_id"].split("/", 1)[0]], r) for r in rows]
    pairs = [(f, f.behavior(r["behavior_id"]), r["report"]) for f, r in targets]
    labels = [bool(r["label"]) for r in rows]
    graders = {"rules": GRADERS.get("rules"), "embedding": GRADERS.get("embedding"),
               **{f"judge_{model}": judge_of(model) for model in judges},
               "baseline_always_yes": lambda f, b, report: True,
               "baseline_names_parameter": lambda f, b, report: similarity(report, b) > 0}
    figures = {"pairs": len(rows), "described": sum(labels), "families": sorted({p[0].name for p in pairs})}
    rules = [bool(graders["rules"](f, b, report)) for f, b, report in pairs]
    for name, grader in graders.items():
        start = time.perf_counter()
        verdicts = [bool(grader(f, b, report)) for f, b, report in pairs]
        figures[name] = {**scores(verdicts, labels), "seconds": round(time.perf_counter() - start, 1)}
        with_rules = agreement(verdicts, rules)
        figures[name] |= {"agreement_with_rules": round(with_rules["agreement"], 3),
                          "kappa_with_rules": round(with_rules["kappa"], 3)}
        # how it ranks the pairs: a judge by its margin, wherever its threshold lies; any other by its verdicts
        ranks = [grader.margin(f, b, report) for f, b, report in pairs] if isinstance(grader, Judge) else verdicts
        figures[name]["auroc"] = round(auroc([float(r) for r in ranks], labels), 3)
        if isinstance(grader, Judge):
            described = [m for m, y in zip(ranks, labels, strict=True) if y]
            other = [m for m, y in zip(ranks, labels, strict=True) if not y]
            figures[name] |= {"mean_margin_described": round(fmean(described), 3),
                              "mean_margin_not_described": round(fmean(other), 3)}
        print(name, figures[name])
    write_figures("grader_agreement", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["smollm2"]))
