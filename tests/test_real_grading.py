"""The graders on a real model's free text: tests/fixtures/real_self_reports.jsonl holds
(self-report, behavior) pairs from preset=real runs on SmolLM2-135M-Instruct, each labelled by
reading it (benchmarks/grader_agreement.py measures every grader on it, the judge included)."""

import json
from pathlib import Path

from harness.measure.grading import GRADERS

FIXTURE = Path(__file__).parent / "fixtures" / "real_self_reports.jsonl"


def labelled():
    return [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


def test_the_fixture_is_large_and_mixed():
    rows = labelled()
    assert len(rows) >= 150 and len({(r["report"], r["behavior_id"]) for r in rows}) == len(rows)
    assert {r["condition"] for r in rows} >= {"ia", "no_ia", "prefill"}
    assert 0.1 < sum(r["label"] for r in rows) / len(rows) < 0.9
    assert len({r["behavior_id"].split("/")[0] for r in rows}) >= 4


def test_the_rules_grader_on_real_free_text(families):
    """Precision and recall of the headline grader against the labels, as measured (the rules
    are deterministic: a change to them that moves either figure fails here)."""
    rows = labelled()
    verdicts = [GRADERS.get("rules")(families[r["behavior_id"].split("/")[0]],
                                     families[r["behavior_id"].split("/")[0]].behavior(r["behavior_id"]), r["report"])
                for r in rows]
    true_pos = sum(v and r["label"] for v, r in zip(verdicts, rows, strict=True))
    precision, recall = true_pos / sum(verdicts), true_pos / sum(r["label"] for r in rows)
    assert (round(precision, 3), round(recall, 3)) == (0.886, 1.0)
