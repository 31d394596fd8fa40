"""The console script end to end at the smallest scale, as a user runs it."""

import os
import subprocess
import sys

import pandas as pd


def test_harness_run_smoke(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "harness.cli", "run", "model=micro", "max_behaviors_per_family=1",
           "organism.steps=2", "organism.probe_prompts=4", "organism.max_new_tokens=6",
           f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "run folder:" in done.stdout and "| behavior" in done.stdout
    table = pd.read_csv(out / "organisms.csv")
    assert sorted(table.family) == ["biases", "hidden_goals", "preferences"]
    assert {"rate", "base_rate", "strength", "implanted"} <= set(table.columns)
    assert (out / ".hydra" / "config.yaml").is_file()
    assert len(list((tmp_path / "cache" / "organisms").iterdir())) == 3
