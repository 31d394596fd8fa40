"""`harness compare`: paired differences of two runs on hand-made report rows whose answers are known."""

import math
import statistics
from dataclasses import asdict, replace

import pytest

from harness import cli
from harness.core.errors import ConfigError
from harness.core.store import strict_dumps
from harness.measure.compare import compare, sign_flip_p
from tests.test_metrics import naming

ORGANISMS = ["preferences/owl", "preferences/fox", "biases/alice", "biases/bob", "hidden_goals/trains"]


def run_rows(verbalizing: dict[str, int], per_organism: int = 4) -> list:
    """Each organism's `per_organism` reports under the IA, the first k of them naming it."""
    return [naming(o, *([o] if i < k else [])) for o, k in verbalizing.items() for i in range(per_organism)]


def test_the_paired_difference_is_the_mean_of_each_organisms_difference():
    a = run_rows({o: 1 for o in ORGANISMS})  # 0.25 each
    b = run_rows({"preferences/owl": 4, "preferences/fox": 3, "biases/alice": 1, "biases/bob": 1,
                  "hidden_goals/trains": 2})
    pooled, *families = compare(a, b)
    assert (pooled.family, pooled.n, pooled.a) == ("all", 5, 0.25)
    assert math.isclose(pooled.b, (1 + 0.75 + 0.25 + 0.25 + 0.5) / 5)
    assert math.isclose(pooled.difference, pooled.b - pooled.a) and pooled.low <= pooled.difference <= pooled.high
    by_family = {r.family: r for r in families}
    assert list(by_family) == ["biases", "hidden_goals", "preferences"]
    assert by_family["biases"].difference == 0.0 and by_family["biases"].p == 1.0
    assert math.isclose(by_family["preferences"].difference, 0.625) and by_family["hidden_goals"].n == 1


def test_sign_flips_give_the_exact_two_sided_p_value():
    assert sign_flip_p([0.5, 0.5, 0.5, 0.5]) == 2 / 16  # only all-plus and all-minus are as extreme
    assert sign_flip_p([0.0, 0.0]) == 1.0
    assert sign_flip_p([1.0, -1.0, 1.0, -1.0]) == 1.0
    many = sign_flip_p([0.5] * 30)  # drawn: the smallest p it can give
    assert 0 < many < 1e-3


def test_runs_that_share_no_organism_are_refused():
    with pytest.raises(ConfigError, match="share no organism"):
        compare(run_rows({"preferences/owl": 1}), run_rows({"preferences/fox": 1}))
    with pytest.raises(ConfigError, match="--metric must be one of"):
        compare(run_rows({"preferences/owl": 1}), run_rows({"preferences/owl": 1}), metric="accuracy")


def test_harness_compare_prints_the_table(tmp_path, capsys):
    for name, k in (("a", 1), ("b", 3)):
        (tmp_path / name).mkdir()
        rows = run_rows({o: k for o in ORGANISMS}) + [naming("base")]
        (tmp_path / name / "self_reports.jsonl").write_text("".join(strict_dumps(r.__dict__) + "\n" for r in rows))
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    lines = capsys.readouterr().out.splitlines()
    # 2/32: all five organisms gained, each by 0.50 (no spread: any difference is found)
    assert "| all | 5 | 0.25 | 0.75 | +0.50 [+0.50, +0.50] | 0.062 |  | 0.00 | 2 |" in lines
    assert "| biases | 2 | 0.25 | 0.75 | +0.50 [+0.50, +0.50] | 0.500 | 1.000 | 0.00 | 2 |" in lines
    assert ("With 5 organisms a difference below 0.00 cannot be told from zero (80% power, 5% two-sided); the "
            "observed +0.50 would need 2 organisms. Families whose difference survives Holm's correction over 3 "
            "families at 5%: none.") in lines
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path)]) == 2
    assert "no self_reports.jsonl" in capsys.readouterr().err


def test_a_run_compared_with_itself_is_refused(tmp_path, capsys):
    """One folder twice (also by another spelling or a link), or a copy of one run (its run id)."""
    rows = run_rows({o: 1 for o in ORGANISMS})
    for name in ("a", "copy", "other"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "self_reports.jsonl").write_text("".join(strict_dumps(r.__dict__) + "\n" for r in rows))
    for name, run_id in (("a", "1234abcd"), ("copy", "1234abcd"), ("other", "99990000")):
        (tmp_path / name / "metrics.json").write_text(strict_dumps({"run_id": run_id}))
    (tmp_path / "link").symlink_to(tmp_path / "a")
    (tmp_path / "sub").mkdir()
    for other, says in ((tmp_path / "a", "same run folder"), (tmp_path / "sub" / ".." / "a", "same run folder"),
                        (tmp_path / "link", "same run folder"), (tmp_path / "copy", "same run (run id 1234abcd)")):
        assert cli.main(["compare", str(tmp_path / "a"), str(other)]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "other")]) == 0


def test_runs_on_two_base_models_pair_by_behavior_and_name_their_models(tmp_path, capsys):
    import json

    for name, k, model in (("small", 1, "SmolLM2 (134.5M parameters)"), ("large", 3, "Qwen (630.2M parameters)")):
        (tmp_path / name).mkdir()
        rows = run_rows({o: k for o in ORGANISMS})
        (tmp_path / name / "self_reports.jsonl").write_text("".join(strict_dumps(r.__dict__) + "\n" for r in rows))
        (tmp_path / name / "metrics.json").write_text(strict_dumps({"run_id": name, "base_model": model}))
    runs = [str(tmp_path / "small"), str(tmp_path / "large")]
    assert cli.main(["compare", *runs]) == 0
    out = capsys.readouterr().out
    assert f"A: {runs[0]} (SmolLM2 (134.5M parameters))" in out and f"B: {runs[1]} (Qwen (630.2M parameters))" in out
    assert "each pair is one behavior both runs held out and scored" in out and "| all | 5 | 0.25 | 0.75 |" in out
    assert cli.main(["compare", *runs, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["base_models"] == [["SmolLM2 (134.5M parameters)",
                                                                   "Qwen (630.2M parameters)"]]


def test_family_rows_are_corrected_together_and_say_what_they_could_find(tmp_path, capsys):
    import json

    many = [f"preferences/p{i}" for i in range(12)] + [f"biases/b{i}" for i in range(12)]
    a = run_rows({o: 1 for o in many})
    b = run_rows({o: (4 if o.startswith("pref") else 1 + (i % 3 == 0)) for i, o in enumerate(many)})
    pooled, biases, preferences = compare(a, b)
    assert preferences.p < 0.001 and biases.p > 0.05
    assert [biases.p_adjusted, preferences.p_adjusted] == pytest.approx(sorted_holm(biases.p, preferences.p))
    assert math.isnan(pooled.p_adjusted)
    assert pooled.mde > 0 and pooled.needed is not None and pooled.needed <= pooled.n  # it was found
    assert biases.needed is None or biases.needed > biases.n
    bh = compare(a, b, correction="bh")
    assert bh[1].p_adjusted <= biases.p_adjusted
    for name, rows in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "self_reports.jsonl").write_text("".join(strict_dumps(r.__dict__) + "\n" for r in rows))
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["correction"] == "holm" and [r["family"] for r in out["rows"]] == ["all", "biases", "preferences"]
    assert out["rows"][0]["p_adjusted"] is None and out["rows"][2]["mde"] == pytest.approx(preferences.mde)


def sorted_holm(p1: float, p2: float) -> list[float]:
    """Holm over two p-values, by hand: the smaller times 2, the larger times 1 but not below it."""
    low, high = min(p1, p2), max(p1, p2)
    adjusted = {low: min(1.0, 2 * low), high: max(min(1.0, 2 * low), high)}
    return [adjusted[p1], adjusted[p2]]


def test_a_runs_headline_says_what_its_organisms_could_find():
    """The IA against its best baseline, paired by organism, and the sentence under the reading."""
    from harness.measure.compare import against_baseline
    from harness.report.leaderboard import power_sentence

    ia = run_rows({o: k for o, k in zip(ORGANISMS, [4, 4, 2, 3, 0], strict=True)})
    prefill = [replace(r, condition="prefill") for r in run_rows({o: 1 for o in ORGANISMS})]
    got = against_baseline(ia + prefill, "prefill", "lora")
    diffs = [0.75, 0.75, 0.25, 0.5, -0.25]
    assert got.n == 5 and math.isclose(got.difference, sum(diffs) / 5)
    assert math.isclose(got.sd, statistics.stdev(diffs)) and got.mde > got.difference and got.needed > 5
    said = power_sentence({"baseline": "prefill", **asdict(got)})
    assert said == [f"With 5 organisms a difference from the prefill baseline below {got.mde:.2f} cannot be told "
                    f"from zero (80% power, 5% two-sided); the observed +0.40 needs {got.needed}."]
    assert power_sentence({}) == [] and power_sentence({"mde": None}) == []


def test_runs_graded_differently_are_refused_unless_asked(tmp_path, capsys):
    rows = run_rows({o: 1 for o in ORGANISMS})
    for name, grader in (("a", {"name": "rules", "version": "1" * 16}), ("b", {"name": "rules", "version": "2" * 16}),
                         ("c", {"name": "rules", "version": "1" * 16})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "self_reports.jsonl").write_text("".join(strict_dumps(r.__dict__) + "\n" for r in rows))
        (tmp_path / name / "metrics.json").write_text(strict_dumps({"run_id": name, "grader": grader}))
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "graded differently (rules 11111111 against rules 22222222)" in err and "--any-grader" in err
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--any-grader"]) == 0
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 0


def test_several_run_pairs_pool_with_each_pair_a_cluster(tmp_path, capsys):
    """Two recipes at three seeds: one interval over every pair's organism differences, whose error
    comes from the spread between the pairs."""
    import json

    from harness.measure.compare import compare_pairs
    from harness.measure.power import clustered_mean

    gains = [{o: 2 for o in ORGANISMS}, {o: 1 for o in ORGANISMS}, {o: 3 if o.startswith("pref") else 1
                                                                   for o in ORGANISMS}]
    pairs = [(run_rows({o: 1 for o in ORGANISMS}), run_rows(g)) for g in gains]
    pooled, *families = compare_pairs(pairs)
    clusters = [[(g[o] - 1) / 4 for o in ORGANISMS] for g in gains]
    mean, se = clustered_mean(clusters)
    assert (pooled.n, pooled.clusters) == (15, 3) and pooled.difference == pytest.approx(mean)
    assert pooled.low < mean < pooled.high and pooled.needed is None and pooled.mde > 0
    assert [r.family for r in families] == ["biases", "hidden_goals", "preferences"]
    for i, (a, b) in enumerate(pairs):
        for name, rows in ((f"a{i}", a), (f"b{i}", b)):
            (tmp_path / name).mkdir()
            (tmp_path / name / "self_reports.jsonl").write_text("".join(strict_dumps(r.__dict__) + "\n"
                                                                         for r in rows))
    runs = [str(tmp_path / f"{x}{i}") for i in range(3) for x in "ab"]
    assert cli.main(["compare", *runs, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["clusters"] == 3
    assert cli.main(["compare", *runs]) == 0
    assert "With 15 organisms in 3 pairs of runs a difference below" in capsys.readouterr().out
    assert cli.main(["compare", *runs[:3]]) == 2
    assert "in pairs" in capsys.readouterr().err
