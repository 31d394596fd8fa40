"""Packaging: the wheel carries the configs, families and presets; installed outside the
repository (no editable install, no checkout on the path) it runs a smoke run."""

import json
import os
import site
import subprocess
import sys
from pathlib import Path

from tests.conftest import HANG_GUARD_S, small_run

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_runs_a_smoke_run_outside_the_repository(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(REPO)], check=True, cwd=tmp_path, capture_output=True)
    (wheel,) = dist.glob("introspection_harness-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # the dependencies come from this environment, whose .pth files (the editable install) are not read
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    where = subprocess.run([str(python), "-c", "import harness; print(harness.__file__)"], cwd=tmp_path, env=env,
                           check=True, capture_output=True, text=True).stdout
    assert where.startswith(purelib), where  # the installed copy, not the checkout
    done = subprocess.run([str(venv / "bin" / "harness"), "run", *small_run({"logger": "none"}),
                           f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert results["metrics"] and results["split"] == "heldout_behaviors"
    listed = subprocess.run([str(venv / "bin" / "harness"), "families"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert "sandbagging (" in listed
