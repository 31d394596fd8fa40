"""`harness export-inspect`: a real run's self-reports and probe answers as Inspect AI eval logs,
read back with Inspect's own reader and checked against the run's metrics.json."""

import json
import shutil

from inspect_ai.log import list_eval_logs, read_eval_log

from harness import cli


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_logs_hold_every_sample_and_the_runs_own_figures(smoke_run, tmp_path, capsys):
    out = tmp_path / "logs"
    assert cli.main(["export-inspect", str(smoke_run.out), "--out", str(out)]) == 0
    assert f"inspect view --log-dir {out}" in capsys.readouterr().out
    logs = {log.eval.task: log for log in map(read_eval_log, list_eval_logs(str(out)))}  # what inspect view lists
    conditions = ["ia", "no_ia", "prefill", "parrot", "shuffled"]
    assert sorted(logs) == sorted([*(f"selfreport_{c}" for c in conditions), "probe"])
    reports = jsonl(smoke_run.out / "self_reports.jsonl")
    metrics = json.loads((smoke_run.out / "metrics.json").read_text())["metrics"]
    for condition in conditions:
        log = logs[f"selfreport_{condition}"]
        assert log.status == "success" and log.eval.metadata["condition"] == condition
        mine = sorted((r for r in reports if r["condition"] == condition), key=lambda r: r["model"] == "base")
        if condition != "shuffled":  # derived: each organism credited with its kin's reports under the IA
            assert len(log.samples) == len(mine) == log.results.total_samples
            assert [s.output.completion for s in log.samples] == [r["report"] for r in mine]
        organisms = [s for s in log.samples if s.metadata["organism"] != "base"]
        assert all(s.target for s in organisms)  # the behavior in words
        # per organism, then over organisms: the samples' scores give back the run's own figure
        per_organism = {}
        for s in organisms:
            per_organism.setdefault(s.metadata["organism"], []).append(s.scores["verbalization"].value)
        means = [sum(v) / len(v) for v in per_organism.values()]
        (pooled,) = [m for m in metrics if (m["route"], m["condition"], m["family"], m["metric"]) ==
                     ("lora", condition, "all", "verbalization")]
        assert abs(sum(means) / len(means) - pooled["value"]) < 1e-9
        headline = {s.name: s.metrics for s in log.results.scores}
        assert headline["verbalization"]["mean"].value == pooled["value"]
        assert headline["verbalization"]["n"].value == pooled["n"] == len(per_organism)
        base = [s.scores["false_positive"].value for s in log.samples if s.metadata["organism"] == "base"]
        (fpr,) = [m for m in metrics if (m["route"], m["condition"], m["metric"]) ==
                  ("lora", condition, "false_positive_rate")] or [None]
        assert fpr is None or sum(base) / len(base) == fpr["value"] == headline["false_positive"]["mean"].value
    probes = jsonl(smoke_run.out / "probe_samples.jsonl")
    log = logs["probe"]
    assert len(log.samples) == len(probes)
    assert [(s.input, s.output.completion, s.scores["shows"].value) for s in log.samples] == \
        [(p["prompt"], p["response"], float(p["shows"])) for p in probes]


def test_the_default_folder_is_the_runs_own_and_a_foreign_one_is_refused(smoke_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(smoke_run.out, run)
    assert cli.main(["export-inspect", str(run)]) == 0 and cli.main(["export-inspect", str(run)]) == 0  # replaced
    assert len(list((run / "inspect").glob("*.eval"))) == 6
    assert "inspect" in json.loads((run / "harness_files.json").read_text())["files"]  # a rerun clears it
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    capsys.readouterr()
    assert cli.main(["export-inspect", str(run), "--out", str(mine)]) == 2
    assert "not an Inspect export of the harness" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep" and len(list(mine.iterdir())) == 1
    assert cli.main(["export-inspect", str(tmp_path)]) == 2
    assert "no metrics.json" in capsys.readouterr().err and not (tmp_path / "inspect").exists()
