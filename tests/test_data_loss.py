"""The harness never removes or overwrites what it did not write, and never replaces a finished
artifact: each case here lost data before."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli
from harness.core import store as store_module
from harness.core.store import Store
from tests.test_bad_input import one_line_error


def user_folder(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "notes.txt").write_text("a week of work")
    (path / "run").mkdir(exist_ok=True)
    (path / "run" / "metrics.json").write_text("{}")
    return path


@pytest.mark.parametrize("where", ["outputs", "."])
def test_export_refuses_a_folder_it_did_not_write(where, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = user_folder(tmp_path / where)
    assert cli.main(["export-lm-eval", "--out", where, "families=[biases]"]) == 2
    one_line_error(capsys, "not an lm-eval export")
    assert (folder / "notes.txt").read_text() == "a week of work" and (folder / "run" / "metrics.json").is_file()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_export_replaces_its_own_previous_export(tmp_path, capsys):
    out = tmp_path / "tasks"
    assert cli.main(["export-lm-eval", "--out", str(out), "families=[biases]"]) == 0
    assert cli.main(["export-lm-eval", "--out", str(out), "families=[preferences]"]) == 0
    assert list(out.glob("probe_preferences_*.yaml")) and not list(out.glob("probe_biases_*.yaml"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks"]  # no temporary or old folders left
    (out / "mine.txt").write_text("keep")
    assert cli.main(["export-lm-eval", "--out", str(out), "families=[biases]"]) == 2
    one_line_error(capsys, "not an lm-eval export")
    assert (out / "mine.txt").read_text() == "keep"


def test_a_failed_report_writes_nothing(tmp_path, capsys):
    folder = user_folder(tmp_path / "etc")
    (folder / "run" / "metrics.json").unlink()
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    assert cli.main(["report", str(folder)]) == 2
    one_line_error(capsys, "neither")
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_a_finished_artifact_is_never_replaced(tmp_path, monkeypatch):
    """Two builders of one key: the first to finish wins; the later one's result is dropped, and
    the finished folder (which someone may be loading) is untouched."""
    store = Store(tmp_path)
    with store.writing("base", "k") as slow:
        (slow / "weights").write_text("slow")
        monkeypatch.setattr(store_module, "_writer", lambda: "othernode-1")  # a concurrent run
        with store.writing("base", "k") as fast:  # ... finishes first
            (fast / "weights").write_text("fast")
            (fast / Store.MARKER).write_text("{}")
        reader = open(store.path("base", "k") / "weights")  # noqa: SIM115  someone loads it
        (slow / Store.MARKER).write_text("{}")
    assert (store.path("base", "k") / "weights").read_text() == "fast"
    assert reader.read() == "fast"
    reader.close()
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == ["k"]


def test_an_incomplete_folder_at_the_final_path_is_replaced(tmp_path):
    store = Store(tmp_path)
    store.path("base", "k").mkdir(parents=True)
    (store.path("base", "k") / "weights").write_text("half")  # no marker: never finished
    with store.writing("base", "k") as tmp:
        (tmp / "weights").write_text("whole")
        (tmp / Store.MARKER).write_text("{}")
    assert (store.path("base", "k") / "weights").read_text() == "whole"
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == ["k"]


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    """The run folder's name holds the process id, so it is unique per process."""
    code = ("from hydra import compose, initialize_config_dir; from harness.core.paths import CONF_DIR;"
            "import harness.core.config;"  # the schema and the resolvers
            "from omegaconf import OmegaConf\n"
            "with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):\n"
            "    cfg = compose('config', return_hydra_config=True)\n"
            "print(cfg.hydra.run.dir, cfg.hydra.sweep.dir)")
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    folders = [p.communicate()[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert folders[0][0] != folders[1][0] and folders[0][1] != folders[1][1]
    assert all(f[0].endswith(f"-{p.pid}") for f, p in zip(folders, procs, strict=True))


def test_a_cache_card_never_grants_remote_code(micro_base, micro_store, tmp_path, capsys):
    """A base folder in a shared cache whose card asks for trust_remote_code, with an auto_map
    and a Python file, runs no code: permission comes from the run's config alone."""
    import json

    from harness.run.stage import Run
    from harness.run.stages.base_model import BaseStage
    from tests.conftest import compose_config, small_run

    args = small_run({"cache_dir": str(tmp_path / "cache"), "logger": "none"})
    run = Run.of(compose_config(*args))
    (x,) = BaseStage().inputs(run, {})
    planted = Store(tmp_path / "cache").path("base", BaseStage().key(x))
    shutil.copytree(micro_store.path("base", micro_base.key), planted)
    sentinel = tmp_path / "code_ran"
    (planted / "evil.py").write_text(f"open({str(sentinel)!r}, 'w').write('pwned')\n"
                                     "from transformers import LlamaConfig as EvilConfig\n")
    config = json.loads((planted / "config.json").read_text())
    (planted / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoConfig": "evil.EvilConfig",
                                                                           "AutoModelForCausalLM": "evil.EvilConfig"}}))
    card = json.loads((planted / Store.MARKER).read_text())
    card["config"]["trust_remote_code"] = True
    card["key"] = planted.name
    (planted / Store.MARKER).write_text(json.dumps(card))
    # a checksum is no signature: whoever can write can reseal
    store_module.seal(planted, Store.MARKER, "base", planted.name)
    assert cli.main(["run", *args, f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    one_line_error(capsys, "trust_remote_code")
    assert not sentinel.exists()


def test_training_that_diverges_saves_nothing(micro_cfg, micro_base, families, corpus, tmp_path):
    """A learning rate that the config checks cannot know is too high (here set past them)
    stops with a one-line error; no NaN organism lands in the store to be reused later."""
    from dataclasses import replace

    from harness.run.stages.organisms import make_organisms
    from harness.train.training import Diverged

    store = Store(tmp_path)
    cfg = replace(micro_cfg.organism, steps=3, lr=1e30)
    with pytest.raises(Diverged, match="diverged|non-finite"):
        make_organisms([(families["biases"], families["biases"].behaviors()[0])], micro_base, corpus, cfg, store,
                       progress=False)
    assert not list(tmp_path.rglob("*.safetensors"))


def test_a_moved_cache_still_loads(micro_cfg, micro_run, micro_base, micro_store, tmp_path):
    from harness.lm import models
    from harness.run.stages.base_model import BaseStage

    moved = Store(tmp_path / "elsewhere")
    shutil.copytree(micro_store.path("base", micro_base.key), moved.path("base", micro_base.key))
    (x,) = BaseStage().inputs(micro_run, {})
    card = BaseStage().load(moved, x)
    assert card.name_or_path == str(moved.path("base", micro_base.key))
    assert models.load_model(card.name_or_path).config.vocab_size > 0


def sealed_store(root):
    """A store of two sealed organisms and a user's files beside them."""
    store = Store(root)
    keys = ["0123456789abcdef", "fedcba9876543210"]
    for key in keys:
        with store.writing("organisms", key) as tmp:
            (tmp / "adapter_model.safetensors").write_bytes(b"weights " + key.encode())
            store_module.write_json(tmp / Store.MARKER, {"key": key})
    user_folder(root / "organisms" / "mine")
    user_folder(root / "mine")
    return store, keys


def tree(root):
    return sorted((p.relative_to(root).as_posix(), p.read_bytes() if p.is_file() else None) for p in root.rglob("*"))


def _link(store, keys):
    (store.root / "ia").mkdir()
    (store.root / "ia" / "00000000000000aa").symlink_to(store.path("organisms", keys[0]))
    return "ia/00000000000000aa"


def _copy(store, keys):
    shutil.copytree(store.path("organisms", keys[0]), store.path("organisms", "00000000000000bb"))
    return "organisms/00000000000000bb"


def _other_kind(store, keys):
    shutil.copytree(store.path("organisms", keys[0]), store.path("ia", keys[0]))
    return f"ia/{keys[0]}"


NOT_ARTIFACTS = {"copied_under_another_kind": _other_kind,
                 ".": ".", "dot_dot": "./.", "kind_dot": "organisms/.", "kind_dot_dot": "organisms/..",
                 "parent": "../x", "absolute": "/tmp", "kind_only": "organisms", "user_folder": "organisms/mine",
                 "user_file": "organisms/mine/notes.txt", "unknown_kind": "mine/run", "empty": "/",
                 "symlinked_artifact": _link, "copied_under_another_key": _copy}


@pytest.mark.parametrize("case", sorted(NOT_ARTIFACTS))
def test_cache_rm_removes_only_a_sealed_artifact_under_its_own_kind_and_key(case, tmp_path, capsys):
    """`cache rm ./.` removed the whole store, `organisms/.` every organism, a folder without a
    seal or a copied one went too; now each is one line and nothing is removed."""
    store, keys = sealed_store(tmp_path / "cache")
    name = NOT_ARTIFACTS[case]
    name = name(store, keys) if callable(name) else name
    before = tree(tmp_path)
    assert cli.main(["cache", "rm", f"cache_dir={store.root}", f"organisms/{keys[1]}", name]) == 2
    one_line_error(capsys, "nothing removed")
    assert tree(tmp_path) == before


def test_cache_rm_removes_a_damaged_artifact_it_wrote(tmp_path, capsys):
    store, keys = sealed_store(tmp_path / "cache")
    (store.path("organisms", keys[0]) / "adapter_model.safetensors").write_bytes(b"cut")
    assert cli.main(["cache", "verify", f"cache_dir={store.root}"]) == 1
    assert f"cache rm organisms/{keys[0]}" in capsys.readouterr().out
    assert cli.main(["cache", "rm", f"cache_dir={store.root}", f"organisms/{keys[0]}"]) == 0
    assert not store.path("organisms", keys[0]).exists() and store.exists("organisms", keys[1])
    assert (store.root / "organisms" / "mine" / "notes.txt").is_file()
    assert not [p for p in store.root.rglob("*") if ".tmp-" in p.name]


def immutable(path: Path, on: bool) -> bool:
    """chattr +i/-i (a file even root may not delete); False where the file system or the
    container does not allow it."""
    return subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True).returncode == 0


def test_cache_rm_that_cannot_remove_leaves_the_artifact_in_place(tmp_path, capsys):
    """A file the user may not delete (a read-only store; tested as root with chattr +i) made
    `cache rm` leave the artifact renamed aside as `<key>.tmp-*-removed`: gone from the store's
    listing, its files still there. Now it is one line and the artifact stays, intact."""
    store, keys = sealed_store(tmp_path / "cache")
    weights = store.path("organisms", keys[0]) / "adapter_model.safetensors"
    if not shutil.which("chattr") or not immutable(weights, True):
        pytest.skip("chattr +i is not allowed here")
    try:
        assert cli.main(["cache", "rm", f"cache_dir={store.root}", f"organisms/{keys[0]}"]) == 2
        one_line_error(capsys, "Operation not permitted (left in place")
    finally:
        immutable(weights, False)
    assert store.verify("organisms", keys[0]) == [] and ("organisms", keys[0]) in set(store.artifacts())
    assert not [p for p in store.root.rglob("*") if ".tmp-" in p.name]


def test_a_folder_copied_under_another_key_is_damage_and_gc_leaves_it(tmp_path, capsys):
    """A copied organism passed `cache verify` ("15 of 15 intact") and was scored in place of the
    organism of that key."""
    store, keys = sealed_store(tmp_path / "cache")
    copied = _copy(store, keys)
    resealed = "organisms/00000000000000cc"
    shutil.copytree(store.path("organisms", keys[1]), store.root / resealed)
    store_module.seal(store.root / resealed, Store.MARKER, "organisms", "00000000000000cc")
    assert cli.main(["cache", "verify", f"cache_dir={store.root}"]) == 1
    out = capsys.readouterr().out
    assert f"{copied}: it was written as organisms/{keys[0]}, not {copied}" in out
    assert f"{resealed}: it was written as organisms/{keys[1]}" in out
    assert f"cache rm {copied}" not in out and "move or delete" in out
    with pytest.raises(store_module.CorruptArtifact, match="did not write that folder there"):
        store.card("organisms", "00000000000000bb")
    assert store_module.sealed_as(store.root / copied / Store.MARKER) == ("organisms", keys[0])


def test_a_run_folder_belongs_to_one_run(tmp_path, capsys):
    """A rerun replaces its own folder's results as a whole (a killed rerun left the old
    metrics.json under the new overrides); a folder holding a user's files or another run nested
    inside is refused before Hydra writes into it; the leaderboard never reads a nested run."""
    from harness.report import leaderboard
    from tests.conftest import small_run

    args = small_run({"cache_dir": str(tmp_path / "cache"), "logger": "none"})
    run = tmp_path / "run"
    assert cli.main(["run", *args, f"hydra.run.dir={run}"]) == 0
    assert (run / "metrics.json").is_file() and (run / "harness_files.json").is_file()
    # the rerun stops after the base stage (as a killed one would): no old results are left
    assert cli.main(["run", *args, "stage=base", f"hydra.run.dir={run}"]) == 0
    assert not (run / "metrics.json").exists() and not (run / "self_reports.jsonl").exists()
    assert "stage=base" in (run / ".hydra" / "overrides.yaml").read_text()
    assert cli.main(["run", *args, f"hydra.run.dir={run}"]) == 0
    parent = tmp_path / "parent"
    copy_run(run, parent / "nested")
    mine = user_folder(tmp_path / "mine")
    capsys.readouterr()
    for folder, named in [(mine, "'notes.txt', which no run of the harness wrote there"),
                          (parent, "'nested/.hydra/config.yaml', which no run of the harness wrote")]:
        before = tree(folder)
        assert cli.main(["run", *args, f"hydra.run.dir={folder}"]) == 2
        one_line_error(capsys, named)
        assert tree(folder) == before
    copy_run(run, parent)
    (found,) = leaderboard.load_results([parent])
    assert found.path == str(parent)


def copy_run(run, to):
    to.mkdir(parents=True, exist_ok=True)
    shutil.copytree(run / ".hydra", to / ".hydra")
    shutil.copy(run / "metrics.json", to / "metrics.json")


def test_an_export_replaces_only_files_its_manifest_lists(tmp_path, capsys):
    """An export decided "a previous export" by file names: it replaced a user's utils.py and
    deleted their probe_*.yaml and data/*.jsonl."""
    out = tmp_path / "tasks"
    (out / "data").mkdir(parents=True)
    for name in ("utils.py", "probe_mine.yaml", "data/mine.jsonl"):
        (out / name).write_text("mine")
    before = tree(out)
    assert cli.main(["export-lm-eval", "--out", str(out), "families=[biases]"]) == 2
    one_line_error(capsys, "not an lm-eval export")
    assert tree(out) == before
    ours = tmp_path / "ours"
    assert cli.main(["export-lm-eval", "--out", str(ours), "families=[biases]"]) == 0
    (ours / "__pycache__").mkdir()  # lm-eval imported utils.py
    (ours / "__pycache__" / "utils.cpython.pyc").write_bytes(b"")
    assert cli.main(["export-lm-eval", "--out", str(ours), "families=[preferences]"]) == 0
    (ours / "data" / "mine.jsonl").write_text("mine")
    assert cli.main(["export-lm-eval", "--out", str(ours), "families=[biases]"]) == 2
    one_line_error(capsys, "not an lm-eval export")
    assert (ours / "data" / "mine.jsonl").read_text() == "mine"


def test_a_sweep_summary_never_overwrites_a_users_file(tmp_path, capsys):
    """`leaderboard --sweep DIR` overwrote a user's sweep.md."""
    import json

    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "metrics.json").write_text(json.dumps({"schema_version": 2, "split": "s", "ia": "k",
                                                          "metrics": []}))
    (sweep / "sweep.md").write_text("my notes")
    assert cli.main(["leaderboard", "--sweep", str(sweep)]) == 2
    one_line_error(capsys, "sweep.md exists and the harness did not write it")
    assert (sweep / "sweep.md").read_text() == "my notes"


def test_a_fifo_where_a_card_should_be_blocks_nothing(tmp_path, capsys):
    """A FIFO named card.json blocked `cache ls` and `cache verify` for ever."""
    store, keys = sealed_store(tmp_path / "cache")
    (store.root / "organisms" / "00000000000000dd").mkdir()
    os.mkfifo(store.root / "organisms" / "00000000000000dd" / Store.MARKER)
    assert cli.main(["cache", "ls", f"cache_dir={store.root}"]) == 0
    assert "2 artifacts" in capsys.readouterr().out
    assert cli.main(["cache", "verify", f"cache_dir={store.root}"]) == 1  # the FIFO's folder is named, not read
    out = capsys.readouterr().out
    assert "2 of 2 artifacts intact" in out and "organisms/00000000000000dd: no artifact" in out
    assert cli.main(["cache", "rm", f"cache_dir={store.root}", "organisms/00000000000000dd"]) == 2
    one_line_error(capsys, "nothing removed")


@pytest.mark.parametrize("listed", ["ABSOLUTE", "../outside", "link/notes.txt", "./../outside/notes.txt"])
def test_a_manifest_that_names_a_path_outside_its_folder_removes_nothing(listed, tmp_path, capsys):
    """A run folder whose harness_files.json listed absolute paths: a rerun into it deleted those
    files and folders outside the run folder."""
    import json

    from tests.conftest import small_run

    outside = user_folder(tmp_path / "outside")
    run = tmp_path / "run"
    run.mkdir()
    (run / "link").symlink_to(outside)
    name = str(outside) if listed == "ABSOLUTE" else listed
    (run / "harness_files.json").write_text(json.dumps({"files": [name, "link"]}))
    before = tree(outside)
    args = small_run({"cache_dir": str(tmp_path / "cache"), "logger": "none"})
    capsys.readouterr()
    assert cli.main(["run", *args, "stage=base", f"hydra.run.dir={run}"]) == 2
    one_line_error(capsys, "names a path outside")
    assert tree(outside) == before and (run / "link").is_symlink()


def test_leaderboard_out_never_overwrites_a_users_leaderboard(tmp_path, capsys):
    """`leaderboard RUN --out DIR` overwrote a user's own leaderboard.md in DIR, also through a link."""
    from tests.test_leaderboard import write_run

    run = tmp_path / "runs" / "0"
    write_run(run, "ia1", 0.5)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "leaderboard.md").write_text("my table")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "leaderboard.csv").symlink_to(mine / "leaderboard.md")
    for out in (mine, tmp_path / "linked", mine / "leaderboard.md"):
        assert cli.main(["leaderboard", str(run.parent), "--out", str(out)]) == 2
        one_line_error(capsys, "exists and the harness did not write it" if out.is_dir() else "is a file")
        assert (mine / "leaderboard.md").read_text() == "my table"
    ours = tmp_path / "ours"
    assert cli.main(["leaderboard", str(run.parent), "--out", str(ours)]) == 0
    assert cli.main(["leaderboard", str(run.parent), "--out", str(ours)]) == 0  # its own files: replaced
    assert (ours / "leaderboard.md").is_file()


def test_a_run_folder_is_held_by_one_run_at_a_time(tmp_path, capsys):
    """Two runs started at once into one hydra.run.dir both exited 0 and printed "results written";
    the folder held one run's metrics.json and the other's results were gone. The second is refused
    before it writes; once the first is gone (killed: its lock dies with it), the folder is free."""
    import signal
    import socket

    from tests.conftest import small_run

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom pathlib import Path\n"
                               "from harness.core.run_folder import locked\n"
                               f"with locked(Path({str(run)!r})):\n    print('held', flush=True)\n"
                               "    sys.stdin.read()\n"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        args = small_run({"cache_dir": str(tmp_path / "cache"), "logger": "none"})
        before = tree(run)
        assert cli.main(["run", *args, "stage=base", f"hydra.run.dir={run}"]) == 2
        one_line_error(capsys, f"run folder {run} is in use by another run ({socket.gethostname()} pid {holder.pid})")
        assert tree(run) == before  # nothing written: no .hydra/, no log
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert cli.main(["run", *args, "stage=base", f"hydra.run.dir={run}"]) == 0  # a dead run's lock is taken


def test_a_quoted_run_folder_is_the_folder_hydra_writes(tmp_path, monkeypatch):
    """`hydra.run.dir='...'` left an empty folder tree named with the quotes, even with --cfg job."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--cfg", "job", "hydra.run.dir='my runs/one'"]) == 0
    assert list(tmp_path.iterdir()) == []  # --cfg job writes nothing
    from harness.cli.compose import output_folders

    assert output_folders(["hydra.run.dir='my runs/one'", 'hydra.sweep.dir="s"']) == {
        "hydra.run.dir": Path("my runs/one"), "hydra.sweep.dir": Path("s")}


def test_an_export_into_a_link_is_refused_before_it_writes(tmp_path, capsys):
    """`export-lm-eval --out LINK` (a link to an earlier export) failed only after writing, and left
    the link renamed `.LINK.old-PID`."""
    ours = tmp_path / "ours"
    assert cli.main(["export-lm-eval", "--out", str(ours), "families=[biases]"]) == 0
    link = tmp_path / "link"
    link.symlink_to(ours)
    before = tree(tmp_path)
    assert cli.main(["export-lm-eval", "--out", str(link), "families=[biases]"]) == 2
    one_line_error(capsys, "is a link")
    assert tree(tmp_path) == before and link.is_symlink()
