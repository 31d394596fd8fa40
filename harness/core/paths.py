"""Where the package's own files are: its Hydra config tree, its behavior families, its sweeps."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
CONF_DIR = PACKAGE_DIR / "conf"
"""The Hydra config tree, shipped in the package (a `conf` link at the repository root points here)."""
TASKS_DIR = PACKAGE_DIR / "tasks"
"""The behavior families (tasks/families/*.yaml), on Hydra's search path."""
SWEEPS_DIR = CONF_DIR / "sweeps"
"""Sweep presets: the `sweeps` config group."""

SHIPPED_FAMILIES = tuple(sorted(p.stem for p in (TASKS_DIR / "families").glob("*.yaml")))
"""The shipped families (the package's tasks/families/*.yaml), which the tiny base model's
pretraining corpus covers. Which of them a run takes by default is conf/config.yaml's `families`."""
