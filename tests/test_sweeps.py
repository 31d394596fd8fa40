"""Sweeps: presets compose; the staged sweeper fans stages out through real Hydra launchers;
a sweep killed with SIGKILL resumes to the same results without training anything twice."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from harness.core.paths import CONF_DIR, SWEEPS_DIR
from harness.report.wandb_runs import read_offline_run
from harness.run.dag import validate
from harness.run.stage import Run
from tests.conftest import HANG_GUARD_S, compose_config, small_run

PRESETS = sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))
# The smallest scale of a sweep: the micro model, two behaviors per family (one trains, one evaluates).
SMALL = small_run({"organism.steps": 20, "ia.steps": 4})


def preset_jobs(name: str) -> list[list[str]]:
    """The job override lists a preset expands to (cartesian product of its sweeper params)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=[f"sweeps={name}"], return_hydra_config=True)
        params = OmegaConf.to_container(cfg.hydra.sweeper.params) or {}
        parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
        axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
                else [o.input_line] for o in parsed]
        return [[f"sweeps={name}", *combo] for combo in itertools.product(*axes)], cfg


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_composes_into_valid_jobs(name):
    jobs, cfg = preset_jobs(name)
    assert len(jobs) >= 2, "a preset sweeps over at least two values"
    assert cfg.hydra.sweeper._target_.endswith("StagedSweeper")
    assert cfg.logger.group == name and name in cfg.hydra.sweep.dir
    header = (SWEEPS_DIR / f"{name}.yaml").read_text()
    assert f"make sweep SWEEP={name}" in header and f"sweeps={name}" in header
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        configs = [validate(compose("config", overrides=job)) for job in jobs]
    swept = [tuple(o for o in job if not o.startswith("sweeps=")) for job in jobs]
    assert len(set(swept)) == len(jobs)
    assert len({json.dumps(OmegaConf.to_container(OmegaConf.structured(c)), sort_keys=True, default=str)
                for c in configs}) == len(jobs), "every job of a preset has a different config"


def test_the_real_model_size_preset_holds_out_the_same_behaviors_of_both_real_models():
    """sweeps=real_model_size runs preset=real's recipe on SmolLM2 and on Qwen2.5, LoRA on each
    one's upper half, and both hold out the same 24 behaviors: `harness compare` pairs them."""
    jobs, _ = preset_jobs("real_model_size")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        configs = [validate(compose("config", overrides=job)) for job in jobs]
    assert [c.model.shipped for c in configs] == ["smollm2", "qwen05"]
    assert all(c.organism.target_modules == "upper-half" and c.model.system_prompt == "" and c.organism.route == "own"
               for c in configs)
    smollm2, qwen = (Run.of(c).split for c in configs)
    assert smollm2 == qwen and len(qwen.evaluate) == 24


def test_the_real_qwen_preset_is_the_real_recipe_on_qwen_with_one_held_out_behavior_a_family():
    """preset=real_qwen makes its organisms exactly as preset=real does, on Qwen2.5 in the dtype
    `auto` resolves (float32 on a CPU), and holds out 1 of the 3 behaviors of each of the six families."""
    real, qwen = (compose_config(f"preset={name}") for name in ("real", "real_qwen"))
    assert qwen.model.shipped == "qwen05" and qwen.model.dtype == "auto"
    assert qwen.organism == real.organism and qwen.model.system_prompt == real.model.system_prompt == ""
    split = Run.of(qwen).split
    families = [b.split("/")[0] for b in split.evaluate]
    assert len(set(families)) == len(split.evaluate) == 6 and len(split.train) == 12


def sweep(tmp_path: Path, launcher: str, *extra: str, cache: Path | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, "HARNESS_CACHE": str(cache or tmp_path / "cache"), "WANDB_MODE": "offline",
           "HF_HUB_OFFLINE": "1"}
    # The small run has three families: a run with one and a run with two training families (the
    # preset's own values, meant for six families, give way to the command line's).
    cmd = [sys.executable, "-m", "harness.cli", "run", "--multirun", "sweeps=scaling_families",
           "split.train_families=1,2", f"hydra/launcher={launcher}", *SMALL, f"hydra.sweep.dir={tmp_path / 'sweep'}",
           *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finish(proc: subprocess.Popen, timeout: int = HANG_GUARD_S) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def results(tmp_path: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The sweep's comparison table and every run's self-reports (text), by run folder."""
    table = pd.read_csv(tmp_path / "sweep" / "sweep.csv")
    reports = {p.parent.name: [json.loads(line)["report"] for line in p.read_text().splitlines()]
               for p in sorted((tmp_path / "sweep").glob("[0-9]*/self_reports.jsonl"))}
    return table.drop(columns=["run", "ia"]), reports  # run ids differ between sweeps


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("joblib")
    out = finish(sweep(tmp, "joblib"))
    return tmp, out


def test_sweep_with_joblib_fans_out_and_compares(joblib_sweep):
    tmp, out = joblib_sweep
    assert "sweep: stage organisms: 2 job(s)" in out and "sweep: stage ia: 2 job(s)" in out
    table, reports = results(tmp)
    assert list(table.columns[:4]) == ["split.train_families", "split", "route", "condition"]  # run, ia dropped
    assert sorted(set(table["split.train_families"])) == [1, 2] and len(table) == 2 * 5  # runs x conditions
    assert "sweep comparison" in out and (tmp / "sweep" / "sweep.png").stat().st_size > 10_000
    # one line per job and the table once (each job reprinted every table); cli.log keeps them
    assert "verbalization rate of held-out organisms per family" not in out
    assert len([line for line in out.splitlines() if line.startswith("job ") and ": IA " in line]) == 2
    assert "verbalization rate of held-out organisms per family" in (tmp / "sweep" / "0" / "cli.log").read_text()
    # One W&B run per sweep job, in the sweep's group, plus the sweep's summary run.
    runs = sorted((tmp / "sweep").glob("*/wandb/offline-run-*")) + sorted((tmp / "sweep").glob("wandb/offline-run-*"))
    assert len(runs) == 3
    for run in runs:
        assert b"scaling_families" in next(run.glob("run-*.wandb")).read_bytes()
    # Each fan-out job is a W&B run of the sweep's group whose job type is its stage. The group is
    # this invocation's own (`--group` never mixes two sweeps); the preset is a tag.
    stage_runs = [read_offline_run(p) for p in (tmp / "sweep" / "stages").glob("*/wandb/offline-run-*/run-*.wandb")]
    assert sorted(r["job_type"] for r in stage_runs) == ["base"] + ["ia"] * 2 + ["organisms"] * 2 + ["probe"] * 2
    every = stage_runs + [read_offline_run(next(run.glob("run-*.wandb"))) for run in runs]
    (group,) = {r["group"] for r in every}
    assert group.startswith("scaling_families-20") and all("scaling_families" in r["tags"] for r in every)
    assert "logger.group" not in table.columns  # plumbing, not a swept value
    # Lineage: each fan-out job logs what it made as W&B artifacts by reference to the store.
    made = [a["type"] for r in stage_runs for a in r["artifacts"]]
    assert (made.count("base-model"), made.count("organism"), made.count("introspection-adapter")) == (1, 6, 2)
    # Every organism was trained exactly once, by the fan-out jobs, not by the sweep's jobs.
    assert len(list((tmp / "cache" / "organisms").glob("*/card.json"))) == 6
    assert sorted(p.name for p in (tmp / "sweep" / "stages").iterdir()) == [
        "base-0", "ia-0", "ia-1", "organisms-0", "organisms-1", "probe-0", "probe-1"]
    assert len(reports) == 2
    # Jobs side by side share the cores: each gets its share of torch threads (a lone job, all of them).
    cores = len(os.sched_getaffinity(0))
    for folder, expected in [("stages/base-0", cores), ("stages/ia-0", max(1, cores // 2)), ("0", max(1, cores // 2))]:
        overrides = OmegaConf.load(tmp / "sweep" / folder / ".hydra" / "overrides.yaml")
        assert f"threads={expected}" in overrides, (folder, overrides)


@pytest.mark.slow  # 1-2 minutes each: the optional launchers (extras) run with `make test-all`
@pytest.mark.parametrize("launcher", ["submitit_local", "ray"])
def test_sweep_with_other_launchers_gives_the_same_table(joblib_sweep, tmp_path, launcher):
    finish(sweep(tmp_path, launcher))
    assert results(tmp_path)[0].equals(results(joblib_sweep[0])[0])


def sealed_cards(cards):
    """Each organism at its final path with its card's modification time (a `<key>.tmp-*` folder
    holds a card just before its rename, and is not an organism yet)."""
    return {p.parent.name: p.stat().st_mtime_ns for p in cards.glob("*/card.json") if ".tmp-" not in p.parent.name}


@pytest.mark.slow  # a kill and resume is in the fast suite for a run (test_faults.py)
def test_killed_sweep_resumes_without_retraining(joblib_sweep, tmp_path):
    cards = tmp_path / "cache" / "organisms"
    proc = sweep(tmp_path, "basic", "hydra.sweeper.organisms_per_job=6", start_new_session=True)
    deadline = time.time() + 300
    while len(sealed_cards(cards)) < 2:  # mid-way through the organisms job
        assert proc.poll() is None and time.time() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = sealed_cards(cards)
    assert 2 <= len(before) < 6
    # Nothing at a final path looks complete without being so: only *.tmp-<pid> folders lack a card.
    assert all((d / "card.json").is_file() for d in cards.iterdir() if ".tmp-" not in d.name)
    assert not (tmp_path / "sweep" / "sweep.csv").exists()

    out = finish(sweep(tmp_path, "basic", "hydra.sweeper.organisms_per_job=6"))
    after = sealed_cards(cards)
    assert len(after) == 6 and {k: after[k] for k in before} == before, "an organism was trained twice"
    assert not [d for d in cards.iterdir() if ".tmp-" in d.name], "debris of the killed job was not cleaned"
    assert "sweep: stage base: every artifact is in the store" in out
    table, reports = results(tmp_path)
    reference_table, reference_reports = results(joblib_sweep[0])
    assert table.equals(reference_table) and reports == reference_reports


LAUNCHERS = [("slurm", "partition", None), ("ray_cluster", "ray.init.address", "auto"), ("joblib", "n_jobs", -1),
             ("submitit_local", "timeout_min", 60), ("ray", "ray.init.address", None)]


@pytest.mark.parametrize("launcher,key,value", LAUNCHERS)
def test_launcher_configs_compose(launcher, key, value):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert OmegaConf.select(cfg.hydra.launcher, key) == value
    if launcher == "slurm":
        assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.gpus_per_node == 1
