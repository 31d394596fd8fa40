"""`harness compare`: paired differences of two runs on hand-made report rows whose answers are known."""

import math

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
    assert "| all | 5 | 0.25 | 0.75 | +0.50 [+0.50, +0.50] | 0.062 |" in lines  # 2/32: all five organisms gained
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
