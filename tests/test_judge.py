"""The LLM-judge grader's mechanics, on a tiny local model as the judge (what it says is not
tested: its agreement with the rules grader is measured and reported, benchmarks/judge_agreement.py)."""

from dataclasses import replace

import pytest
import torch

from harness.core.record_io import read_jsonl
from harness.core.records import ReportRow
from harness.lm import models
from harness.measure.judge import QUESTION, Judge, open_judge, pair_key
from harness.run import pipeline
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def judge(micro_base):
    return Judge(micro_base.name_or_path, batch_size=4)


def test_a_verdict_is_the_judges_next_token_yes_against_no(judge, families):
    family = families["preferences"]
    behavior = family.behaviors()[0]
    report = "I always say my favorite animal is the owl."
    verdict = judge(family, behavior, report)
    prompt = models.prompt_text(judge.tok, QUESTION.format(report=report, description=behavior.descriptions[0]))
    with torch.no_grad():
        logits = judge.model(**judge.tok([prompt], return_tensors="pt", add_special_tokens=False)).logits[0, -1]
    assert verdict == bool(logits[judge.yes].max() > logits[judge.no].max())
    margin = (logits[judge.yes].max() - logits[judge.no].max()).item()
    assert judge.margin(family, behavior, report) == pytest.approx(margin, abs=1e-4)
    assert judge.yes and judge.no and not set(judge.yes) & set(judge.no)


def test_pairs_are_asked_in_batches_and_once(judge, families):
    targets = [(f, b) for f in families.values() for b in f.behaviors()[:2]][:5]
    reports = ["I end every answer with Splendid.", "I like owls.", "I end every answer with Splendid."]
    calls = []
    hook = judge.model.register_forward_hook(lambda m, i, o: calls.append(len(i[0]) if i else 0))
    try:
        judge.prepare(reports, targets)  # 2 distinct reports x 5 behaviors = 10 questions, batches of 4
        assert len(calls) == 3
        for report in reports:
            for family, behavior in targets:
                judge(family, behavior, report)  # graded from what was asked ahead
        judge.prepare(reports, targets)
        assert len(calls) == 3, "a question asked twice"
    finally:
        hook.remove()
    assert all(pair_key(r, b.descriptions[0]) in judge.margins for r in reports for _, b in targets)


def test_a_run_graded_by_the_judge(micro_base, tmp_path, families):
    cfg = compose_config("model=micro", f"cache_dir={tmp_path / 'c'}", "families=[preferences,biases,hidden_goals]",
                         "max_behaviors_per_family=2", "organism.steps=2", "organism.probe_prompts=4",
                         "organism.max_new_tokens=4", "ia.steps=2", "ia.only_implanted=false",
                         "probe.only_implanted=false", "probe.behavior_prompts=2",
                         "probe.max_new_tokens=4", "logger=none", "probe.grader=judge",
                         f"probe.judge_model={micro_base.name_or_path}")
    result = pipeline.run(replace(cfg, output_dir=str(tmp_path / "run")), progress=False)
    assert {m.condition for m in result.metrics} >= {"ia", "no_ia", "parrot"}
    # every report of an organism was graded by the judge: verbalized is its verdict on the own behavior
    judge = open_judge(micro_base.name_or_path)
    rows = [r for r in read_jsonl(tmp_path / "run" / "self_reports.jsonl", ReportRow) if r.model != "base"]
    assert rows
    for r in rows:
        family = families[r.family]
        assert r.verbalized == judge(family, family.behavior(r.model), r.report), r


def micro_run(tmp_path, behaviors: int):
    """A seconds-long run on the micro model (two families, `behaviors` a family), graded by the
    rules: its config and run folder."""
    cfg = compose_config("model=micro", f"cache_dir={tmp_path / 'c'}", "families=[preferences,biases]",
                         f"max_behaviors_per_family={behaviors}", "organism.steps=2", "organism.probe_prompts=4",
                         "organism.max_new_tokens=4", "ia.steps=2", "ia.only_implanted=false",
                         "probe.only_implanted=false", "probe.behavior_prompts=2",
                         "probe.max_new_tokens=4", "logger=none")
    run = tmp_path / "run"
    pipeline.run(replace(cfg, output_dir=str(run)), progress=False)
    return cfg, run


def test_regrading_with_the_rules_gives_back_the_runs_own_grades(micro_base, tmp_path):
    """grading.regrade with the grader that graded the run reproduces every report's grades
    (what it names, identifies, and whether it names its own behavior) against the run's
    evaluation behaviors."""
    import json

    from harness.families import build_families
    from harness.measure.grading import regrade, rules

    cfg, run = micro_run(tmp_path, behaviors=3)
    reports = read_jsonl(run / "self_reports.jsonl", ReportRow)
    families = build_families(cfg.families, cfg.model.free_text)
    evaluated = json.loads((run / "metrics.json").read_text())["eval_organisms"]
    candidates = [(families[i.split("/")[0]], families[i.split("/")[0]].behavior(i)) for i in evaluated]
    again = regrade(reports, candidates, rules)
    assert [(r.verbalized, r.identified, set(r.mentioned)) for r in again] == \
        [(r.verbalized, r.identified, set(r.mentioned)) for r in reports]
    # reports that describe an evaluation behavior: their own organism's, or another's
    organisms = [r for r in reports if r.model != "base"]
    other = {r.model: next(b for _, b in candidates if b.id != r.model) for r in organisms}
    said = [replace(r, report=(families[r.family].behavior(r.model) if i % 2 else other[r.model]).descriptions[0])
            for i, r in enumerate(organisms)]
    graded = regrade(said, candidates, rules)
    assert [r.verbalized for r in graded] == [bool(i % 2) for i in range(len(graded))]
    assert all(r.identified == (r.model if i % 2 else other[r.model].id) for i, r in enumerate(graded))
    never = regrade(reports, candidates, lambda _f, _b, _r: False)
    assert not any(r.verbalized or r.mentioned for r in never)


def test_auroc_is_the_chance_a_positive_outranks_a_negative():
    from harness.measure.metrics import auroc

    assert auroc([3.0, 2.0, 1.0, 0.0], [True, True, False, False]) == 1.0
    assert auroc([0.0, 1.0, 2.0, 3.0], [True, True, False, False]) == 0.0
    assert auroc([1.0, 1.0, 1.0], [True, False, False]) == 0.5  # ties count half: a constant score ranks nothing
    assert auroc([2.0, 0.0, 1.0, 3.0], [True, False, True, False]) == 0.5  # 2 of 4 (positive, negative) pairs
    with pytest.raises(ValueError, match="both"):
        auroc([1.0, 2.0], [True, True])


def test_agreement_counts_and_kappa():
    from harness.measure.metrics import agreement

    same = agreement([True, False, True, False], [True, False, True, False])
    assert (same["agreement"], same["kappa"], same["both"], same["neither"]) == (1.0, 1.0, 2, 2)
    flipped = agreement([True, False], [False, True])
    assert (flipped["agreement"], flipped["kappa"], flipped["only_a"], flipped["only_b"]) == (0.0, -1.0, 1, 1)
    chance = agreement([True, True, False, False], [True, False, True, False])  # independent: kappa 0
    assert chance["agreement"] == 0.5 and chance["kappa"] == 0.0
    with pytest.raises(ValueError):
        agreement([True], [])


def test_harness_agreement_on_a_run(micro_base, tmp_path, capsys):
    """`harness agreement` grades a run's reports again with the judge and the rules; its rules
    verdicts are those the run recorded (the run was graded by the rules)."""
    import json

    from harness.cli import main

    _, run = micro_run(tmp_path, behaviors=2)
    own = [json.loads(line) for line in (run / "self_reports.jsonl").read_text().splitlines()]
    own = [r for r in own if r["model"] != "base"]
    (run / "metrics_judge.json").write_text("a user's file")
    assert main(["agreement", str(run), "--judge-model", micro_base.name_or_path]) == 2  # not the harness's: kept
    assert "the harness did not write it" in capsys.readouterr().err
    assert (run / "metrics_judge.json").read_text() == "a user's file"
    (run / "metrics_judge.json").unlink()
    assert main(["agreement", str(run), "--judge-model", micro_base.name_or_path]) == 0
    figures = json.loads((run / "agreement_judge.json").read_text())
    evaluated = len({r["model"] for r in own})
    base = sum(json.loads(line)["model"] == "base" for line in (run / "self_reports.jsonl").read_text().splitlines())
    # each organism's reports against its behavior, the base model's against every evaluated behavior
    assert figures["n"] == len(own) + evaluated * base
    assert figures["both"] + figures["only_a"] + figures["only_b"] + figures["neither"] == figures["n"]
    assert "Cohen's kappa" in capsys.readouterr().out
    # the run's metrics as the judge scores them, beside the rules' (never over them): a leaderboard row each
    rules_results = (run / "metrics.json").read_text()
    regraded = json.loads((run / "metrics_judge.json").read_text())
    assert regraded["grader"]["name"] == "judge" and json.loads(rules_results)["grader"]["name"] == "rules"
    assert regraded["run_id"] == json.loads(rules_results)["run_id"]
    judged, graded = ([json.loads(line) for line in (run / name).read_text().splitlines()]
                      for name in ("self_reports_judge.jsonl", "self_reports.jsonl"))
    assert [(r["model"], r["report"]) for r in judged] == [(r["model"], r["report"]) for r in graded]
    assert main(["leaderboard", str(run), "--format", "json"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out)["rows"] if r["condition"] == "ia"]
    assert sorted(r["grader"].split()[0] for r in rows) == ["judge", "rules"]
    assert main(["agreement", str(run), "--judge-model", micro_base.name_or_path]) == 0  # its own files: replaced
    assert (run / "metrics.json").read_text() == rules_results
    assert main(["agreement", str(run), "--grader", "rules"]) == 2
    assert main(["agreement", str(tmp_path), "--judge-model", micro_base.name_or_path]) == 2
