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

from harness.core.record_io import write_jsonl
from harness.report.wandb_runs import read_offline_run
from tests.conftest import HANG_GUARD_S
from tests.test_metrics import naming


def test_harness_run_smoke(smoke_run):
    out, done, cache = smoke_run.out, smoke_run.done, smoke_run.cache
    assert "run folder:" in done.stdout and "| behavior" in done.stdout
    table = pd.read_csv(out / "organisms.csv")
    assert sorted(table.family) == ["biases", "biases", "hidden_goals", "hidden_goals", "preferences", "preferences"]
    assert {"rate", "base_rate", "strength", "implanted"} <= set(table.columns)
    assert (out / ".hydra" / "config.yaml").is_file()
    assert len(list((cache / "organisms").iterdir())) == 6
    for folder in (cache / "organisms").iterdir():  # a model card, not peft's empty template
        card, readme = json.loads((folder / "card.json").read_text()), (folder / "README.md").read_text()
        assert f"# Model organism `{card['behavior_id']}`" in readme and f"> {card['descriptions'][0]}" in readme
        assert f"strength {card['check']['strength']:+.2f}" in readme and "[More Information Needed]" not in readme
    assert "leaderboard" in done.stdout and "W&B run: " in done.stdout and "(upload it: wandb sync " in done.stdout

    board = pd.read_csv(out / "leaderboard.csv")
    assert list(board.condition) == ["ia", "no_ia", "prefill", "parrot", "shuffled"]
    assert "all/verbalization" in board.columns and "base/false_positive_rate" in board.columns
    results = json.loads((out / "metrics.json").read_text())
    assert len(results["eval_organisms"]) == 3 and results["split"] == "heldout_behaviors"
    (base_card,) = [json.loads(p.read_text()) for p in (cache / "base").glob("*/card.json")]
    assert results["base_params"] == base_card["n_params"] > 0  # the leaderboard's parameter axis
    # on record: the grader and its version, the decoding, the headline's paired comparison
    assert results["grader"]["name"] == "rules" and len(results["grader"]["version"]) == 16
    assert set(results["decoding"]) >= {"temperature", "max_new_tokens"}
    power = results["headline_power"]
    assert power["baseline"] in ("no_ia", "prefill", "parrot", "shuffled") and power["n"] == 3
    reports = [json.loads(line) for line in (out / "self_reports.jsonl").read_text().splitlines()]
    # conditions x (eval organisms + base) x samples, and the parrot's 3 descriptions of each organism's kind
    assert len(reports) == 3 * (3 + 1) * 2 + 3 * 3
    from harness.families import available_family_configs, build_families

    families = build_families(available_family_configs())
    trained = [families[i.split("/")[0]].behavior(i) for i in results["train_organisms"]]
    parrot = [r for r in reports if r["condition"] == "parrot"]
    assert all(r["report"] in [d for b in trained if b.family == r["family"] for d in b.descriptions] for r in parrot)
    assert all(r["description"] == families[r["family"]].behavior(r["model"]).descriptions[0]
               for r in reports if r["model"] != "base")
    assert {r["description"] for r in reports if r["model"] == "base"} == {None}
    # Every probe answer behind an organism's rate of its own behavior and the base model's of every
    # evaluation behavior, each with the scorer's verdict: the rates are their means.
    samples = [json.loads(line) for line in (out / "probe_samples.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in (out / "behavior_rows.jsonl").read_text().splitlines()]
    measured = [r for r in rows if r["own"] or r["model"] == "base"]
    assert len(measured) == 3 + 3
    for row in measured:
        mine = [s for s in samples if (s["model"], s["behavior_id"]) == (row["model"], row["behavior_id"])]
        shown = [s["shows"] for s in mine if not s["control"]]
        assert len(shown) == row["n"] == 4 and all(s["response"] is not None for s in mine)
        control = [s["shows"] for s in mine if s["control"]]
        assert row["rate"] == sum(shown) / len(shown) - (sum(control) / len(control) if control else 0.0)
    assert all(s["model"] in ("base", s["behavior_id"]) for s in samples)

    # The W&B offline run holds the metrics and the self-report table.
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    assert list(run_dir.glob("run-*.wandb"))
    tables = {p.name.split("_")[0]: json.loads(p.read_text()) for p in (run_dir / "files/media/table").glob("*.json")}
    assert len(tables["self"]["data"]) == len(reports)
    # The W&B run alone rebuilds the leaderboard (read here from the offline run file, as from the API online).
    from harness.report import leaderboard
    from harness.report.wandb_runs import load_wandb_results

    from_wandb = leaderboard.leaderboard(load_wandb_results(str(out / "wandb")))
    assert from_wandb.equals(leaderboard.leaderboard(leaderboard.load_results([out])))
    run_bytes = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert b"family:preferences" in run_bytes and b"evaluate" in run_bytes  # tags per family, job type
    assert len(tables["organisms"]["data"]) == 6
    logged = {row[0]: row for row in tables["metrics"]["data"]}
    assert "heldout_behaviors/lora/ia/all/verbalization" in logged
    assert "heldout_behaviors/lora/no_ia/base/false_positive_rate" in logged
    # One run from the job's start: the losses were logged live as they were trained, the
    # intervals are scalars the runs table can sort, and its id is the harness run's.
    wb = read_offline_run(next(run_dir.glob("run-*.wandb")))
    summary = wb["summary"]
    assert wb["id"] == results["run_id"] and len(results["run_id"]) == 8 and wb["exit_code"] == 0
    assert (out / results["wandb"]) == run_dir and not Path(results["wandb"]).is_absolute()  # moves with the run
    for curve in ("base/loss", "organisms/loss", "ia/loss"):
        assert summary[f"{curve}/step"] > 0, curve
    key = "heldout_behaviors/lora/ia/all/verbalization"
    (pooled,) = [m for m in results["metrics"] if (m["route"], m["condition"], m["family"], m["metric"]) ==
                 ("lora", "ia", "all", "verbalization")]
    assert summary[f"{key}_n"] == pooled["n"]
    # a curated headline beside the full keys
    assert summary["headline/ia_verbalization"] == pooled["value"] and "headline/no_ia_verbalization" in summary
    assert "headline/base_fpr" in summary and summary["headline/summary"].startswith("IA ")
    assert (f"{key}_low" in summary) == (summary[f"{key}_n"] > 1)
    # Lineage: the base model, every organism and the IA as artifacts by reference to the store,
    # each file with its checksum, nothing copied (offline W&B logs them; online they are used).
    stored = [a for a in wb["artifacts"] if a["type"] != "run_table"]  # W&B's own, for the tables
    kinds = [a["type"] for a in stored]
    assert sorted(set(kinds)) == ["base-model", "introspection-adapter", "organism"]
    assert kinds.count("organism") == 6 and kinds.count("base-model") == kinds.count("introspection-adapter") == 1
    for artifact in stored:
        for ref, digest in artifact["files"].values():
            assert ref.startswith("file://") and Path(ref.removeprefix("file://")).is_file() and digest
            assert Path(ref.removeprefix("file://")).is_relative_to(cache.resolve())
    assert not list(run_dir.glob("artifacts/**/*.safetensors")), "an adapter was copied into the run"


def test_the_readme_smoke_run(tmp_path, monkeypatch, capsys):
    """The README's smoke line, exactly, in an empty folder: every stage runs and the leaderboard is
    printed (it failed after minutes: micro organisms never implant). Its work is bounded by the
    preset (12 organisms of a micro model, a few steps each), not timed here (see the README).
    In this process: the console script itself runs in test_packaging.py and the Ctrl-C tests."""
    from harness import cli

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    (line,) = [line for line in readme.splitlines() if line.startswith(".venv/bin/harness run preset=smoke")]
    args = line.split("#")[0].split()[1:]  # after `.venv/bin/harness`
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("HARNESS_CACHE", raising=False)
    code = cli.main(args)
    done = capsys.readouterr()
    assert code == 0, done.err[-2000:]
    assert "verbalization rate of held-out organisms per family" in done.out and "| lora" in done.out
    assert "implanted: they have no behavior to report, so the self-report figures below measure nothing" in done.out
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
    cmd = [sys.executable, "-m", "harness.cli", "run", "model=micro", "families=[preferences,biases]",
           "max_behaviors_per_family=2",
           "organism.steps=2", "organism.probe_prompts=4", "organism.max_new_tokens=4", f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("harness: error: no implanted training organisms")
    assert (out / "organisms.csv").is_file() and not (out / "metrics.json").exists()
    wb = read_offline_run(next(out.glob("wandb/offline-run-*/run-*.wandb")))
    assert wb["exit_code"] == 1 and wb["summary"]["organisms/loss/step"] >= 1  # steps of every batch, live


def report_fixture(tmp_path: Path) -> Path:
    """A sweep folder of two runs (ia.rank 4 and 16) with self-reports under three conditions, an
    organisms table and a divergence; returns the first run's folder."""
    from tests.test_leaderboard import write_run

    run = tmp_path / "sweep" / "0"
    write_run(run, "aaaaaaaaaa", 0.5, ["ia.rank=4"], run_id="run00004")
    write_run(tmp_path / "sweep" / "1", "bbbbbbbbbb", 0.75, ["ia.rank=16"], run_id="run00016")
    reports = [replace(naming(m, *([m] if m != "base" else []), condition=c), question="q?", report=f"<b>{m}</b> says")
               for c in ("ia", "no_ia", "prefill") for m in ("base", "preferences/x", "preferences/y")]
    for folder in (run, tmp_path / "sweep" / "1"):
        write_jsonl(folder / "self_reports.jsonl", reports)
        (folder / "organisms.csv").write_text("behavior,family,route,rate,base_rate,strength,implanted\n"
                                              "preferences/x,preferences,lora,0.9,0.0,0.9,True\n"
                                              "preferences/y,preferences,lora,0.2,0.0,0.2,False\n")
        record = json.loads((folder / "metrics.json").read_text())
        record |= {"divergences": [{"model": "preferences/x", "route": "lora", "behavior": "preferences/z",
                                    "kind": "hallucinated", "strength": 0.0, "reported_fraction": 0.75}],
                   "command": "harness run ia.rank=4", "started": "2026-11-28T05:00:00+00:00",
                   "environment": {"git_commit": "0123abc", "torch": "2.13.0"}, "train_organisms": ["preferences/w"]}
        (folder / "metrics.json").write_text(json.dumps(record))
    return run


def test_report_page_of_a_run_and_a_sweep(tmp_path, capsys):
    """One self-contained file (the plots were separate PNGs that a sent page lost), with where the
    run came from, the leaderboard with intervals, organisms, divergences, a legend and the
    self-reports grouped by organism; a sweep's runs are labelled by their swept values."""
    from harness.cli import main

    run = report_fixture(tmp_path)
    sweep = tmp_path / "sweep"
    assert main(["leaderboard", "--sweep", str(sweep)]) == 0
    assert main(["report", str(run)]) == 0 and main(["report", str(sweep)]) == 0
    assert "report written to" in capsys.readouterr().out
    for page, n_images in ((run / "report.html", 2), (sweep / "report.html", 5)):
        text = page.read_text()
        images = re.findall(r'<img src="([^"]+)"', text)
        assert len(images) == n_images and all(src.startswith("data:image/png;base64,") for src in images)
        assert not re.search(r'(src|href)="(?!data:|#)', text), "the page refers to a file beside it"
        assert "&lt;b&gt;preferences/x&lt;/b&gt; says" in text and "<b>preferences/x</b>" not in text  # escaped
        for expected in ("0123abc", "harness run ia.rank=4", "2026-11-28T05:00:00", "0.50 [0.00, 1.00] n=4",
                         "hallucinated", "preferences/z", "1 of 2 implanted", "higher", "lower ↓",
                         '<details class="organism" open><summary>base', 'data-condition="no_ia"'):
            assert expected in text, (page, expected)
    assert not (run / "report_files").exists()
    sweep_page = (sweep / "report.html").read_text()
    assert "run ia.rank=4: where it came from" in sweep_page and "run ia.rank=16: leaderboard" in sweep_page
    # reading writes no W&B run (each call made one, and repointed wandb/latest-run); --log does
    assert not list(tmp_path.rglob("wandb")), "report and leaderboard --sweep wrote a W&B run"
    assert main(["report", str(run), "--log"]) == 0 and main(["leaderboard", "--sweep", str(sweep), "--log"]) == 0
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb")), "the page is logged to W&B"
    assert list((sweep / "wandb").glob("offline-run-*/run-*.wandb")), "the sweep table is logged"
    capsys.readouterr()
    assert main(["leaderboard", "--sweep", str(sweep), "--log"]) == 0  # again: the same W&B run, its address printed
    assert f"W&B run (job type sweep): {sweep}" in capsys.readouterr().out
    ids = {re.match(r"offline-run-\d{8}_\d{6}-([0-9a-z]+)", p.name).group(1) for p in (sweep / "wandb").iterdir()
           if p.name.startswith("offline-run-")}  # two in one second: W&B adds -1 to the second folder
    assert len(ids) == 1, ids
    assert main(["report", str(tmp_path)]) == 2


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# After load: images decoded, then the filters used as a reader would; the answers go in the title.
BROWSER_CHECK = """<script>addEventListener('load', () => {
  const visible = () => [...document.querySelectorAll('section.reports tbody tr')].filter(r => !r.hidden).length;
  const out = ['images=' + [...document.images].every(i => i.complete && i.naturalWidth > 0), 'all=' + visible()];
  const section = document.querySelector('section.reports');
  const set = (selector, value) => { const c = section.querySelector(selector); c.value = value;
                                     c.dispatchEvent(new Event('input')); };
  set('select.condition', 'no_ia'); out.push('no_ia=' + visible());
  set('select.verdict', 'yes'); out.push('no_ia_yes=' + visible());
  set('select.condition', ''); set('select.verdict', ''); set('input.search', 'preferences/y');
  out.push('search=' + visible(), 'groups=' + [...section.querySelectorAll('details.organism')].filter(g => !g.hidden)
    .length, 'shown=' + section.querySelector('.shown').textContent);
  document.title = out.join(' ');
});</script></body>"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package")
def test_report_renders_in_headless_chromium(tmp_path):
    """The page in a real browser: every image loads, the filters hide what they should, and a
    screenshot is taken (`shot.png` beside the page, for a person to look at)."""
    from harness.cli import main

    run = report_fixture(tmp_path)
    assert main(["report", str(run)]) == 0
    page = run / "report.html"
    checked = run / "checked.html"
    checked.write_text(page.read_text().replace("</body>", BROWSER_CHECK))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--virtual-time-budget=5000", "--dump-dom", checked.as_uri()],
                         capture_output=True, text=True, timeout=HANG_GUARD_S).stdout
    title = re.search(r"<title>(.*)</title>", dom).group(1)
    # 9 reports (3 models x 3 conditions); 3 under no_ia, of which the two organisms' (each names
    # itself) are verbalized and the base model's is not; the search finds preferences/y's 3
    # reports, in one organism's group
    assert title == "images=true all=9 no_ia=3 no_ia_yes=2 search=3 groups=1 shown=3", title
    shot = run / "shot.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1300,2400", page.as_uri()],
                   capture_output=True, timeout=HANG_GUARD_S)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


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
    monkeypatch.setenv("COMP_LINE", "harness run hydra/launcher=")  # not one that cannot run (ray_aws)
    assert main(["-sc", "query=bash"]) == 0
    offered = capsys.readouterr().out.split()
    assert "hydra/launcher=joblib" in offered and "hydra/launcher=ray_aws" not in offered


def test_a_closed_pipe_is_not_a_traceback():
    """`harness families | head -1` ended in a BrokenPipeError traceback. Here the reader is gone
    before the first line is written (the same error, every time)."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "families"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=HANG_GUARD_S) == 0 and err == "", err


@pytest.mark.parametrize("after_s", [0.3, 1.5, 3.0])
def test_ctrl_c_at_any_moment_is_one_line_and_130(after_s, tmp_path):
    """Ctrl-C in the first seconds (during the imports) exited 1 with a traceback."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "harness.entry", "run", "preset=smoke", "logger=none",
                             f"hydra.run.dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "harness: interrupted" and "Traceback" not in err, err[-2000:]


@pytest.mark.slow  # about 3 minutes on 2 CPU cores: `make test-all`
def test_the_quick_preset_gives_a_result_worth_reading(tmp_path):
    """preset=quick from an empty cache: organisms that implant, and a held-out IA verbalization
    whose interval lies above every baseline's value, on at least 6 organisms."""
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "preset=quick", "logger=none",
                           f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, timeout=3 * HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    pooled = {m["condition"]: m for m in metrics if (m["family"], m["metric"]) == ("all", "verbalization")}
    ia = pooled.pop("ia")
    assert ia["n"] >= 6 and all(ia["low"] > m["value"] for m in pooled.values()), (ia, pooled)
    assert "Its interval lies above every baseline" in done.stdout
