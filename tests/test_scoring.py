"""Only evaluation organisms whose implant took are scored; the others are counted and listed."""

from dataclasses import replace

from harness import leaderboard, pipeline
from harness.records import ReportRow, read_jsonl
from tests.conftest import compose_config, small_run


def test_organisms_whose_implant_failed_are_listed_not_scored(tmp_path, capsys):
    """Two-step micro organisms never implant: with probe.only_implanted every evaluation organism
    is excluded, printed and listed with its strength, and only the base model's rows remain."""
    cfg = compose_config(*small_run({"probe.only_implanted": "true", "logger": "none",
                                     "cache_dir": str(tmp_path / "cache")}))
    run = tmp_path / "run"
    pipeline.run(replace(cfg, output_dir=str(run)), progress=False)
    record = leaderboard.read_results(run / leaderboard.RESULTS_FILE)
    assert len(record.excluded) == 3 and record.eval_organisms == []
    assert all(e.strength < cfg.organism.threshold and e.route == "lora" for e in record.excluded)
    assert {m.family for m in record.metrics} == {"base"}  # nothing but the base model's false positives
    assert {r.model for r in read_jsonl(run / "self_reports.jsonl", ReportRow)} == {"base"}
    assert "scoring 0 of 3 evaluation organisms; not implanted: " in capsys.readouterr().out
