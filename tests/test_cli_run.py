"""The console script end to end at the smallest scale, as a user runs it."""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from harness.records import write_jsonl
from harness.wandb_runs import read_offline_run
from tests.conftest import HANG_GUARD_S, small_run
from tests.test_metrics import naming


def test_harness_run_smoke(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "harness.cli", "run", *small_run({"logger.log_artifacts": "true"}),
           f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "run folder:" in done.stdout and "| behavior" in done.stdout
    table = pd.read_csv(out / "organisms.csv")
    assert sorted(table.family) == ["biases", "biases", "hidden_goals", "hidden_goals", "preferences", "preferences"]
    assert {"rate", "base_rate", "strength", "implanted"} <= set(table.columns)
    assert (out / ".hydra" / "config.yaml").is_file()
    assert len(list((tmp_path / "cache" / "organisms").iterdir())) == 6
    assert "leaderboard" in done.stdout and "W&B run folder:" in done.stdout

    board = pd.read_csv(out / "leaderboard.csv")
    assert list(board.condition) == ["ia", "no_ia", "prefill", "parrot", "shuffled"]
    assert "all/verbalization" in board.columns and "base/false_positive_rate" in board.columns
    results = json.loads((out / "metrics.json").read_text())
    assert len(results["eval_organisms"]) == 3 and results["split"] == "heldout_behaviors"
    reports = [json.loads(line) for line in (out / "self_reports.jsonl").read_text().splitlines()]
    # conditions x (eval organisms + base) x samples, and the parrot's 3 descriptions of each organism's kind
    assert len(reports) == 3 * (3 + 1) * 2 + 3 * 3
    from harness.families import available_family_configs, build_families

    families = build_families(available_family_configs())
    trained = [families[i.split("/")[0]].behavior(i) for i in results["train_organisms"]]
    parrot = [r for r in reports if r["condition"] == "parrot"]
    assert all(r["report"] in [d for b in trained if b.family == r["family"] for d in b.descriptions] for r in parrot)

    # The W&B offline run holds the metrics and the self-report table.
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    assert list(run_dir.glob("run-*.wandb"))
    tables = {p.name.split("_")[0]: json.loads(p.read_text()) for p in (run_dir / "files/media/table").glob("*.json")}
    assert len(tables["self"]["data"]) == len(reports)
    # The W&B run alone rebuilds the leaderboard (read here from the offline run file, as from the API online).
    from harness import leaderboard
    from harness.wandb_runs import load_wandb_results

    from_wandb = leaderboard.leaderboard(load_wandb_results(str(out / "wandb")))
    assert from_wandb.equals(leaderboard.leaderboard(leaderboard.load_results([out])))
    run_bytes = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert b"family:preferences" in run_bytes and b"evaluate" in run_bytes  # tags per family, job type
    assert len(tables["organisms"]["data"]) == 6
    logged = {row[0]: row for row in tables["metrics"]["data"]}
    assert "heldout_behaviors/lora/ia/all/verbalization" in logged
    assert "heldout_behaviors/lora/no_ia/base/false_positive_rate" in logged
    wandb_bytes = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert b"introspection-adapter" in wandb_bytes  # the IA logged as an artifact
    # One run from the job's start: the losses were logged live as they were trained, the
    # intervals are scalars the runs table can sort, and its id is the harness run's.
    wb = read_offline_run(next(run_dir.glob("run-*.wandb")))
    summary = wb["summary"]
    assert wb["id"] == results["run_id"] and len(results["run_id"]) == 8 and wb["exit_code"] == 0
    for curve in ("base/loss", "organisms/loss", "ia/loss"):
        assert summary[f"{curve}/step"] > 0, curve
    key = "heldout_behaviors/lora/ia/all/verbalization"
    (pooled,) = [m for m in results["metrics"] if (m["route"], m["condition"], m["family"], m["metric"]) ==
                 ("lora", "ia", "all", "verbalization")]
    assert summary[f"{key}_n"] == pooled["n"]
    assert (f"{key}_low" in summary) == (summary[f"{key}_n"] > 1)


def test_the_readme_smoke_run(tmp_path):
    """The README's smoke line, exactly, in an empty folder: every stage runs and the leaderboard is
    printed (it failed after minutes: micro organisms never implant). Its work is bounded by the
    preset (12 organisms of a micro model, a few steps each), not timed here (see the README)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    (line,) = [line for line in readme.splitlines() if line.startswith(".venv/bin/harness run preset=smoke")]
    args = line.split("#")[0].split()[1:]  # after `.venv/bin/harness`
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    env.pop("HARNESS_CACHE", None)
    done = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "verbalization rate of held-out organisms per family" in done.stdout and "| lora" in done.stdout
    (metrics,) = (tmp_path / "outputs").glob("*/*/metrics.json")
    assert json.loads(metrics.read_text())["metrics"]
    assert len(list((tmp_path / ".cache" / "harness" / "organisms").glob("*/card.json"))) == 12
    logged = (metrics.parent / "cli.log").read_text()  # Hydra's job log was always empty
    assert "run folder:" in logged and "verbalization rate of held-out organisms" in logged


def test_an_error_found_during_the_job_is_one_line(tmp_path):
    """Micro organisms never implant, so with the default ia.only_implanted there is nothing to train
    the IA on: the job stops with one line, after writing the organisms table and before any result.
    Its W&B run, open since the job started, holds the losses trained so far and is marked failed
    (it was marked finished)."""
    out = tmp_path / "run"
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "harness.cli", "run", "model=micro", "max_behaviors_per_family=2",
           "organism.steps=2", "organism.probe_prompts=4", "organism.max_new_tokens=4", f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("harness: error: no implanted training organisms")
    assert (out / "organisms.csv").is_file() and not (out / "metrics.json").exists()
    wb = read_offline_run(next(out.glob("wandb/offline-run-*/run-*.wandb")))
    assert wb["exit_code"] == 1 and wb["summary"]["organisms/loss/step"] >= 1  # steps of every batch, live


def page_images(page: Path) -> list[Path]:
    return [page.parent / src for src in re.findall(r'<img src="([^"]+)"', page.read_text())]


def test_report_page_of_a_run_and_a_sweep(tmp_path, capsys):
    from harness.cli import main
    from tests.test_leaderboard import write_run

    run = tmp_path / "sweep" / "0"
    write_run(run, "aaaaaaaaaa", 0.5, ["ia.rank=4"])
    write_run(tmp_path / "sweep" / "1", "bbbbbbbbbb", 0.75, ["ia.rank=16"])
    reports = [replace(naming(m, *([m] if m != "base" else []), condition=c), question="q?", report=f"<b>{m}</b> says")
               for c in ("ia", "no_ia", "prefill") for m in ("base", "preferences/x", "preferences/y")]
    for folder in (run, tmp_path / "sweep" / "1"):
        write_jsonl(folder / "self_reports.jsonl", reports)
    assert main(["leaderboard", "--sweep", str(tmp_path / "sweep")]) == 0
    assert main(["report", str(run)]) == 0 and main(["report", str(tmp_path / "sweep")]) == 0
    assert "report written to" in capsys.readouterr().out
    for page, n_images in ((run / "report.html", 2), (tmp_path / "sweep" / "report.html", 5)):
        images = page_images(page)
        assert len(images) == n_images
        for image in images:  # every image the page names is a PNG on disk
            assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 5_000
        text = page.read_text()
        assert "&lt;b&gt;preferences/x&lt;/b&gt; says" in text and "<b>preferences/x</b>" not in text  # escaped
    # reading writes no W&B run (each call made one, and repointed wandb/latest-run); --log does
    assert not list(tmp_path.rglob("wandb")), "report and leaderboard --sweep wrote a W&B run"
    assert main(["report", str(run), "--log"]) == 0 and main(["leaderboard", "--sweep", str(tmp_path / "sweep"),
                                                              "--log"]) == 0
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb")), "the plots are logged to W&B"
    assert list((tmp_path / "sweep" / "wandb").glob("offline-run-*/run-*.wandb")), "the sweep table is logged"
    assert main(["report", str(tmp_path)]) == 2


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package")
def test_report_renders_in_headless_chromium(tmp_path):
    """The page, opened by a real browser: every image loads (naturalWidth > 0)."""
    from harness.cli import main
    from tests.test_leaderboard import write_run

    run = tmp_path / "run"
    write_run(run, "aaaaaaaaaa", 0.5)
    write_jsonl(run / "self_reports.jsonl", [naming("preferences/x", "preferences/x")])
    assert main(["report", str(run)]) == 0
    page = run / "report.html"
    check = page.read_text().replace("</body>", "<script>addEventListener('load', () => document.title = "
                                     "[...document.images].every(i => i.naturalWidth > 0) ? 'IMAGES-OK' : 'BROKEN')"
                                     "</script></body>")
    page.write_text(check)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    dom = subprocess.run([CHROMIUM, *flags, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=HANG_GUARD_S).stdout
    assert "<title>IMAGES-OK</title>" in dom
    subprocess.run([CHROMIUM, *flags, f"--screenshot={tmp_path / 'shot.png'}", "--window-size=1200,2000",
                    page.as_uri()], capture_output=True, timeout=HANG_GUARD_S)
    assert (tmp_path / "shot.png").stat().st_size > 10_000


def test_shell_completion_of_harness_run(capsys, monkeypatch):
    """`-sc install=bash` was taken for an override and refused."""
    from harness.cli import main

    assert main(["run", "-sc", "install=bash"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("-F hydra_bash_completion harness")
    for line, expected in [("harness run model=", "model=micro"), ("harness run organism.st", "organism.steps="),
                           ("harness le", "leaderboard"), ("harness ", "export-lm-eval")]:
        monkeypatch.setenv("COMP_LINE", line)
        assert main(["-sc", "query=bash"]) == 0
        assert expected in capsys.readouterr().out.split(), line


def test_a_closed_pipe_is_not_a_traceback():
    """`harness families | head -1` ended in a BrokenPipeError traceback. Here the reader is gone
    before the first line is written (the same error, every time)."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "families"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=HANG_GUARD_S) == 0 and err == "", err
