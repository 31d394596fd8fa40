import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


def _own_cores() -> None:
    """Under pytest-xdist (`make test` runs a worker per core), pin this worker to its share of the
    cores before torch starts: each process then sets its torch threads to the cores it has
    (`training.cores`) and its subprocesses inherit them, so workers never oversubscribe."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if worker and count and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        mine = cores[int(worker.removeprefix("gw")) % len(cores)::min(int(count), len(cores))]
        os.sched_setaffinity(0, mine)


_own_cores()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hydra import compose, initialize_config_dir  # noqa: E402

from harness.core.config import Config  # noqa: E402
from harness.core.paths import CONF_DIR  # noqa: E402
from harness.core.store import Store  # noqa: E402
from harness.families import available_family_configs, build_families  # noqa: E402
from harness.families.corpus import build_corpus  # noqa: E402
from harness.run.dag import validate  # noqa: E402
from harness.run.stage import Run, ensure  # noqa: E402
from harness.run.stages.base_model import BaseInput, BaseStage  # noqa: E402

# A seconds-long run on the micro model: two behaviors of each of three families (one trains the IA,
# one is held out).
SMALL_RUN = {"model": "micro", "families": "[preferences,biases,hidden_goals]",
             "max_behaviors_per_family": 2, "organism.steps": 2, "organism.probe_prompts": 4,
             "organism.max_new_tokens": 6, "ia.steps": 2, "ia.only_implanted": "false",
             "probe.only_implanted": "false", "probe.temperature": 1.0, "probe.samples": 2, "probe.behavior_prompts": 4,
             "probe.max_new_tokens": 8}


HANG_GUARD_S = 3600
"""Wall-clock limit of a test's subprocess: a guard against hangs only, far above what the work
takes on a busy machine (tests bound work, not wall clock)."""


def small_run(changes: dict | None = None) -> list[str]:
    """The overrides of SMALL_RUN with `changes` applied (each key once)."""
    return [f"{k}={v}" for k, v in (SMALL_RUN | (changes or {})).items()]


@dataclass(frozen=True)
class SmokeRun:
    """A whole run of SMALL_RUN through the console script: its folder, its store and what it printed."""

    out: Path
    cache: Path
    done: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    """One SMALL_RUN for the tests that only read what a run writes (do not write into it); under
    pytest-xdist, one for all of this session's workers (the first to need it runs it, under a lock)."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this session's folder, above each worker's own
    root = shared / "smoke"
    out, cache = root / "run", root / "cache"
    with FileLock(f"{root}.lock"):
        if not (root / "returncode").is_file():
            root.mkdir(exist_ok=True)
            env = {**os.environ, "HARNESS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
            cmd = [sys.executable, "-m", "harness.cli", "run", *small_run(), f"hydra.run.dir={out}"]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
            (root / "stdout").write_text(done.stdout)
            (root / "stderr").write_text(done.stderr)
            (root / "returncode").write_text(str(done.returncode))
    done = subprocess.CompletedProcess("harness run", int((root / "returncode").read_text()),
                                       (root / "stdout").read_text(), (root / "stderr").read_text())
    assert done.returncode == 0, done.stderr[-2000:]
    return SmokeRun(out, cache, done)


# `make test` hands whole files to pytest-xdist's workers in this order, each worker taking the next
# file as it runs out of tests: the longest files (by `pytest --durations=0`) go first, so the suite
# never ends on one long file while the other workers idle. The order changes only the wall time.
LONGEST_FIRST = ("test_bad_input.py", "test_real_model.py", "test_sweeps.py", "test_lm_eval_crosscheck.py",
                 "test_cli_run.py", "test_data_loss.py", "test_reliability.py", "test_grading.py", "test_faults.py",
                 "test_config.py", "test_cache.py", "test_families.py", "test_routes.py", "test_packaging.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order stays


def compose_config(*overrides: str) -> Config:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return validate(compose("config", overrides=list(overrides)))


@pytest.fixture(scope="session")
def families():
    return build_families(available_family_configs())


@pytest.fixture(scope="session")
def micro_store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def micro_cfg(micro_store):
    return compose_config("model=micro", f"cache_dir={micro_store.root}")


@pytest.fixture(scope="session")
def corpus(families):
    return build_corpus(families, 0)


@pytest.fixture(scope="session")
def micro_run(micro_cfg):
    return Run.of(micro_cfg)


@pytest.fixture(scope="session")
def micro_base(micro_cfg, micro_run, corpus):
    return ensure(BaseStage(), micro_run, [BaseInput(micro_cfg.model, corpus, 0)], progress=False)[0]


@pytest.fixture(scope="session")
def micro_organisms(micro_cfg, micro_base, micro_store, families, corpus):
    """Three organisms on the micro base (two steps each: not implanted, but real adapters)."""
    from dataclasses import replace

    from harness.run.stages.organisms import make_organisms

    cfg = replace(micro_cfg.organism, steps=2, probe_prompts=4, max_new_tokens=6)
    targets = [(families[f], families[f].behaviors()[i]) for f, i in
               [("preferences", 0), ("biases", 4), ("hidden_goals", 0)]]
    return make_organisms(targets, micro_base, corpus, cfg, micro_store, progress=False)


@pytest.fixture(autouse=True)
def _no_stale_log_handlers():
    """A run composed in-process (cli.main) lets Hydra point the root logger at this test's captured
    stdout; later tests would log into that closed stream."""
    import logging

    yield
    for handler in list(logging.root.handlers):
        logging.root.removeHandler(handler)


# What tells two runs apart rather than what they found: two runs of one config differ only here.
RUN_IDENTITY = ("run_id", "started", "command", "wandb")


def metrics_of(run: Path) -> dict:
    """A run folder's metrics.json without the run's identity."""
    return {k: v for k, v in json.loads((run / "metrics.json").read_text()).items() if k not in RUN_IDENTITY}


def leaderboard_of(run: Path, root: Path) -> str:
    """A run folder's leaderboard.csv without its run id column, `root` (a test's folder) removed."""
    lines = (run / "leaderboard.csv").read_text().replace(str(root), "").splitlines()
    assert lines[0].startswith("run,")
    return "\n".join(line.split(",", 1)[1] for line in lines)
