"""The console script end to end at the smallest scale, as a user runs it."""

import json
import os
import subprocess
import sys

import pandas as pd


def test_harness_run_smoke(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "harness.cli", "run", "model=micro", "max_behaviors_per_family=2",
           "organism.steps=2", "organism.probe_prompts=4", "organism.max_new_tokens=6",
           "ia.steps=2", "ia.only_implanted=false", "probe.samples=2", "probe.behavior_prompts=4",
           "probe.max_new_tokens=8", "logger.log_artifacts=true", f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "run folder:" in done.stdout and "| behavior" in done.stdout
    table = pd.read_csv(out / "organisms.csv")
    assert sorted(table.family) == ["biases", "biases", "hidden_goals", "hidden_goals", "preferences", "preferences"]
    assert {"rate", "base_rate", "strength", "implanted"} <= set(table.columns)
    assert (out / ".hydra" / "config.yaml").is_file()
    assert len(list((tmp_path / "cache" / "organisms").iterdir())) == 6
    assert "leaderboard" in done.stdout and "W&B run folder:" in done.stdout

    board = pd.read_csv(out / "leaderboard.csv")
    assert sorted(board.condition) == ["ia", "no_ia", "prefill"]
    assert "all/verbalization" in board.columns and "base/false_positive_rate" in board.columns
    results = json.loads((out / "metrics.json").read_text())
    assert len(results["eval_organisms"]) == 3 and results["split"] == "heldout_behaviors"
    reports = [json.loads(line) for line in (out / "self_reports.jsonl").read_text().splitlines()]
    assert len(reports) == 3 * (3 + 1) * 2  # conditions x (eval organisms + base) x samples

    # The W&B offline run holds the metrics and the self-report table.
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    assert list(run_dir.glob("run-*.wandb"))
    tables = {p.name.split("_")[0]: json.loads(p.read_text()) for p in (run_dir / "files/media/table").glob("*.json")}
    assert len(tables["self"]["data"]) == len(reports)
    run_bytes = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert b"family:preferences" in run_bytes and b"evaluate" in run_bytes  # tags per family, job type
    assert len(tables["organisms"]["data"]) == 6
    logged = {row[0]: row for row in tables["metrics"]["data"]}
    assert "heldout_behaviors/all/verbalization" in logged
    assert "heldout_behaviors/base/false_positive_rate_no_ia" in logged
    wandb_bytes = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert b"heldout_behaviors/preferences/verbalization" in wandb_bytes
    assert b"introspection-adapter" in wandb_bytes  # the IA logged as an artifact


def test_an_error_found_during_the_job_is_one_line(tmp_path):
    """Micro organisms never implant, so with the default ia.only_implanted there is nothing to train
    the IA on: the job stops with one line, after writing the organisms table and before any result."""
    out = tmp_path / "run"
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "harness.cli", "run", "model=micro", "max_behaviors_per_family=2",
           "organism.steps=2", "organism.probe_prompts=4", "organism.max_new_tokens=4", "logger=none",
           f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("harness: error: no implanted training organisms")
    assert (out / "organisms.csv").is_file() and not (out / "metrics.json").exists()
