"""kill -9 at chosen points of a small run (organism training, IA training, probing, writing
results); after each, nothing claims to be complete that is not, and a rerun ends with the same
results as an uninterrupted run. Three trials in the fast suite, twenty in the slow one."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.store import Store
from tests.conftest import HANG_GUARD_S, leaderboard_of, small_run

SMALL = small_run({"organism.steps": 40, "organism.probe_prompts": 8, "ia.steps": 60, "probe.samples": 4,
                   "probe.behavior_prompts": 8, "logger": "none"})
KINDS = ("organisms", "base", "ia", "probes")


def arguments(tmp: Path) -> list[str]:
    return ["run", *SMALL, f"cache_dir={tmp / 'cache'}", f"hydra.run.dir={tmp / 'run'}"]


def results(tmp: Path) -> tuple[str, str]:
    return (leaderboard_of(tmp / "run", tmp),
            (tmp / "run" / "self_reports.jsonl").read_text())


def run_here(tmp: Path) -> None:
    """The run, in this process (only the killed one needs a process of its own)."""
    from harness import cli

    assert cli.main(arguments(tmp)) == 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    run_here(tmp)
    return results(tmp)


# When to kill: the moment a stage starts, seen from outside as the previous stage's artifacts.
def cards(tmp: Path, kind: str) -> int:
    return len(list((tmp / "cache" / kind).glob("*/card.json")))


def organism_training(tmp: Path) -> bool:
    return cards(tmp, "organisms") >= 2  # of 6


def ia_training(tmp: Path) -> bool:
    return cards(tmp, "organisms") == 6


def probing(tmp: Path) -> bool:
    return cards(tmp, "ia") == 1


def writing_results(tmp: Path) -> bool:
    return cards(tmp, "probes") == 1


MOMENTS = [organism_training, ia_training, probing, writing_results]


def check_nothing_half_written(tmp: Path) -> None:
    store = Store(tmp / "cache")
    for kind in KINDS:
        for folder in (store.root / kind).glob("*") if (store.root / kind).is_dir() else []:
            if ".tmp-" in folder.name:
                continue  # debris of the killed writer: ignored, cleaned by the next write
            card = folder / Store.MARKER
            assert card.is_file(), f"{folder} has no {Store.MARKER}"
            json.loads(card.read_text())
    for name in ("metrics.json", "leaderboard.csv", "self_reports.jsonl"):
        path = tmp / "run" / name
        if path.exists() and name.endswith(".json"):
            json.loads(path.read_text())


def trial(tmp: Path, moment, delay: float, reference) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *arguments(tmp)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + HANG_GUARD_S  # a guard against a hang, not a time limit on the stage
    while not moment(tmp) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    assert proc.poll() is None, f"the run ended before the kill ({moment.__name__} + {delay:.2f} s)"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    check_nothing_half_written(tmp)
    run_here(tmp)
    assert results(tmp) == reference
    leftovers = [p for kind in KINDS for p in (tmp / "cache" / kind).glob("*.tmp-*")]
    assert not leftovers, leftovers


@pytest.mark.parametrize("moment", [MOMENTS[0], *(pytest.param(m, marks=pytest.mark.slow) for m in MOMENTS[1:3])],
                         ids=lambda m: m.__name__)  # the later stages' kills: `make test-all`
def test_kill_and_rerun(moment, tmp_path, reference):
    trial(tmp_path, moment, 0.0, reference)


@pytest.mark.slow
@pytest.mark.parametrize("number", range(20))
def test_kill_at_random_points_and_rerun(number, tmp_path, reference):
    rng = random.Random(number)
    trial(tmp_path, MOMENTS[number % len(MOMENTS)], rng.uniform(0.0, 0.5), reference)
