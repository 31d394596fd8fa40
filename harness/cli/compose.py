"""Config composition for the commands: every sweep value's config composed and validated before
any work, Hydra's errors said in one line, and the output folders checked."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from harness.core.config import Config
from harness.core.errors import ConfigError, one_line
from harness.core.paths import CONF_DIR, TASKS_DIR
from harness.core.run_folder import previous_outputs

LAUNCHER_EXTRAS = {"ray": "ray", "ray_cluster": "ray", "submitit_local": "slurm", "submitit_slurm": "slurm",
                   "slurm": "slurm"}
"""Launchers shipped as extras: `pip install 'introspection-harness[<extra>]'`."""

UNUSABLE_LAUNCHERS = {"ray_aws": "its AWS cluster config fails the installed ray's schema; start a cluster with "
                                 "`ray up` and use hydra/launcher=ray_cluster"}
"""Launchers an installed plugin (hydra-ray-launcher) ships that cannot run: completion does not
offer them, and a run refuses them in one line."""


def sweep_variants(overrides: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    """Override lists that together try every value of every sweep (a=1,2) once, and the sweeps."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    choices = []
    for o in parsed:
        if o.is_sweep_override():
            prefix = "++" if o.is_force_add() else "+" if o.is_add() else ""
            choices.append([f"{prefix}{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([o.input_line])
    first = [c[0] for c in choices]
    variants = [first] + [first[:i] + [v] + first[i + 1 :] for i, c in enumerate(choices) for v in c[1:]]
    return variants, [o.input_line for o in parsed if o.is_sweep_override()]


def check(overrides: Sequence[str], multirun: bool = False, writes: bool = True) -> Config:
    """Compose and validate the config of every sweep value; ConfigError names the first problem.
    `writes`: the command will write into its output folders (not `--cfg`), so they are checked."""
    from harness.families import family_files, search_overrides
    from harness.lm.gguf import gguf_path
    from harness.lm.models import check_model_source
    from harness.measure.grading import JUDGE, check_grader
    from harness.run.dag import validate
    from harness.run.stage import Run

    overrides = search_overrides(overrides)
    for name, why in UNUSABLE_LAUNCHERS.items():
        if f"hydra/launcher={name}" in (o.lstrip("+") for o in overrides):
            raise ConfigError(f"hydra/launcher={name}: {why}")
    family_files(overrides)  # each file checked before Hydra reads it
    try:
        variants, sweeps = sweep_variants(overrides)
        if sweeps and not multirun:
            raise ConfigError(f"{sweeps[0]} sweeps over several values: add --multirun")
        preset = next((o for o in overrides if o.lstrip("+").startswith("sweeps=")), None)
        if preset and not multirun:
            raise ConfigError(f"{preset} is a sweep preset: add --multirun")
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            composed = [compose("config", overrides=v) for v in variants]
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(explain(e, overrides)) from e
    typed = [validate(c) for c in composed]
    for t in typed:
        check_grader(t.probe.grader, t.probe.judge_model)
        Run.of(t)
    judges = {t.probe.judge_model for t in typed if t.probe.grader == JUDGE}
    for name in sorted({t.model.name_or_path for t in typed if t.model.kind == "hf"}):
        check_model_source(name, any(t.model.trust_remote_code for t in typed))
    for name in sorted(judges):
        check_model_source(name, what="probe.judge_model")
    for t in typed:
        if t.model.kind == "gguf":
            gguf_path(t.model.gguf_file, t.model.shipped)  # installed, its parts whole (joined by the base stage)
    if any(t.logger.mode == "online" for t in typed):
        import wandb

        if not wandb.login(prompt=False, verify=False):  # no network needed: are there credentials at all?
            raise ConfigError("logger.mode=online: no W&B credentials (run `wandb login` or set WANDB_API_KEY), "
                              "or log offline (logger=wandb) and `wandb sync` later")
    if writes:
        for key, folder in output_folders(overrides).items():
            check_output_folder(folder, key)
            if key == "hydra.run.dir":  # before Hydra writes its .hydra/ into someone else's folder
                previous_outputs(folder)
    return typed[0]


def output_folders(overrides: Sequence[str]) -> dict[str, Path]:
    """The folders `hydra.run.dir` and `hydra.sweep.dir` name, as Hydra reads their values (quotes
    removed); one with an interpolation in it is left to Hydra."""
    folders = {}
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        key = o.get_key_element().lstrip("+")
        if key in ("hydra.run.dir", "hydra.sweep.dir") and not o.is_sweep_override():
            value = str(o.value())
            if "${" not in value:
                folders[key] = Path(value)
    return folders


def check_output_folder(folder: Path, what: str) -> None:
    """A folder the run can write into: not a file, and created now if it is missing (the run
    would create it next), so a read-only place fails here in one line."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{what}={folder}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{what}={folder}: not writable ({e.strerror})") from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}={folder}: not writable")


def group_options(group: str, overrides: Sequence[str] = ()) -> list[str]:
    from harness.families import family_files

    if group == "families":
        return sorted(family_files(overrides))
    return sorted(p.stem for root in (CONF_DIR, TASKS_DIR) for p in (root / group).glob("*.yaml"))


def explain(error: Exception, overrides: Sequence[str] = ()) -> str:
    message = one_line(error)
    missing = re.search(r"Could not (?:find|load) '([\w/]+)/(\w+)'", message)
    if missing:
        group, name = missing.groups()
        if group == "hydra/launcher" and name in LAUNCHER_EXTRAS:
            return (f"hydra/launcher={name} needs its Hydra plugin: "
                    f"pip install 'introspection-harness[{LAUNCHER_EXTRAS[name]}]'")
        return f"unknown {group} option {name!r} (known: {', '.join(group_options(group, overrides))})"
    return message.split(" Config search path:")[0]


def store_root(overrides: Sequence[str]) -> str:
    """The artifact store a command line names (cache_dir=..., else the config's default)."""
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            return str(compose("config", overrides=list(overrides)).cache_dir)
    except Exception as e:
        raise ConfigError(explain(e, overrides)) from e
