"""`harness cache`: ls, verify, rm and gc on a real micro run's store."""

import json
import subprocess
import sys

import pytest

from harness import cli
from harness.core.store import Store
from tests.conftest import HANG_GUARD_S, small_run


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cache_cli")
    args = small_run({"cache_dir": str(tmp / "cache"), "logger": "none"})
    assert cli.main(["run", *args, f"hydra.run.dir={tmp / 'run'}"]) == 0
    return tmp, args


def test_ls_and_verify(cached, capsys):
    tmp, args = cached
    store = Store(tmp / "cache")
    kinds = sorted({kind for kind, _ in store.artifacts()})
    # answers: the base model's, for base rates; slot_answers: the probed models', for other IAs' probes
    assert kinds == ["answers", "base", "ia", "organisms", "probes", "slot_answers"]
    capsys.readouterr()
    assert cli.main(["cache", "ls", f"cache_dir={store.root}"]) == 0
    out = capsys.readouterr().out
    assert f"{len(list(store.artifacts()))} artifacts" in out and "preferences/" in out
    assert "the base model's answers to" in out and "probed models' answers to" in out
    assert cli.main(["cache", "verify", f"cache_dir={store.root}"]) == 0
    assert "intact" in capsys.readouterr().out


def test_verify_names_a_damaged_artifact_and_rm_then_rerun_rebuilds_it(cached, tmp_path, capsys):
    import shutil

    tmp, args = cached
    cache = tmp_path / "cache"
    shutil.copytree(tmp / "cache", cache)
    store = Store(cache)
    kind, key = next((k, x) for k, x in store.artifacts() if k == "organisms")
    weights = store.path(kind, key) / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    capsys.readouterr()
    assert cli.main(["cache", "verify", f"cache_dir={cache}"]) == 1
    out = capsys.readouterr().out
    assert f"{kind}/{key}: adapter_model.safetensors has" in out
    assert cli.main(["cache", "rm", f"{kind}/{key}", f"cache_dir={cache}"]) == 0
    assert not store.path(kind, key).exists()
    run_args = [a if not a.startswith("cache_dir=") else f"cache_dir={cache}" for a in args]
    assert cli.main(["run", *run_args, f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    assert store.verify(kind, key) == []  # rebuilt, sealed
    before = json.loads((tmp / "run" / "metrics.json").read_text())["metrics"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"] == before


def test_gc_removes_only_what_the_config_does_not_use(cached, tmp_path, capsys):
    import shutil

    tmp, args = cached
    cache = tmp_path / "cache"
    shutil.copytree(tmp / "cache", cache)
    store = Store(cache)
    with store.writing("organisms", "0000000000000000") as folder:  # an artifact of another config
        (folder / "card.json").write_text(json.dumps({"key": "0000000000000000", "behavior_id": "x/y",
                                                      "route": "lora"}))
    run_args = [a if not a.startswith("cache_dir=") else f"cache_dir={cache}" for a in args]
    # the base model's answers made the organisms, the probed models' the probes; a complete run reads
    # the organisms and probes, not them
    used = {a for a in store.artifacts() if a[1] != "0000000000000000" and a[0] not in ("answers", "slot_answers")}
    capsys.readouterr()
    assert cli.main(["cache", "gc", *run_args]) == 0
    out = capsys.readouterr().out
    assert "unused: organisms/0000000000000000" in out and "unused: answers/" in out and "unused: slot_answers/" in out
    assert store.exists("organisms", "0000000000000000")  # listed, not removed
    assert cli.main(["cache", "gc", *run_args, "--yes"]) == 0
    assert set(store.artifacts()) == used


def test_cache_bad_input(cached, capsys):
    tmp, _ = cached
    assert cli.main(["cache", "rm", "organisms/../../etc", f"cache_dir={tmp / 'cache'}"]) == 2
    assert "not a sealed artifact" in capsys.readouterr().err
    assert cli.main(["cache", "gc", f"cache_dir={tmp / 'empty'}", "seed=5", "model=micro"]) == 2
    assert "not built yet" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["cache", "ls"], ["cache", "verify"], ["families"], ["leaderboard", "."]])
def test_read_only_commands_import_no_torch(args, tmp_path):
    """`cache ls` took 12.5 s for 15 artifacts, 7.3 s of it importing peft and transformers."""
    code = ("import sys\nfrom harness.cli import main\nmain(sys.argv[1:])\n"
            "heavy = sorted({'torch', 'transformers', 'peft'} & set(sys.modules))\n"
            "assert not heavy, heavy")
    args = [*args, f"cache_dir={tmp_path / 'store'}"] if args[0] == "cache" else args
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-500:]


def test_verify_names_every_folder_that_is_no_artifact_and_reads_no_oversized_card(cached, tmp_path, capsys):
    """A folder whose card.json is a folder was left out of "N of N intact"; a 200 MB card.json was
    read whole (512 MB resident) before it was named."""
    import shutil

    tmp, _ = cached
    cache = tmp_path / "cache"
    shutil.copytree(tmp / "cache", cache)
    store = Store(cache)
    n = len(list(store.artifacts()))
    (cache / "organisms" / "00000000000000aa" / "card.json").mkdir(parents=True)
    (cache / "organisms" / "00000000000000bb").mkdir()
    kind, key = next((k, x) for k, x in store.artifacts() if k == "organisms")
    with open(store.path(kind, key) / "card.json", "r+b") as f:
        f.truncate(200 * 2**20)  # sparse: 200 MB that take no disk
    capsys.readouterr()
    assert cli.main(["cache", "verify", f"cache_dir={cache}"]) == 1
    out = capsys.readouterr().out
    assert "organisms/00000000000000aa: no artifact" in out and "organisms/00000000000000bb: no artifact" in out
    assert f"{kind}/{key}: its card.json is unreadable (200 MiB, larger than a card can be)" in out
    assert f"{n - 1} of {n} artifacts intact" in out and "2 folders that are no artifact" in out


def test_rm_of_one_artifact_named_twice_removes_it_once(cached, tmp_path, capsys):
    import shutil

    tmp, _ = cached
    cache = tmp_path / "cache"
    shutil.copytree(tmp / "cache", cache)
    kind, key = next((k, x) for k, x in Store(cache).artifacts() if k == "organisms")
    capsys.readouterr()
    assert cli.main(["cache", "rm", f"{kind}/{key}", f"{kind}/{key}", f"cache_dir={cache}"]) == 0
    assert "removed 1 artifacts" in capsys.readouterr().out and not Store(cache).path(kind, key).exists()
