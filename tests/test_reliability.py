"""Determinism, provenance, secrets and write faults."""

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core import store as store_module
from harness.core.store import Store, write_text
from tests.conftest import HANG_GUARD_S, leaderboard_of, metrics_of, small_run

SMALL = small_run()  # the shared smoke run's config (tests/conftest.py), W&B artifacts logged
SECRETS = {"WANDB_API_KEY": "planted-wandb-key-3f9a1c", "HF_TOKEN": "hf_plantedtoken7e21",
           "OPENAI_API_KEY": "sk-planted-judge-key-88d0"}


def run(tmp: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    """SMALL as the smoke run is made: its cache from the environment, so the configs are equal."""
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "HARNESS_CACHE": str(tmp / "cache"),
           **env_extra}
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", *SMALL, f"hydra.run.dir={tmp / 'run'}"],
                          env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, smoke_run):
    """The same config and seed twice, in separate caches and processes: a run with planted
    secrets, and the shared smoke run."""
    a = tmp_path_factory.mktemp("a")
    assert smoke_run.out.parent == smoke_run.cache.parent  # the same layout: <folder>/run, <folder>/cache
    return (a, run(a, SECRETS)), (smoke_run.out.parent, smoke_run.done)


def test_same_config_and_seed_gives_identical_results(two_runs):
    (a, _), (b, _) = two_runs
    assert metrics_of(a / "run") == metrics_of(b / "run")
    assert leaderboard_of(a / "run", a) == leaderboard_of(b / "run", b)
    for name in ("self_reports.jsonl", "behavior_rows.jsonl", "probe_samples.jsonl"):  # (they name their cache_dir)
        assert (a / "run" / name).read_text().replace(str(a), "") == (b / "run" / name).read_text().replace(
            str(b), ""), name
    # organisms.csv: all but the last column (wall time)
    rows = [[line.rsplit(",", 1)[0] for line in (t / "run" / "organisms.csv").read_text().splitlines()] for t in (a, b)]
    assert rows[0] == rows[1]


def test_results_carry_versions_and_commit(two_runs):
    (a, _), _ = two_runs
    env = json.loads((a / "run" / "metrics.json").read_text())["environment"]
    assert env["torch"] and env["transformers"] and env["peft"]
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout: the run records no commit")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert env["git_commit"] == head.stdout.strip() + ("+dirty" if dirty else "")


def test_no_secret_reaches_any_output(two_runs):
    (a, done), _ = two_runs
    files = [p for p in a.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and any(p.name == "config.yaml" for p in files)
    for secret in SECRETS.values():
        assert secret not in done.stdout + done.stderr
        leaked = [p for p in files if secret.encode() in p.read_bytes()]
        assert not leaked, f"{secret} found in {leaked}"


def test_only_safetensors_weights_are_written(two_runs):
    (a, _), _ = two_runs
    weights = [p for p in (a / "cache").rglob("*") if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".pkl")]
    assert weights and all(p.suffix == ".safetensors" for p in weights)


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("finished results")
    monkeypatch.setattr(store_module.os, "replace", no_space)
    with pytest.raises(OSError, match="No space left"):
        write_text(target, "new results")
    assert target.read_text() == "finished results"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_failed_artifact_write_leaves_no_artifact(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        with store.writing("organisms", "k") as tmp:
            (tmp / "card.json").write_text("{}")
            no_space()
    assert not store.exists("organisms", "k") and list((tmp_path / "organisms").iterdir()) == []


def test_disk_full_during_a_rerun_is_one_line_and_leaves_no_old_results(two_runs, tmp_path, monkeypatch, capsys):
    """The job fails with one line when metrics.json cannot be written. The rerun removed its
    folder's earlier results when it started: none are left under its new overrides."""
    from harness import cli

    (a, _), _ = two_runs
    run_dir = tmp_path / "run"
    shutil.copytree(a / "run", run_dir)
    replace = os.replace

    def failing(src, dst):
        if str(dst).endswith("metrics.json"):
            raise OSError(errno.ENOSPC, "No space left on device", dst)
        replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    monkeypatch.setenv("WANDB_MODE", "offline")
    code = cli.main(["run", *SMALL, "probe.samples=3", f"cache_dir={a / 'cache'}", f"hydra.run.dir={run_dir}"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("harness: error: No space left on device") and "metrics.json" in err
    assert not (run_dir / "metrics.json").exists()
    assert "probe.samples=3" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert not list(run_dir.glob("*.tmp-*"))


def test_disk_full_while_an_organism_is_saved_is_one_line_and_leaves_no_artifact(tmp_path):
    """The disk fills while an organism's adapter is written: one line, exit 2, and neither the
    artifact nor its temporary folder is left (the base model before it is kept, intact)."""
    full_disk = ("import errno, sys\nimport safetensors.torch as st\nsave = st.save_file\n"
                 "def failing(tensors, filename, *args, **kwargs):\n"
                 "    if '/organisms/' in str(filename):\n"
                 "        raise OSError(errno.ENOSPC, 'No space left on device', str(filename))\n"
                 "    return save(tensors, filename, *args, **kwargs)\n"
                 "st.save_file = failing\n"
                 "from harness.cli import main; sys.exit(main(sys.argv[1:]))")
    cache = tmp_path / "cache"
    done = subprocess.run([sys.executable, "-c", full_disk, "run", *small_run({"logger": "none"}),
                           f"cache_dir={cache}", f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip().splitlines()
    assert err[-1].startswith("harness: error: No space left on device") and "Traceback" not in done.stderr
    assert not (cache / "organisms").exists() or not list((cache / "organisms").iterdir())
    base = [key for kind, key in Store(cache).artifacts() if kind == "base"]
    assert len(base) == 1 and Store(cache).verify("base", base[0]) == []


def test_self_reports_do_not_depend_on_how_organisms_are_chunked(tmp_path):
    """Each organism's samples are seeded on their own: one organism per probe chunk or all in one
    give the same reports (so an organism and its weight-permuted twin can be compared)."""
    from dataclasses import replace

    from harness.run import pipeline
    from tests.conftest import compose_config

    def reports(chunk_size: int) -> list[tuple]:
        cfg = compose_config(*small_run({"logger": "none", "cache_dir": str(tmp_path / "cache"),
                                         "probe.chunk_size": chunk_size}))
        pipeline.run(replace(cfg, output_dir=str(tmp_path / str(chunk_size))), progress=False)
        rows = [json.loads(line) for line in (tmp_path / str(chunk_size) / "self_reports.jsonl").read_text().split("\n")
                if line]
        return sorted((r["model"], r["condition"], r["question"], r["report"]) for r in rows)

    assert reports(1) == reports(16)


def test_a_probe_of_another_ia_reads_what_the_models_without_it_said_from_the_store(tmp_path):
    """The models without the IA (each organism alone, the base model) answer the same prompts
    whichever IA a run evaluates: a run on another IA over the same organisms generates only the
    IA's condition anew, and its probe files are those of the same run on a store without the
    kept answers; the same run with another grader generates nothing."""
    from dataclasses import replace

    from harness.run import pipeline
    from tests.conftest import compose_config

    def probe(name: str, cache: Path, ia_steps: int, grader: str = "rules") -> dict[str, str]:
        cfg = compose_config(*small_run({"logger": "none", "cache_dir": str(cache), "ia.steps": ia_steps,
                                         "probe.grader": grader}))
        pipeline.run(replace(cfg, output_dir=str(tmp_path / "runs" / name)), progress=False)
        return {f: (tmp_path / "runs" / name / f).read_text().replace(str(cache), "<cache>")
                for f in ("self_reports.jsonl", "behavior_rows.jsonl", "probe_samples.jsonl")}

    def kept(store: Store, kind: str) -> set[str]:
        return {key for k, key in store.artifacts() if k == kind}

    shared = Store(tmp_path / "stores" / "shared")
    probe("first", shared.root, ia_steps=2)
    answers, ias = kept(shared, "slot_answers"), kept(shared, "ia")
    chunks = len(kept(shared, "probes"))
    assert len(answers) == 4 * chunks  # behavior rates, and the three conditions sampled from a model
    fresh = Store(tmp_path / "stores" / "fresh")
    shutil.copytree(shared.root, fresh.root)
    for key in answers:
        fresh.remove("slot_answers", key)
    second = probe("second", shared.root, ia_steps=3)
    (ia,) = kept(shared, "ia") - ias
    new = kept(shared, "slot_answers") - answers
    assert len(new) == chunks  # the IA's condition only
    assert all(ia in slot for key in new for slot in shared.card("slot_answers", key)["adapters"])
    assert second == probe("fresh", fresh.root, ia_steps=3)
    probe("regraded", shared.root, ia_steps=3, grader="embedding")  # the same models: nothing generated
    assert kept(shared, "slot_answers") == answers | new


@pytest.mark.slow  # in the fast suite: two writers of one artifact at the store (test_data_loss.py), and a joblib
# sweep's jobs on one cache at once (test_sweeps.py)
def test_two_runs_at_once_on_one_cache_give_the_same_results(two_runs, tmp_path):
    """Two runs of one config started together on a shared cache race to build every artifact:
    both finish, each gets the results of a run alone, and the store holds one sealed copy of each."""
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    jobs = [subprocess.Popen([sys.executable, "-m", "harness.cli", "run", *SMALL, f"cache_dir={tmp_path / 'cache'}",
                              f"hydra.run.dir={tmp_path / f'run{i}'}"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    errors = [job.communicate(timeout=HANG_GUARD_S)[1] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], [e[-2000:] for e in errors]
    (alone, _), _ = two_runs
    expected = metrics_of(alone / "run")
    for i in (0, 1):
        assert metrics_of(tmp_path / f"run{i}") == expected
    store = Store(tmp_path / "cache")
    artifacts = list(store.artifacts())
    assert artifacts and all(store.verify(kind, key) == [] for kind, key in artifacts)
    assert set(artifacts) <= set(Store(alone / "cache").artifacts()), "the same keys as the run alone"
    assert not list((tmp_path / "cache").glob("*/*.tmp-*")), "no debris of a finished writer"


def strict_load(text: str):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_every_json_file_a_run_writes_is_strict_json(two_runs):
    """metrics.json held 364 bare NaN (JSON.parse refuses them) and leaderboard.json gave a count
    as 1.0 in one metric and 1 in the others."""
    (a, _), _ = two_runs
    files = [p for p in [*(a / "run").rglob("*.json*"), *(a / "cache").rglob("*.json*")]
             if "wandb" not in p.relative_to(a).parts and p.suffix in (".json", ".jsonl")]
    assert {"metrics.json", "leaderboard.json", "self_reports.jsonl", "card.json"} <= {p.name for p in files}
    for path in files:
        lines = path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]
        for line in filter(None, lines):
            strict_load(line)
    board = strict_load((a / "run" / "leaderboard.json").read_text())
    counts = [m["n"] for row in board["rows"] for k, m in row.items() if isinstance(m, dict) and "n" in m]
    assert counts and all(n is None or type(n) is int for n in counts)


def test_disk_full_while_the_ia_is_saved_is_one_line_and_leaves_no_ia(two_runs, tmp_path, monkeypatch, capsys):
    """safetensors reports a failed write as its own SafetensorError, not an OSError: it ended in a
    traceback (exit 3)."""
    import peft.peft_model
    from safetensors import SafetensorError

    from harness import cli

    (a, _), _ = two_runs
    cache = tmp_path / "cache"
    shutil.copytree(a / "cache", cache, ignore=shutil.ignore_patterns("ia", "probes"))
    save = peft.peft_model.safe_save_file

    def failing(tensors, filename, *args, **kwargs):
        if "/ia/" in str(filename):
            raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                                  '"No space left on device" })')
        return save(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(peft.peft_model, "safe_save_file", failing)
    code = cli.main(["run", *SMALL, "logger=none", f"cache_dir={cache}", f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("harness: error: cannot write model weights") and "No space" in err[-1]
    assert not any(kind == "ia" for kind, _ in Store(cache).artifacts()) and not list(cache.glob("ia/*"))


def test_disk_full_for_the_run_log_is_one_line(two_runs, tmp_path, monkeypatch, capsys):
    """The run's cli.log could not be written: logging printed a `--- Logging error ---` traceback
    for each line and the run went on to exit 0."""
    import logging

    from harness import cli

    (a, _), _ = two_runs

    class FullDisk:
        def write(self, _text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

        def close(self):
            pass

    monkeypatch.setattr(logging.FileHandler, "_open", lambda self: FullDisk())
    run_dir = tmp_path / "run"
    shutil.copytree(a / "run", run_dir)
    code = cli.main(["run", *SMALL, "logger=none", f"cache_dir={a / 'cache'}", f"hydra.run.dir={run_dir}"])
    err = capsys.readouterr().err
    assert code == 2 and "Logging error" not in err and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == f"harness: error: No space left on device ({run_dir / 'cli.log'})"
