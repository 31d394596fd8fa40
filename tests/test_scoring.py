"""Only evaluation organisms whose implant took are scored; the others are counted and listed."""

from dataclasses import replace

from harness.core.record_io import read_jsonl
from harness.core.records import ReportRow
from harness.report import leaderboard
from harness.run import pipeline
from tests.conftest import compose_config, small_run


def test_organisms_whose_implant_failed_are_listed_not_scored(tmp_path, caplog):
    """Two-step micro organisms never implant: with probe.only_implanted every evaluation organism
    is excluded, printed and listed with its strength, and only the base model's rows remain."""
    cfg = compose_config(*small_run({"probe.only_implanted": "true", "logger": "none",
                                     "cache_dir": str(tmp_path / "cache")}))
    run = tmp_path / "run"
    caplog.set_level("INFO", logger="harness")
    pipeline.run(replace(cfg, output_dir=str(run)), progress=False)
    record = leaderboard.read_results(run / leaderboard.RESULTS_FILE)
    assert len(record.excluded) == 3 and record.eval_organisms == []
    assert all(e.strength < cfg.organism.threshold and e.route == "lora" for e in record.excluded)
    assert {m.family for m in record.metrics} == {"base"}  # nothing but the base model's false positives
    assert {r.model for r in read_jsonl(run / "self_reports.jsonl", ReportRow)} == {"base"}
    assert "scoring 0 of 3 evaluation organisms; not implanted: " in caplog.text


def test_the_parrot_knows_the_kind_not_the_parameters(families, micro_organisms):
    from harness.core.config import ProbeConfig
    from harness.core.records import IACard
    from harness.run.stages.probe import parrot_reports, whole

    owl, alice, ocean = micro_organisms  # preferences (favorite), biases (entity), hidden_goals (topic)
    fox, position_a = families["preferences"].behavior("preferences/favorite_animal_fox"), \
        families["biases"].behavior("biases/position_a")
    ia = IACard(key="k", base_key="b", split="s", organisms=[fox.id, position_a.id], organism_keys=[], questions=[],
                config={}, seed=0, losses=[], final_loss=0.0, seconds=0.0)
    targets = [(families[c.family], families[c.family].behavior(c.behavior_id)) for c in micro_organisms]
    rows = parrot_reports([whole(None), *map(whole, micro_organisms)], targets, families, ProbeConfig(), ia, "s")
    said = {c.behavior_id: [r.report for r in rows if r.model == c.behavior_id] for c in micro_organisms}
    assert said[owl.behavior_id] == list(fox.descriptions)  # a training description of its kind
    assert said[alice.behavior_id] == list(position_a.descriptions)  # none of its kind: its family's
    assert said[ocean.behavior_id] == [""]  # the IA trained on none of its family: nothing to repeat
    assert {r.condition for r in rows} == {"parrot"} and "base" not in {r.model for r in rows}
    assert not any(r.verbalized or r.mentioned for r in rows)  # another parameter's description names nothing
