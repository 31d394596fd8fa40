"""`harness run`: check the config of every sweep value first (one-line errors before any work),
then hand over to `hydra_run`, a plain Hydra app that returns the run's objective (the IA's
verbalization rate of the held-out organisms), so Hydra sweepers such as Optuna's can use it."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from safetensors import SafetensorError

from harness.cli.compose import check, group_options, output_folders
from harness.core import run_folder
from harness.core.errors import EXIT_BAD_INPUT, ConfigError, internal_error, one_line
from harness.core.paths import CONF_DIR

NAME = "run"
HELP = "the whole experiment: base model, organisms, IA, probes, leaderboard"
RUN_EXAMPLES = """\
examples:
  harness run                                          # embedded tiny model, all families
  harness run families=[preferences,biases]            # a subset of families
  harness run preset=smoke                             # a smoke run: every stage, under a minute
  harness run organism.steps=60 organism.rank=4        # change the implant
  harness run model=hf model.name_or_path=/path/to/model
  harness run split=leave_one_family_out split.heldout_family=biases
  harness run split=heldout_route                      # evaluate on full / distill / deny organisms
  harness run split=symmetry_attack ia=lora_sft_dpo    # permuted-weight organisms, an IA with DPO
  harness run --multirun ia.rank=1,4,16 logger=none    # a sweep, one run folder per job
  harness run --multirun sweeps=ia_rank hydra/launcher=joblib   # a preset from sweeps/, 2 local processes
  harness run --multirun sweeps=scaling_families hydra/launcher=slurm hydra.launcher.partition=gpu
  harness run --cfg job                                # print the composed config

config groups: model ({model}), organism (lora), split ({split}),
  ia ({ia}), probe (default), logger (wandb, wandb_online, none), families ({families}),
  preset ({preset}), sweeps ({sweeps}),
  hydra/launcher (basic, joblib; with extras: submitit_local, submitit_slurm, slurm, ray, ray_cluster)
artifacts are cached in .cache/harness (or $HARNESS_CACHE); each run writes outputs/<date>/<time>-<pid>/
"""


def examples() -> str:
    groups = ("model", "families", "preset", "sweeps", "split", "ia")
    return RUN_EXAMPLES.format(**{g: ", ".join(group_options(g)) for g in groups})


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", help="Hydra overrides (key=value, group=option) and flags "
                   "(--multirun, --cfg job, ...)")


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def hydra_run(cfg: DictConfig) -> float | None:
    """The plain Hydra app (console script `harness-hydra`): one job of a run or a sweep. Returns
    the objective, the IA's verbalization rate of the held-out organisms (None for a sweep's
    fan-out job, or NaN when none was scored)."""
    from harness.core.tracking import headline
    from harness.lm.models import slow_dtype
    from harness.report import leaderboard
    from harness.run import pipeline
    from harness.run.dag import validate
    from harness.train.training import set_threads

    typed = validate(cfg)
    hydra_cfg = HydraConfig.get()
    typed.output_dir = hydra_cfg.runtime.output_dir
    set_threads(typed.threads)
    if note := slow_dtype(typed.model):
        logging.getLogger("harness").warning(f"harness: warning: {note}")
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    if in_sweep:  # one line per job on the console (the sweep prints its table once); cli.log keeps every line
        quiet_console()
    failing_log_stops_the_run()
    try:
        result = pipeline.run(typed, overrides=leaderboard.override_pairs(list(hydra_cfg.overrides.task)),
                              command=" ".join(["harness run", *hydra_cfg.overrides.task]))
    except Exception as e:
        if isinstance(e, ConfigError):  # found only once the job runs (e.g. no organism implanted)
            print(f"harness: error: {e}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        if isinstance(e, OSError):  # disk full, no permission: finished artifacts and results stay as they were
            print(f"harness: error: {e.strerror or e} ({e.filename or 'while writing'})", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        if isinstance(e, SafetensorError):  # safetensors' own write error (disk full while weights are saved)
            print(f"harness: error: cannot write model weights ({one_line(e)})", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        sys.exit(internal_error(e))
    if result is None:  # a fan-out job of a sweep: its artifacts are in the store
        return None
    lines = ["", result.table.to_markdown(index=False, floatfmt=".2f"), "",
             leaderboard.family_summary(result.table).to_markdown(index=False, floatfmt=".2f")]
    failed = result.table[~result.table.implanted]
    if len(failed):
        lines.append(f"\n{len(failed)} organism(s) below the implant threshold "
                     f"({typed.organism.threshold}), marked implanted=false: {', '.join(failed.behavior)}")
    if result.scored and not any(c.check.implanted for c in result.scored):
        lines.append(f"\nNone of the {len(result.scored)} evaluation organisms implanted: they have no behavior to "
                     "report, so the self-report figures below measure nothing (this run checks that every stage "
                     "runs). A first result that means something: harness run preset=quick.")
    lines += ["\nverbalization rate of held-out organisms per family, by condition (full table: leaderboard.md):",
              leaderboard.to_markdown(leaderboard.compact(result.leaderboard)),
              *(["", *said] if (said := leaderboard.reading(result.metrics, typed.organism.route,
                                                            result.headline_power)) else []),
              f"\nrun {result.run_id}: results written to {result.output_dir}/ (organisms, metrics.json, "
              "self_reports.jsonl, leaderboard)"]
    if result.wandb:
        lines.append(f"W&B run: {result.wandb}")
    logging.getLogger("harness").info("\n".join(lines))  # the console, and the run folder's cli.log
    if in_sweep:
        said = headline(result.metrics, typed.organism.route).get("headline/summary", "no organism scored")
        print(f"job {hydra_cfg.job.num} ({' '.join(hydra_cfg.overrides.task) or 'defaults'}): {said}; "
              f"results in {result.output_dir}")
    return objective(result.metrics, typed.organism.route)


def failing_log_stops_the_run() -> None:
    """A log file that cannot be written (the run folder's cli.log, disk full) stops the run with
    the write's error, as any failed write does, where logging would print a traceback and go on."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handleError = write_failed(handler)


def write_failed(handler: logging.FileHandler):
    """A handler's handleError: the OSError its write raised, raised again naming its file (any
    other error handled as logging does)."""
    default = handler.handleError

    def handle(record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            raise OSError(error.errno, error.strerror, handler.baseFilename) from error
        default(record)

    return handle


def quiet_console() -> None:
    """The console handlers of the root logger (Hydra's job logging) show warnings only."""
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.WARNING)


def objective(rows, route: str) -> float:
    """The IA's verbalization rate over every held-out organism of the IA's own route."""
    return next((m.value for m in rows if (m.condition, m.family, m.metric, m.route) == ("ia", "all", "verbalization",
                                                                                          route)), math.nan)


def run_command(args: list[str]) -> int:
    """`harness run`: check every sweep value's config, then the Hydra app."""
    from harness.families import search_overrides

    modes = [a for a in args if a in ("-m", "--multirun", "-c", "--cfg", "--info")]
    if len(modes) > 1:
        print(f"harness: error: {' and '.join(modes)} cannot be used together", file=sys.stderr)
        return EXIT_BAD_INPUT
    takes_value = ("--cfg", "-c", "--package", "-p", "--info")
    overrides = [a for i, a in enumerate(args)
                 if not a.startswith("-") and not (i and args[i - 1] in takes_value)]
    multirun, writes = any(a in ("-m", "--multirun") for a in args), not modes or modes[0] in ("-m", "--multirun")
    try:
        check(overrides, multirun=multirun, writes=writes)
        args = search_overrides(args)  # families_dir=DIR: a search path for Hydra
        folder = output_folders(overrides).get("hydra.run.dir") if writes and not multirun else None
        with run_folder.locked(folder) if folder else contextlib.nullcontext():  # before Hydra writes there
            sys.argv = ["harness run", *args]
            hydra_run()
    except ConfigError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0
