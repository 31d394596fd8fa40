"""Leaderboards are built from the results files alone."""

import json

import pytest

from harness.cli import main
from harness.report import leaderboard, sweep_summary


def write_run(folder, ia, value, overrides=None, group=None, run_id="", low=0, high=1, **fields):
    folder.mkdir(parents=True)
    metrics = [{"split": "s", "condition": c, "family": f, "metric": m, "value": value, "low": low, "high": high,
                "n": 4} for c in ("ia", "no_ia") for f in ("preferences", "all") for m in leaderboard.METRICS]
    metrics += [{"split": "s", "condition": c, "family": "base", "metric": "false_positive_rate", "value": 0.0,
                 "low": 0, "high": 1, "n": 4} for c in ("ia", "no_ia")]
    record = {"schema_version": leaderboard.SCHEMA_VERSION, "split": "s", "ia": ia, "metrics": metrics,
              "group": group, "run_id": run_id, **fields}
    (folder / leaderboard.RESULTS_FILE).write_text(json.dumps(record))
    if overrides:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))


def test_one_row_per_adapter_and_condition(tmp_path):
    write_run(tmp_path / "0", "aaaaaaaaaa", 0.25, ["ia.rank=4", "model=micro"], run_id="r0")
    write_run(tmp_path / "1", "bbbbbbbbbb", 0.75, ["ia.rank=16", "model=micro"], run_id="r1")
    board = leaderboard.leaderboard(leaderboard.load_results([tmp_path]))
    assert len(board) == 4
    # the run id, then the swept values (overrides that differ between the runs) as columns
    assert list(board.columns[:6]) == ["run", "ia.rank", "ia", "split", "route", "condition"]
    row = board[(board["ia.rank"] == "16") & (board.condition == "ia")].iloc[0]
    assert row["preferences/verbalization"] == 0.75 and row["base/false_positive_rate"] == 0.0
    assert (row.run, row["preferences/verbalization_low"], row["preferences/verbalization_high"],
            row["preferences/verbalization_n"]) == ("r1", 0, 1, 4)


def test_two_runs_are_always_told_apart(tmp_path):
    """Two runs of the same command with the same IA (say, a rerun): before, their rows were
    identical; the run id tells them apart, and it is the same every time the table is made."""
    for name in ("a", "b"):
        write_run(tmp_path / name, "aaaaaaaaaa", 0.5)  # files from before runs had ids
    write_run(tmp_path / "c", "aaaaaaaaaa", 0.5, run_id="3f2a9c1e")
    board = leaderboard.leaderboard(leaderboard.load_results([tmp_path]))
    ids = list(dict.fromkeys(board.run))
    assert len(ids) == 3 and ids[2] == "3f2a9c1e"
    again = leaderboard.leaderboard(leaderboard.load_results([tmp_path]))
    assert list(again.run) == list(board.run)


def test_intervals_and_n_beside_every_value(tmp_path, capsys):
    write_run(tmp_path / "0", "aaaaaaaaaa", 0.5, low=0.25, high=0.75, run_id="r0")
    assert main(["leaderboard", str(tmp_path), "--ci"]) == 0
    printed = capsys.readouterr().out
    assert "0.50 [0.25, 0.75] n=4" in printed and "all/hallucination ↓" in printed and "base FPR ↓" in printed
    board = leaderboard.leaderboard(leaderboard.load_results([tmp_path]))
    full = leaderboard.with_intervals(board)
    assert full.at[0, "preferences/specificity"] == "0.50 [0.25, 0.75] n=4"
    assert leaderboard.cell(1.0, float("nan"), float("nan"), 1) == "1.00 n=1"  # one organism: no interval


def test_formats_csv_and_json_carry_intervals_and_directions(tmp_path, capsys):
    write_run(tmp_path / "0", "aaaaaaaaaa", 0.5, low=0.25, high=0.75, run_id="r0")
    assert main(["leaderboard", str(tmp_path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metrics"]["all/verbalization"]["higher_is_better"] is True
    assert data["metrics"]["all/hallucination"]["higher_is_better"] is False
    assert data["metrics"]["base/false_positive_rate"]["higher_is_better"] is False
    row = data["rows"][0]
    assert row["run"] == "r0" and row["all/verbalization"] == {"value": 0.5, "low": 0.25, "high": 0.75, "n": 4}
    assert main(["leaderboard", str(tmp_path), "--format", "csv"]) == 0
    import io

    import pandas as pd

    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(csv.loc[0, ["all/verbalization", "all/verbalization_low", "all/verbalization_high",
                            "all/verbalization_n"]]) == [0.5, 0.25, 0.75, 4]
    assert main(["leaderboard", str(tmp_path), "--format", "csv", "--ci"]) == 2
    assert main(["leaderboard", str(tmp_path), "--format", "xml"]) == 2


def test_sorting_follows_each_metrics_direction(tmp_path, capsys):
    for i, value in enumerate([0.25, 0.75, 0.5]):
        write_run(tmp_path / str(i), f"ia{i}", value, [f"ia.rank={i}"], run_id=f"r{i}")
    board = leaderboard.leaderboard(leaderboard.load_results([tmp_path]))
    ia = board[board.condition == "ia"]
    assert list(leaderboard.sort(ia, "verbalization").run) == ["r1", "r2", "r0"]  # higher is better
    assert list(leaderboard.sort(ia, "hallucination").run) == ["r0", "r2", "r1"]  # lower is better
    assert list(leaderboard.sort(ia, "preferences").run) == ["r1", "r2", "r0"]  # a family: its verbalization
    assert list(leaderboard.sort(ia, "all/confession").run) == ["r1", "r2", "r0"]
    assert main(["leaderboard", str(tmp_path), "--sort", "verbalization"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| r") and "run" not in line]
    assert [line.split("|")[1].strip() for line in lines][:2] == ["r1", "r1"]
    assert main(["leaderboard", str(tmp_path), "--sort", "nope"]) == 2
    assert "cannot sort by 'nope'" in capsys.readouterr().err


def test_every_metric_declares_its_direction():
    """A metric the pipeline writes without a spec would crash the table; each has one."""
    from harness.measure.metrics import METRIC_SPECS

    assert set(leaderboard.METRICS) | set(leaderboard.POOLED) | {"false_positive_rate"} <= set(METRIC_SPECS)
    assert {m for m, s in METRIC_SPECS.items() if not s.higher_is_better} == {"hallucination", "denial",
                                                                             "false_positive_rate"}


def test_cli_writes_markdown_and_csv(tmp_path, capsys):
    write_run(tmp_path / "runs" / "0", "aaaaaaaaaa", 0.5)
    assert main(["leaderboard", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "preferences" in printed and "all/identification" in printed
    assert "preferences/verbalization" in (tmp_path / "out" / "leaderboard.md").read_text()
    assert (tmp_path / "out" / "leaderboard.csv").is_file() and (tmp_path / "out" / "leaderboard.json").is_file()


def test_cli_reports_an_empty_folder(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "no metrics.json" in capsys.readouterr().err


def test_compact_keeps_verbalization_and_pooled_figures(tmp_path):
    write_run(tmp_path / "0", "aaaaaaaaaa", 0.5)
    small = leaderboard.compact(leaderboard.leaderboard(leaderboard.load_results([tmp_path])))
    assert list(small.columns) == ["run", "route", "condition", "preferences", "all", "all/specificity",
                                   "all/identification", "all/confession", "all/hallucination ↓", "all/kind",
                                   "base FPR ↓"]


def test_each_route_of_the_evaluation_organisms_is_its_own_row(tmp_path):
    write_run(tmp_path / "0", "aaaaaaaaaa", 0.5)
    path = tmp_path / "0" / leaderboard.RESULTS_FILE
    record = json.loads(path.read_text())
    full = [dict(m, route="full", value=0.125) for m in record["metrics"]]
    pooled = [{"split": "s", "condition": c, "family": "all", "metric": m, "value": 0.25, "low": 0, "high": 1,
               "n": 4, "route": "full"} for c in ("ia", "no_ia") for m in leaderboard.POOLED]
    path.write_text(json.dumps(record | {"metrics": record["metrics"] + full + pooled}))
    board = leaderboard.leaderboard(leaderboard.load_results([tmp_path]))
    assert list(zip(board.route, board.condition, strict=True)) == [("lora", "ia"), ("lora", "no_ia"),
                                                                   ("full", "ia"), ("full", "no_ia")]
    assert list(board["all/verbalization"]) == [0.5, 0.5, 0.125, 0.125]
    assert list(board["all/denial"].fillna(-1)) == [-1, -1, 0.25, 0.25]
    assert "nan" not in leaderboard.render(board)  # a missing cell is blank


def test_sweep_table_has_swept_values_as_columns_in_numeric_order(tmp_path):
    for i, (rank, value) in enumerate([(16, 0.75), (4, 0.5), ("null", 0.9), (64, 0.25)]):
        write_run(tmp_path / str(i), f"ia{i}", value, ["sweeps=ia_rank", f"ia.rank={rank}", "model=micro"])
    table = sweep_summary.sweep_table(leaderboard.load_results([tmp_path]))
    assert list(table.columns[:6]) == ["run", "ia.rank", "ia", "split", "route", "condition"]  # constant: no column
    ia_rows = table[table.condition == "ia"]
    assert list(ia_rows["ia.rank"]) == ["4", "16", "64", "null"]
    assert list(ia_rows["preferences/verbalization"]) == [0.5, 0.75, 0.25, 0.9]
    assert sweep_summary.plot_sweep(table, tmp_path / "p.png").stat().st_size > 10_000


def test_runs_on_different_base_models_show_them_and_plot_against_parameters(tmp_path):
    sizes = {"tiny_large": 9_000_000, "tiny": 1_000_000, "tiny_3m": 3_000_000}
    for i, (model, params) in enumerate(sizes.items()):
        write_run(tmp_path / str(i), f"ia{i}", 0.2 * (i + 1), ["sweeps=model_size", f"model={model}"], base=f"b{i}",
                  base_model=f"embedded tiny Llama ({params / 1e6:.1f}M parameters)", base_params=params)
    table = sweep_summary.sweep_table(leaderboard.load_results([tmp_path]))
    assert list(table.columns[:5]) == ["run", "model", "base model", "base params", "ia"]
    assert sweep_summary.swept_columns(table) == ["model"]
    values = list(dict.fromkeys(table.model))
    assert sweep_summary.parameter_counts(table, "model", values) == [float(sizes[v]) for v in values]
    assert "base params" not in leaderboard.compact(table).columns and "base model" in leaderboard.compact(table)
    assert json.loads(leaderboard.to_json(table))["rows"][0]["base params"] == sizes[values[0]]
    assert sweep_summary.plot_sweep(table, tmp_path / "p.png").stat().st_size > 10_000
    # one base model (a sweep of anything else): no base model columns; two sweep values on bases of
    # one size are no parameter axis
    one = leaderboard.leaderboard(leaderboard.load_results([tmp_path / "0"]))
    assert not set(leaderboard.BASE_COLUMNS) & set(one.columns)
    same = table.assign(**{"base params": 1_000_000})
    assert sweep_summary.parameter_counts(same, "model", values) == []


def test_cli_sweep_and_group(tmp_path, capsys):
    for i, rank in enumerate([1, 4]):
        write_run(tmp_path / "sweep" / str(i), f"ia{i}", 0.2 * (i + 1), [f"ia.rank={rank}"], group="ia_rank")
    write_run(tmp_path / "other" / "0", "ib", 0.1, ["ia.rank=8"], group="something_else")
    args = ["leaderboard", "--out", str(tmp_path / "out")]
    assert main([*args, "--sweep", str(tmp_path / "sweep")]) == 0
    printed = capsys.readouterr().out
    assert "2 runs" in printed and "ia.rank" in printed
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"sweep.md", "sweep.csv", "sweep.png"}
    assert main(["leaderboard", str(tmp_path), "--group", "ia_rank", "--out", str(tmp_path / "g")]) == 0
    assert "2 runs" in capsys.readouterr().out
    assert main(["leaderboard", str(tmp_path), "--group", "nope"]) == 2
    assert "of W&B group 'nope'" in capsys.readouterr().err
    assert main(["leaderboard", "--sweep"]) == 2
    assert "leaderboard: argument --sweep: expected one argument" in capsys.readouterr().err


def test_a_sweep_over_seeds_reports_the_mean_and_interval_across_seeds(tmp_path, capsys):
    for seed, value in enumerate([0.1, 0.2, 0.3]):
        write_run(tmp_path / "sweep" / str(seed), f"ia{seed}", value, [f"seed={seed}", "sweeps=heldout_behaviors"])
    results = leaderboard.load_results([tmp_path / "sweep"])
    summary = sweep_summary.seed_summary(results)
    ia = summary[(summary.condition == "ia") & (summary.family == "all") & (summary.metric == "verbalization")]
    assert len(ia) == 1 and ia.n.iloc[0] == 3 and set(summary.unit) == {"seeds"}
    assert ia.value.iloc[0] == pytest.approx(0.2) and ia.high.iloc[0] == pytest.approx(0.2 + 4.303 * 0.1 / 3 ** 0.5,
                                                                                       abs=1e-3)
    table = sweep_summary.seed_table(summary)
    assert list(table.condition) == ["ia", "no_ia"] and table["all/verbalization"].iloc[0] == "0.20 [-0.05, 0.45]"
    assert main(["leaderboard", "--sweep", str(tmp_path / "sweep")]) == 0
    assert "over seeds" in capsys.readouterr().out
    assert "0.20 [-0.05, 0.45]" in (tmp_path / "sweep" / "seeds.md").read_text()
    assert sweep_summary.seed_summary(results[:1]).empty  # one run: nothing swept


def test_the_leaderboard_pools_runs_over_their_seeds(tmp_path, capsys):
    """`harness leaderboard --over-seeds`: runs that differ in seed (made one by one, not as a
    sweep) are one row per condition, the mean with a t interval over the seeds; runs of one seed
    are refused, and so are options it would ignore."""
    for seed, value in enumerate([0.1, 0.2, 0.3]):
        write_run(tmp_path / "runs" / str(seed), f"ia{seed}", value, [f"seed={seed}", "preset=real"])
    assert main(["leaderboard", str(tmp_path / "runs"), "--over-seeds", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "3 runs over 3 seeds" in printed and "0.20 [-0.05, 0.45]" in printed
    assert "0.20 [-0.05, 0.45]" in (tmp_path / "out" / "seeds.md").read_text()
    assert main(["leaderboard", str(tmp_path / "runs"), "--over-seeds", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ia = next(r for r in rows if (r["condition"], r["family"], r["metric"]) == ("ia", "all", "verbalization"))
    assert (ia["n"], ia["unit"]) == (3, "seeds") and ia["value"] == pytest.approx(0.2)
    assert main(["leaderboard", str(tmp_path / "runs" / "0"), "--over-seeds"]) == 2
    assert "do not differ in seed" in capsys.readouterr().err
    assert main(["leaderboard", str(tmp_path / "runs"), "--over-seeds", "--sort", "quirks"]) == 2
    assert "--over-seeds takes" in capsys.readouterr().err


def test_a_sweep_tables_each_runs_headline_power_with_holm_over_the_runs(tmp_path, capsys):
    """Each run's IA against its best baseline (metrics.json's headline_power) is a row of the
    sweep's power table, in the swept values' order, its p Holm-corrected over the sweep's runs
    (p 0.01, 0.04, 0.03 -> 0.03, 0.06, 0.06: worked by hand); a run without one has no row."""
    for i, (rank, p) in enumerate([(16, 0.04), (4, 0.01), (64, 0.03)]):
        power = {"baseline": "no_ia", "family": "all", "n": 20, "a": 0.05, "b": 0.5, "difference": 0.45,
                 "low": 0.3, "high": 0.6, "p": p, "sd": 0.4, "mde": 0.27 + i / 100, "needed": 8, "p_adjusted": None,
                 "clusters": 1}
        write_run(tmp_path / "sweep" / str(i), f"ia{i}", 0.5, [f"ia.rank={rank}"], headline_power=power)
    write_run(tmp_path / "sweep" / "3", "ia3", 0.5, ["ia.rank=8"])  # no headline: no row
    table = sweep_summary.power_table(leaderboard.load_results([tmp_path / "sweep"]))
    assert list(table["ia.rank"]) == ["4", "16", "64"]
    assert list(table["p holm"]) == pytest.approx([0.03, 0.06, 0.06])
    assert list(table.mde) == pytest.approx([0.28, 0.27, 0.29]) and list(table.needed) == [8, 8, 8]
    assert main(["leaderboard", "--sweep", str(tmp_path / "sweep")]) == 0
    printed = capsys.readouterr().out
    assert "Holm-corrected over the runs" in printed and "+0.45 [+0.30, +0.60]" in printed
    assert "0.060" in (tmp_path / "sweep" / "power.md").read_text()
    assert sweep_summary.power_table(leaderboard.load_results([tmp_path / "sweep" / "3"])).empty


def test_wandb_summary_keys_give_back_route_condition_and_interval():
    from harness.core.tracking import parse_metric_key
    from harness.report.wandb_runs import as_results

    assert parse_metric_key("s/lora/ia/all/verbalization") == ("s", "lora", "all", "verbalization", "ia")
    assert parse_metric_key("s/full/shuffled/quirks/specificity") == ("s", "full", "quirks", "specificity", "shuffled")
    assert parse_metric_key("s/lora/parrot/base/false_positive_rate")[3:] == ("false_positive_rate", "parrot")
    for end in ("_low", "_high", "_n"):
        assert parse_metric_key(f"s/lora/ia/all/verbalization{end}") is None
    assert parse_metric_key("s/lora/nope/all/verbalization") is None and parse_metric_key("ia/loss") is None
    key = "s/deny/no_ia/all/verbalization"
    run = as_results({"ia_key": "k", "split": {"name": "s"}, "logger": {"group": "g"}},
                     {key: 0.25, f"{key}_low": 0.1, f"{key}_high": 0.4, f"{key}_n": 7}, run_id="abc")
    (m,) = run.metrics
    assert (m.route, m.condition, m.value, m.low, m.high, m.n) == ("deny", "no_ia", 0.25, 0.1, 0.4, 7)
    assert (run.group, run.run_id) == ("g", "abc")


def test_every_route_condition_and_family_key_reads_back():
    """`metric_key` and its inverse, for every implant route, condition and kind of family column:
    a summary key the reader cannot parse is a metric silently missing from `--from-wandb`."""
    from harness.core.records import CONDITIONS, MetricRow
    from harness.core.tracking import metric_key, parse_metric_key
    from harness.train.routes import ROUTES

    for route in ROUTES.names():
        for condition in CONDITIONS:
            for family, metric in [("all", "verbalization"), ("quirks", "specificity"),
                                   ("base", "false_positive_rate")]:
                row = MetricRow(split="heldout_behaviors", condition=condition, family=family, metric=metric,
                                value=0.5, low=0.25, high=0.75, n=8, route=route)
                key = metric_key(row)
                assert parse_metric_key(key) == (row.split, route, family, metric, condition), key
                assert key.split("/")[2] == condition  # the condition is a key segment
                assert all(parse_metric_key(key + end) is None for end in ("_low", "_high", "_n"))


def test_the_per_family_view_shows_the_metric_asked_for(tmp_path, capsys):
    """The per-family view showed verbalization only."""
    write_run(tmp_path / "0", "ia0", 0.25, ["ia.rank=4"], run_id="r0")
    assert main(["leaderboard", str(tmp_path), "--metric", "kind"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| run"))
    assert out.startswith("kind per family") and "preferences/kind" in header and "| preferences " not in header
    assert main(["leaderboard", str(tmp_path), "--metric", "kind", "--format", "csv"]) == 2
    assert "--metric goes with --format md" in capsys.readouterr().err


def test_bookkeeping_overrides_are_not_swept_columns(tmp_path):
    """`stage`, `logger` and `sweeps` appeared as swept columns beside what the user varied."""
    write_run(tmp_path / "0", "ia0", 0.25, ["ia.rank=4", "logger=none", "stage=all", "sweeps=ia_rank"], run_id="r0")
    write_run(tmp_path / "1", "ia1", 0.75, ["ia.rank=16", "logger=wandb", "cache_dir=/elsewhere"], run_id="r1")
    board = leaderboard.leaderboard(leaderboard.load_results([tmp_path]))
    assert sweep_summary.swept_columns(board) == ["ia.rank"]


def test_the_reading_says_whether_the_ia_clears_every_baseline():
    from harness.core.records import MetricRow

    def pooled(condition, value, low, high, n=9, metric="verbalization", family="all"):
        return MetricRow(split="s", condition=condition, family=family, metric=metric, value=value, low=low,
                         high=high, n=n, route="lora")

    baselines = [pooled("no_ia", 0.1, 0.0, 0.2), pooled("parrot", 0.3, 0.1, 0.5),
                 pooled("ia", 0.0, 0.0, 0.0, n=27, metric="false_positive_rate", family="base")]
    above = leaderboard.reading([pooled("ia", 0.8, 0.6, 0.9), *baselines], "lora")
    assert "0.80 [0.60, 0.90] of the 9 held-out" in above[0] and "best baseline (parrot) 0.30" in above[0]
    assert "in 0.00 of its 27 reports" in above[0] and above[1].startswith("Its interval lies above every baseline")
    reaching = leaderboard.reading([pooled("ia", 0.5, 0.25, 0.7), *baselines], "lora")
    assert reaching[1] == ("Its interval reaches the parrot baseline's 0.30: this run does not show that the IA "
                           "beats it.")
    assert leaderboard.reading(baselines, "lora") == []
    assert leaderboard.reading([pooled("ia", 0.8, 0.6, 0.9)], "own") == []


def test_a_run_nested_in_a_run_folder_is_left_out_with_work_linear_in_the_runs():
    """Over 10,000 run folders the leaderboard printed nothing in 420 s: every results file was
    compared with every other to find nested runs."""
    from pathlib import Path

    paths = sorted([Path(f"/runs/{i}/metrics.json") for i in range(20_000)] + [Path("/runs/7/inner/metrics.json"),
                                                                                 Path("/runs/7/a/b/metrics.json")])
    got = leaderboard.outermost(paths)
    assert len(got) == 20_000 and not any("/7/" in str(p.parent) + "/" and p.parent.name != "7" for p in got)


def test_the_leaderboard_shows_its_progress_reading_runs(tmp_path, capsys, monkeypatch):
    import sys

    for i in range(3):
        write_run(tmp_path / str(i), f"ia{i}", 0.5)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["leaderboard", str(tmp_path)]) == 0
    assert "reading runs" in capsys.readouterr().err


def test_the_grader_is_a_column_when_runs_differ_in_it(tmp_path):
    for name, version in (("a", "1" * 16), ("b", "2" * 16)):
        write_run(tmp_path / name, f"ia_{name}", 0.5)
        record = json.loads((tmp_path / name / leaderboard.RESULTS_FILE).read_text())
        (tmp_path / name / leaderboard.RESULTS_FILE).write_text(
            json.dumps({**record, "grader": {"name": "rules", "version": version}}))
    board = leaderboard.leaderboard(leaderboard.load_results([tmp_path]))
    assert set(board.grader) == {"rules 11111111", "rules 22222222"}
    same = leaderboard.leaderboard(leaderboard.load_results([tmp_path / "a"]))
    assert "grader" not in same.columns
