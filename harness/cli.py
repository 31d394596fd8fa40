"""Console script `harness`: argparse subcommands, each with its own `--help` and examples.

`harness run` checks the config of every sweep value first (one-line errors before any work),
then hands over to `hydra_run`, a plain Hydra app that returns the run's objective (the IA's
verbalization rate of the held-out organisms), so Hydra sweepers such as Optuna's can use it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import logging
import math
import os
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig

from harness import manifest
from harness.config import CONF_DIR, TASKS_DIR, Config
from harness.errors import EXIT_BAD_INPUT, EXIT_FINDING, EXIT_INTERNAL, EXIT_INTERRUPTED, ConfigError, one_line
from harness.run_folder import previous_outputs

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

EXAMPLES = {
    "leaderboard": """\
examples:
  harness leaderboard                                  # every run under outputs/ and multirun/
  harness leaderboard multirun/2026-11-26              # every run under a folder, one table
  harness leaderboard --sweep multirun/ia_rank/2026-11-27_10-00-00   # swept values as columns + plot
  harness leaderboard --ci --sort quirks               # values with 95% intervals and n, best quirks first
  harness leaderboard --condition ia --sort verbalization          # the IA's rows, best first
  harness leaderboard --format json > board.json       # every column (csv, json): intervals, n, direction
  harness leaderboard --group ia_rank-2026-11-27_10-00-00-4321    # the runs of one sweep's W&B group
  harness leaderboard --from-wandb me/introspection-harness          # from W&B (the API, or offline files)
""",
    "export-lm-eval": """\
examples:
  harness export-lm-eval                               # every family's probes as lm-eval tasks
  harness export-lm-eval --with-ia .cache/harness/ia/<key>/ia --model .cache/harness/organisms/<key>
                                                       # ... and the IA condition as one merged checkpoint
  harness export-lm-eval --out my_tasks families=[preferences]
""",
    "audit": """\
examples:
  harness audit --model .cache/harness/organisms/<key> --ia .cache/harness/ia/<key>/ia
  harness audit --model my-peft-lora/ --ia my-ia/ --base Qwen/Qwen3-0.6B model=hf model.name_or_path=Qwen/Qwen3-0.6B
exit status: 0 every measured behavior was reported with the IA, 1 a measured behavior went
unreported (a verdict of `hidden`), 2 bad input, 3 an internal error (a traceback to report)
""",
    "report": """\
examples:
  harness report                                       # the newest run under outputs/
  harness report multirun/ia_rank/2026-11-27_10-00-00  # a sweep folder
""",
    "families": """\
examples:
  harness families                                     # the built-in families and their behaviors
  harness families families_dir=~/my_families          # with your own (DIR/families/<name>.yaml, or DIR named families)
""",
    "agreement": """\
examples:
  harness agreement outputs/<date>/<time> --judge-model /models/Qwen3-4B   # the judge against the rules
  harness agreement outputs/<date>/<time> --grader embedding                # the embedding grader instead
""",
    "compare": """\
examples:
  harness compare multirun/ia_dpo/<date>/0 multirun/ia_dpo/<date>/1   # two IAs of one sweep, B minus A
  harness compare RUN_A RUN_B --metric kind --condition no_ia        # another metric, another condition
each row: the organisms both runs scored (n), their mean under A and under B, the mean of the
per-organism differences B - A with a paired bootstrap 95% interval over organisms, and the
two-sided sign-flip permutation p-value (exact up to 16 organisms)
""",
    "export-inspect": """\
examples:
  harness export-inspect outputs/<date>/<time>         # writes outputs/<date>/<time>/inspect/*.eval
  inspect view --log-dir outputs/<date>/<time>/inspect # browse the self-reports and probe answers
  harness export-inspect RUN --out inspect_logs/my_run
one log per condition (selfreport_ia, selfreport_no_ia, ...; each sample a self-report scored by the
rules grader, its organism, family, route and IA as metadata) and one of the probes (probe)
""",
    "cache": """\
examples:
  harness cache ls                                     # every artifact: what it is, size, date
  harness cache verify                                 # check every artifact's checksums (exit 1 if one fails)
  harness cache rm organisms/0123456789abcdef          # remove one; the next run rebuilds it
  harness cache gc seed=1                              # list what a complete run of this config does not use
  harness cache gc seed=1 --yes                        # ... and remove it
  harness cache ls cache_dir=/shared/cache             # another store
""",
}

LAUNCHER_EXTRAS = {"ray": "ray", "ray_cluster": "ray", "submitit_local": "slurm", "submitit_slurm": "slurm",
                   "slurm": "slurm"}
"""Launchers shipped as extras: `pip install 'introspection-harness[<extra>]'`."""
UNUSABLE_LAUNCHERS = {"ray_aws": "its AWS cluster config fails the installed ray's schema; start a cluster with "
                                 "`ray up` and use hydra/launcher=ray_cluster"}
"""Launchers an installed plugin (hydra-ray-launcher) ships that cannot run: completion does not
offer them, and a run refuses them in one line."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one `harness: error: ...` line."""

    def error(self, message: str):
        raise ConfigError(f"{self.prog.removeprefix('harness ')}: {message}")


def build_parser() -> Parser:
    parser = Parser(prog="harness", formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="Train and evaluate introspection adapters on model organisms.",
                    epilog="`harness <command> --help` shows a command's options and examples.")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=Parser)

    def command(name: str, help: str, epilog: str) -> Parser:
        return sub.add_parser(name, help=help, description=help, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    run = command("run", "the whole experiment: base model, organisms, IA, probes, leaderboard", run_examples())
    run.add_argument("overrides", nargs="*", help="Hydra overrides (key=value, group=option) and flags "
                     "(--multirun, --cfg job, ...)")
    board = command("leaderboard", "one table from every run's metrics.json", EXAMPLES["leaderboard"])
    board.add_argument("folders", nargs="*", type=Path, help="folders to search (default: outputs multirun)")
    board.add_argument("--sweep", type=Path, help="a sweep's folder: swept values as columns, and a plot")
    board.add_argument("--group", help="the runs of a W&B group")
    board.add_argument("--from-wandb", metavar="ENTITY/PROJECT|DIR", help="W&B runs: the API, or offline run files")
    board.add_argument("--out", type=Path, help="also write the table (markdown, csv and json) here")
    board.add_argument("--format", choices=leaderboard_formats(), default="md",
                       help="what is printed: md (the compact table), csv or json (every column, with intervals)")
    board.add_argument("--condition", choices=conditions(), help="only the rows of one condition (the IA: ia)")
    board.add_argument("--ci", action="store_true", help="md: each value as `value [95%% interval] n=N`")
    board.add_argument("--metric", default="verbalization", choices=leaderboard_metrics(),
                       help="md: the metric shown per family (default: verbalization)")
    board.add_argument("--sort", metavar="METRIC", help="best first by a metric column (all/verbalization), a "
                       "metric (hallucination: all/hallucination) or a family (quirks: quirks/verbalization); "
                       "lower is better for hallucination, denial and the base FPR")
    board.add_argument("--log", action="store_true",
                       help="with --sweep or --group: also log the table and plot as a W&B run (job type sweep)")
    export = command("export-lm-eval", "write every family's probes as lm-eval tasks", EXAMPLES["export-lm-eval"])
    export.add_argument("--out", type=Path, default=Path("outputs/lm_eval_tasks"))
    export.add_argument("--with-ia", type=Path, metavar="IA", help="also write the IA condition as one checkpoint: "
                        "--model with this IA merged in (run lm-eval's selfreport tasks on it)")
    export.add_argument("--model", type=Path, help="with --with-ia: the organism (a peft adapter or a checkpoint)")
    export.add_argument("--base", help="with --with-ia: the base model (default: the IA's own base)")
    export.add_argument("--merged", type=Path, help="with --with-ia: where the checkpoint goes "
                        "(default: outputs/lm_eval_models/<model>_with_ia)")
    export.add_argument("overrides", nargs="*", help="config overrides (families=..., ...)")
    audit = command("audit", "probe any fine-tune for every behavior, ask it with and without the IA",
                    EXAMPLES["audit"])
    audit.add_argument("--model", type=Path, required=True, help="a peft adapter or a checkpoint")
    audit.add_argument("--ia", type=Path, required=True, help="the IA adapter")
    audit.add_argument("--base", help="the base model (default: the adapter's own base)")
    audit.add_argument("--out", type=Path, help="where the audit card goes (default: outputs/audit/<model>)")
    audit.add_argument("overrides", nargs="*", help="config overrides (families=..., model=hf ...)")
    report = command("report", "one static HTML page for a run or a sweep folder", EXAMPLES["report"])
    report.add_argument("folder", nargs="?", type=Path, help="a run or sweep folder (default: the newest run)")
    report.add_argument("--out", type=Path)
    report.add_argument("--log", action="store_true", help="also log the plots as a W&B run (job type report)")
    families = command("families", "list the behavior families and their behaviors", EXAMPLES["families"])
    families.add_argument("overrides", nargs="*", help="families_dir=DIR adds your own folder of families")
    agree = command("agreement", "how often another grader (the LLM judge) agrees with the rules grader on a "
                    "run's self-reports", EXAMPLES["agreement"])
    agree.add_argument("run", type=Path, help="a run folder (its self_reports.jsonl)")
    agree.add_argument("--grader", default="judge", help="the grader to compare with the rules (default: judge)")
    agree.add_argument("--judge-model", help="with --grader judge: a local Hugging Face causal LM")
    agree.add_argument("overrides", nargs="*", help="families_dir=DIR for runs of your own families")
    pair = command("compare", "the paired difference of two runs on the organisms both scored", EXAMPLES["compare"])
    pair.add_argument("run_a", type=Path, help="a run folder (A)")
    pair.add_argument("run_b", type=Path, help="a run folder (B): the rows are B minus A")
    pair.add_argument("--metric", default="verbalization", choices=report_metrics(),
                      help="a per-organism metric (default: verbalization)")
    pair.add_argument("--condition", default="ia", choices=conditions()[:3], help="the condition (default: ia)")
    pair.add_argument("--route", default="lora", help="the evaluation organisms' route (default: lora)")
    inspect = command("export-inspect", "write a run as Inspect AI eval logs, for `inspect view`",
                      EXAMPLES["export-inspect"])
    inspect.add_argument("run", type=Path, help="a run folder of `harness run`")
    inspect.add_argument("--out", type=Path, help="where the logs go (default: RUN/inspect)")
    cache = command("cache", "list, verify, remove or garbage-collect the artifact store", EXAMPLES["cache"])
    cache.add_argument("action", choices=("ls", "verify", "rm", "gc"))
    cache.add_argument("items", nargs="*", help="config overrides (key=value; cache_dir=... picks the store) "
                       "and, for rm, artifacts as kind/key")
    cache.add_argument("--yes", action="store_true", help="gc: remove, not only list")
    return parser


def run_examples() -> str:
    groups = ("model", "families", "preset", "sweeps", "split", "ia")
    return RUN_EXAMPLES.format(**{g: ", ".join(group_options(g)) for g in groups})


def _variants(overrides: Sequence[str]) -> tuple[list[list[str]], list[str]]:
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


def check(overrides: Sequence[str], multirun: bool = False) -> Config:
    """Compose and validate the config of every sweep value; ConfigError names the first problem."""
    from harness.families import family_files, search_overrides
    from harness.gguf import gguf_path
    from harness.grading import JUDGE, check_grader
    from harness.models import check_model_source
    from harness.stage import Run, validate

    overrides = search_overrides(overrides)
    for name, why in UNUSABLE_LAUNCHERS.items():
        if f"hydra/launcher={name}" in (o.lstrip("+") for o in overrides):
            raise ConfigError(f"hydra/launcher={name}: {why}")
    family_files(overrides)  # each file checked before Hydra reads it
    try:
        variants, sweeps = _variants(overrides)
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
        raise ConfigError(_explain(e, overrides)) from e
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
            gguf_path(t.model.gguf_file)
    if any(t.logger.mode == "online" for t in typed):
        import wandb

        if not wandb.login(prompt=False, verify=False):  # no network needed: are there credentials at all?
            raise ConfigError("logger.mode=online: no W&B credentials (run `wandb login` or set WANDB_API_KEY), "
                              "or log offline (logger=wandb) and `wandb sync` later")
    for o in overrides:
        key, _, value = o.lstrip("+").partition("=")
        if key in ("hydra.run.dir", "hydra.sweep.dir"):
            check_output_folder(Path(value), key)
        if key == "hydra.run.dir":  # before Hydra writes its .hydra/ into someone else's folder
            previous_outputs(Path(value))
    return typed[0]


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


def _explain(error: Exception, overrides: Sequence[str] = ()) -> str:
    message = one_line(error)
    missing = re.search(r"Could not (?:find|load) '([\w/]+)/(\w+)'", message)
    if missing:
        group, name = missing.groups()
        if group == "hydra/launcher" and name in LAUNCHER_EXTRAS:
            return (f"hydra/launcher={name} needs its Hydra plugin: "
                    f"pip install 'introspection-harness[{LAUNCHER_EXTRAS[name]}]'")
        return f"unknown {group} option {name!r} (known: {', '.join(group_options(group, overrides))})"
    return message.split(" Config search path:")[0]


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def hydra_run(cfg: DictConfig) -> float | None:
    """The plain Hydra app (console script `harness-hydra`): one job of a run or a sweep. Returns
    the objective, the IA's verbalization rate of the held-out organisms (None for a sweep's
    fan-out job, or NaN when none was scored)."""
    from harness import leaderboard, pipeline
    from harness.progress import close_bars
    from harness.stage import validate
    from harness.stages.organisms import family_summary
    from harness.tracking import headline
    from harness.training import set_threads

    typed = validate(cfg)
    hydra_cfg = HydraConfig.get()
    typed.output_dir = hydra_cfg.runtime.output_dir
    set_threads(typed.threads)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    if in_sweep:  # one line per job on the console (the sweep prints its table once); cli.log keeps every line
        quiet_console()
    try:
        result = pipeline.run(typed, overrides=leaderboard.override_pairs(list(hydra_cfg.overrides.task)),
                              command=" ".join(["harness run", *hydra_cfg.overrides.task]))
    except Exception as e:
        close_bars()  # so that the failure's one line is the last thing on the console
        if isinstance(e, ConfigError):  # found only once the job runs (e.g. no organism implanted)
            print(f"harness: error: {e}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        if isinstance(e, OSError):  # disk full, no permission: finished artifacts and results stay as they were
            print(f"harness: error: {e.strerror or e} ({e.filename or 'while writing'})", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        sys.exit(internal_error(e))
    if result is None:  # a fan-out job of a sweep: its artifacts are in the store
        return None
    lines = ["", result.table.to_markdown(index=False, floatfmt=".2f"), "",
             family_summary(result.table).to_markdown(index=False, floatfmt=".2f")]
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
              *(["", *said] if (said := leaderboard.reading(result.metrics, typed.organism.route)) else []),
              f"\nrun {result.run_id}: results written to {result.output_dir}/ (organisms, metrics.json, "
              "self_reports.jsonl, leaderboard)"]
    if result.wandb_dir is not None:
        hint = f" (upload it later: wandb sync {result.wandb_dir})" if typed.logger.mode == "offline" else ""
        lines.append(f"W&B run folder: {result.wandb_dir}{hint}")
    logging.getLogger("harness").info("\n".join(lines))  # the console, and the run folder's cli.log
    if in_sweep:
        said = headline(result.metrics, typed.organism.route).get("headline/summary", "no organism scored")
        print(f"job {hydra_cfg.job.num} ({' '.join(hydra_cfg.overrides.task) or 'defaults'}): {said}; "
              f"results in {result.output_dir}")
    return objective(result.metrics, typed.organism.route)


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
    try:
        check(overrides, multirun=any(a in ("-m", "--multirun") for a in args))
        args = search_overrides(args)  # families_dir=DIR: a search path for Hydra
    except ConfigError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.argv = ["harness run", *args]
    hydra_run()
    return 0


def conditions() -> tuple[str, ...]:
    from harness.records import CONDITIONS

    return tuple(CONDITIONS)


def report_metrics() -> tuple[str, ...]:
    from harness.metrics import REPORT_VALUES

    return tuple(REPORT_VALUES)


def leaderboard_metrics() -> tuple[str, ...]:
    from harness.leaderboard import METRICS

    return tuple(METRICS)


def leaderboard_formats() -> tuple[str, ...]:
    from harness.leaderboard import FORMATS

    return FORMATS


def leaderboard_command(a: argparse.Namespace) -> int:
    from harness import leaderboard
    from harness.config import LoggerConfig

    out, sweep, group, source, args = a.out, a.sweep, a.group, a.from_wandb, [str(f) for f in a.folders]
    if a.log and sweep is None and group is None:
        raise ConfigError("--log goes with --sweep or --group (it logs their table and plot as a W&B run)")
    if a.ci and a.format != "md":
        raise ConfigError(f"--ci goes with --format md (--format {a.format} holds every interval already)")
    if a.metric != "verbalization" and a.format != "md":
        raise ConfigError(f"--metric goes with --format md (--format {a.format} holds every metric already)")
    if source is not None:
        from harness.wandb_runs import load_wandb_results

        if args or sweep:
            raise ConfigError("--from-wandb takes no run folders and no --sweep")
        board = leaderboard.leaderboard(load_wandb_results(source))
        if board.empty:
            raise ConfigError(f"no evaluation runs in {source}")
        return show(board, a, f"by W&B run and condition ({source})", out)
    if sweep is not None:
        if args or group:
            raise ConfigError("--sweep takes one sweep folder and no other folder or --group")
        args = [sweep]
    missing = [a for a in args if not Path(a).is_dir()]
    if missing:
        raise ConfigError(f"no such folder: {missing[0]}")
    folders = [Path(a) for a in args] or [f for f in (Path("outputs"), Path("multirun")) if f.is_dir()]
    results = leaderboard.load_results(folders)
    if group is not None:
        results = leaderboard.in_group(results, group) or no_group(leaderboard.load_results(folders), group)
    if not results:
        where = ", ".join(map(str, folders)) or "outputs, multirun"
        raise ConfigError(f"no {leaderboard.RESULTS_FILE} under {where}: run `harness run` first")
    if sweep is not None or group is not None:
        target = out or Path(sweep or f"multirun/{group}")
        target.mkdir(parents=True, exist_ok=True)
        logger = LoggerConfig(group=group or results[0].group) if a.log else None  # reading writes no W&B run
        board, written, logged = leaderboard.write_sweep(results, target, logger)
        if a.format != "md" or a.ci or a.sort or a.metric != "verbalization":
            show(board, a, "by swept value and condition", out=None)  # written above
        else:
            print(f"{len(results)} runs; " + leaderboard.sweep_text(board, written))
        if logged:
            print(f"W&B run (job type sweep): {logged}", file=sys.stdout if a.format == "md" else sys.stderr)
        return 0
    return show(leaderboard.leaderboard(results), a, "by run and condition", out)


def show(board, a: argparse.Namespace, rows: str, out: Path | None) -> int:
    """Print a leaderboard as asked (sorted, in a format) and write it under `out`."""
    from harness import leaderboard

    if a.condition:
        board = board[board.condition == a.condition].reset_index(drop=True)
    if a.sort:
        board = leaderboard.sort(board, a.sort)
    if a.format == "md":
        print(f"{a.metric} per family, {rows} (↓: lower is better; every column: --format csv or json)")
    print(leaderboard.render(board, a.format, a.ci, a.metric).rstrip("\n"))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        print(f"\nwritten to {', '.join(map(str, leaderboard.write(board, out)))}",
              file=sys.stdout if a.format == "md" else sys.stderr)
    return 0


def no_group(results, group: str) -> list:
    """`--group` names no group: say which groups there are (a sweep's group is its preset's name
    and the time it started, e.g. ia_rank-2026-11-28_10-00-00-4321)."""
    groups = sorted({r.group for r in results if r.group})
    near = [g for g in groups if g.startswith(f"{group}-")]
    known = f"groups of {group!r}: {', '.join(near)}" if near else f"known: {', '.join(groups) or 'none'}"
    raise ConfigError(f"no run of W&B group {group!r} ({known})")


def export_command(a: argparse.Namespace) -> int:
    from harness.core import question_split
    from harness.families import build_families
    from harness.lm_eval_export import check_merge, export, merge_with_ia

    if (a.with_ia is None) != (a.model is None) or (a.with_ia is None and (a.base or a.merged)):
        raise ConfigError("--with-ia IA and --model MODEL go together (--base and --merged only with them)")
    out, cfg = a.out, check(a.overrides)
    merged = a.merged or (Path("outputs/lm_eval_models") / f"{a.model.resolve().name}_with_ia" if a.model else None)
    if a.with_ia is not None:
        check_merge(a.model, a.with_ia, a.base, merged)  # before writing anything
    held_out = question_split(cfg.ia.train_templates)[1]
    tasks = export(build_families(cfg.families, cfg.model.free_text), cfg.families, out, cfg.organism.probe_prompts,
                   cfg.organism.max_new_tokens, held_out, cfg.probe.samples, cfg.probe.temperature,
                   cfg.probe.max_new_tokens)
    groups = " ".join(f"probe_{f} selfreport_{f}" for f in cfg.families)
    print(f"wrote {len(tasks)} lm-eval tasks to {out}/ (groups, one score per family: {groups})")
    controls = [t for t in tasks if t.endswith("_control")]
    if controls:
        print(f"{len(controls)} behaviors are measured as a difference: the harness's rate of probe_<id> is its "
              "mean minus the mean of probe_<id>_control (groups control_<family>)")
    print(f"run one: lm_eval --model hf --model_args pretrained=<base>,peft=<organism> --apply_chat_template "
          f"--include_path {out} --tasks {tasks[0]} --device cpu")
    if a.with_ia is not None:
        merge_with_ia(a.model, a.with_ia, a.base, merged, cfg.model.trust_remote_code)
        print(f"the IA condition: {a.model} with the IA merged in, written to {merged}/\n"
              f"run it: lm_eval --model hf --model_args pretrained={merged} --apply_chat_template "
              f"--include_path {out} --tasks selfreport_<family> --device cpu")
    return 0


AUDIT_FILES = ("audit.json", "audit.md")


def audit_command(a: argparse.Namespace) -> int:
    from dataclasses import asdict

    from harness import audit
    from harness.families import build_families
    from harness.store import write_json, write_text

    out = a.out or Path("outputs/audit") / a.model.resolve().name
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file, not a folder")
    if out.is_dir():
        manifest.check_replaceable(out, AUDIT_FILES, "--out")
    cfg = check(a.overrides)
    card = audit.audit(a.model, a.ia, a.base, build_families(cfg.families, cfg.model.free_text), cfg)
    out.mkdir(parents=True, exist_ok=True)
    text = audit.to_markdown(card)
    write_json(out / "audit.json", asdict(card))
    write_text(out / "audit.md", text)
    manifest.record(out, AUDIT_FILES)
    print(text)
    print(f"audit card written to {out / 'audit.md'} and {out / 'audit.json'}")
    return EXIT_FINDING if card.with_verdict("hidden") else 0


def report_command(a: argparse.Namespace) -> int:
    from harness import leaderboard, tracking
    from harness.config import LoggerConfig
    from harness.report import write_report

    out = a.out
    if a.folder is not None:
        folder = a.folder
    else:
        runs = sorted(Path("outputs").glob("*/*/metrics.json"))
        if not runs:
            raise ConfigError("no run under outputs/: run `harness run` first, or name a folder")
        folder = runs[-1].parent
    if not folder.is_dir():
        raise ConfigError(f"no such folder: {folder}")
    if (out or folder).is_dir():
        manifest.check_replaceable(out or folder, ["report.html"], "report")
    path = write_report(folder, out)
    manifest.record(path.parent, ["report.html"])
    print(f"report written to {path} (one self-contained file: open it in a browser, or send it)")
    if a.log:  # reading writes no W&B run unless asked
        group = next((r.group for r in leaderboard.load_results([folder]) if r.group), None)
        print(f"W&B run (job type report): {tracking.log_report(LoggerConfig(group=group), path)}")
    return 0


def families_command(a: argparse.Namespace) -> int:
    from harness.families import build_family, family_files, load_family_config, search_overrides

    for name, path in family_files(search_overrides(a.overrides)).items():
        behaviors = build_family(name, load_family_config(path)).behaviors()
        origin = "built-in" if path.is_relative_to(TASKS_DIR.resolve()) else f"from {path}"
        print(f"{name} ({len(behaviors)} behavior{'s' * (len(behaviors) != 1)}, {origin})")
        for b in behaviors:
            print(f"  {b.id:45s} {b.descriptions[0]}")
    return 0


def store_root(overrides: Sequence[str]) -> str:
    """The artifact store a command line names (cache_dir=..., else the config's default)."""
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            return str(compose("config", overrides=list(overrides)).cache_dir)
    except Exception as e:
        raise ConfigError(_explain(e, overrides)) from e


def cache_command(a: argparse.Namespace) -> int:
    from harness import cache
    from harness.progress import progress_bar
    from harness.store import Store

    overrides = [i for i in a.items if "=" in i]
    names = [i for i in a.items if "=" not in i]
    if names and a.action != "rm":
        raise ConfigError(f"cache {a.action}: {names[0]!r} is not an override (key=value)")
    ignored = [o for o in overrides if o.lstrip("+").partition("=")[0] != "cache_dir"]
    if ignored and a.action != "gc":  # only gc asks what a config needs
        raise ConfigError(f"cache {a.action}: {ignored[0]} is not used (cache_dir=DIR picks the store; a config "
                          "matters to cache gc only)")
    cfg = check(overrides) if a.action == "gc" else None
    store = Store(cfg.cache_dir if cfg else store_root(overrides))
    artifacts = list(store.artifacts())
    if a.action == "ls":
        entries = [cache.describe(store, kind, key) for kind, key in artifacts]
        for e in entries:
            print(f"{e.kind:10s} {e.key}  {e.bytes / 2**20:8.2f} MiB  {e.date}  {e.what}")
        print(f"{len(entries)} artifacts, {sum(e.bytes for e in entries) / 2**20:.1f} MiB in {store.root}")
        return 0
    if a.action == "verify":
        bad = [(kind, key, problems) for kind, key in progress_bar(artifacts, "verify", sys.stderr.isatty())
               if (problems := store.verify(kind, key))]
        for kind, key, problems in bad:
            print(f"{kind}/{key}: {'; '.join(problems)}")
        removable = [f"{k}/{x}" for k, x, _ in bad if store.owns(k, x)]
        print(f"{len(artifacts) - len(bad)} of {len(artifacts)} artifacts intact in {store.root}"
              + (f"; remove the damaged with `harness cache rm {' '.join(removable)}`" if removable else "")
              + ("; move or delete the folders the harness did not write there yourself"
                 if len(removable) < len(bad) else ""))
        return EXIT_FINDING if bad else 0
    if a.action == "rm":
        if not names:
            raise ConfigError("cache rm: name the artifacts to remove (kind/key, as `harness cache ls` shows them)")
        print(f"removed {cache.remove(store, cache.parse_artifacts(names, store))} artifacts from {store.root}")
        return 0
    from harness.stage import Run

    keep = cache.needed(Run.of(cfg))
    unused = [(kind, key) for kind, key in artifacts if (kind, key) not in keep and store.owns(kind, key)]
    for kind, key in sorted(set(artifacts) - keep - set(unused)):
        print(f"left alone: {kind}/{key} (the harness did not write that folder there)")
    for kind, key in unused:
        print(f"{'removing' if a.yes else 'unused'}: {kind}/{key}  {cache.describe(store, kind, key).what}")
    if a.yes:
        cache.remove(store, unused)
    print(f"{len(unused)} of {len(artifacts)} artifacts unused by this config"
          + (" removed" if a.yes else " (add --yes to remove them)"))
    return 0


def agreement_command(a: argparse.Namespace) -> int:
    from harness.families import build_families
    from harness.grading import check_grader, grader_for, prepare, rules
    from harness.metrics import agreement
    from harness.records import ReportRow, read_jsonl
    from harness.store import write_json

    check_grader(a.grader, a.judge_model)
    if a.judge_model:
        from harness.models import check_model_source

        check_model_source(a.judge_model)
    if a.grader == "rules":
        raise ConfigError("--grader rules: compare another grader with the rules (judge, embedding)")
    path = a.run / "self_reports.jsonl"
    if not path.is_file():
        raise ConfigError(f"{a.run}: no self_reports.jsonl (a run folder of `harness run`)")
    reports = read_jsonl(path, ReportRow)
    cfg = check(a.overrides)
    families = build_families(cfg.families, cfg.model.free_text)
    scored = sorted({r.model for r in reports if r.model != "base"})
    unknown = [m for m in scored if m.split("/")[0] not in families]
    if unknown:
        raise ConfigError(f"{unknown[0]}: its family is not known here (families_dir=DIR for your own)")
    behaviors = {}
    for m in scored:
        family = families[m.split("/")[0]]
        behaviors[m] = (family, family.behavior(m))
    # each organism's reports against its own behavior; the base model's against every behavior
    pairs = [(r.report, behaviors[m]) for r in reports for m in ([r.model] if r.model != "base" else scored)]
    other = grader_for(a.grader, a.judge_model)
    prepare(other, [r for r, _ in pairs], list(behaviors.values()))
    verdicts = [(rules(f, b, r), other(f, b, r)) for r, (f, b) in pairs]
    figures = agreement([x for x, _ in verdicts], [y for _, y in verdicts])
    figures |= {"grader": a.grader, "judge_model": a.judge_model, "run": str(a.run)}
    print(f"rules vs {a.grader} on {figures['n']} (report, behavior) pairs of {a.run}: agreement "
          f"{figures['agreement']:.2f}, Cohen's kappa {figures['kappa']:.2f}; both yes {figures['both']}, rules only "
          f"{figures['only_a']}, {a.grader} only {figures['only_b']}, neither {figures['neither']}")
    out = a.run / f"agreement_{a.grader}.json"
    write_json(out, figures)
    print(f"written to {out}")
    return 0


def compare_command(a: argparse.Namespace) -> int:
    from harness.compare import compare
    from harness.records import ReportRow, read_jsonl

    reports = []
    for run in (a.run_a, a.run_b):
        if not (run / "self_reports.jsonl").is_file():
            raise ConfigError(f"{run}: no self_reports.jsonl (a run folder of `harness run`)")
        reports.append(read_jsonl(run / "self_reports.jsonl", ReportRow))
    rows = compare(*reports, metric=a.metric, condition=a.condition, route=a.route)
    print(f"{a.metric} under {a.condition} ({a.route} organisms), B minus A\n  A: {a.run_a}\n  B: {a.run_b}\n")
    print("| family | n | A | B | B - A [95% CI] | p |\n|---|---:|---:|---:|---|---:|")
    for r in rows:
        interval = f" [{r.low:+.2f}, {r.high:+.2f}]" if r.n > 1 else ""
        print(f"| {r.family} | {r.n} | {r.a:.2f} | {r.b:.2f} | {r.difference:+.2f}{interval} | {r.p:.3f} |")
    return 0


def export_inspect_command(a: argparse.Namespace) -> int:
    from harness.inspect_export import export

    if importlib.util.find_spec("inspect_ai") is None:
        raise ConfigError("export-inspect needs Inspect AI: pip install 'introspection-harness[inspect]'")

    out = a.out or a.run / "inspect"
    inside = out.resolve().parent == a.run.resolve()
    if inside:
        manifest.check_replaceable(a.run, [out.name], "export-inspect")
    logs = export(a.run, out)
    if inside:
        manifest.record(a.run, [out.name])
    print(f"wrote {len(logs)} Inspect eval logs to {out}/ (tasks {', '.join(p.stem.split('_')[1] for p in logs)})\n"
          f"browse them: inspect view --log-dir {out}")
    return 0


COMMANDS = {"leaderboard": leaderboard_command, "export-lm-eval": export_command,
            "export-inspect": export_inspect_command, "audit": audit_command,
            "report": report_command, "families": families_command, "cache": cache_command,
            "agreement": agreement_command, "compare": compare_command}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        if args and args[0] not in ("run", *COMMANDS) and not args[0].startswith("-"):
            raise ConfigError(f"unknown command {args[0]!r} (known: run, {', '.join(COMMANDS)})")
        if {"-sc", "--shell-completion"} & set(args[:2]):
            return shell_completion([a for a in args if a != "run"])
        if args[:1] == ["run"] and not {"-h", "--help"} & set(args):
            return run_command(args[1:])  # Hydra's own flags and overrides, in their order
        parsed = parser.parse_args(args)
        if parsed.command is None:
            parser.print_help()
            return 0
        return COMMANDS[parsed.command](parsed)
    except ConfigError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SystemExit as e:  # --help, or the Hydra app's status
        return int(e.code or 0)
    except KeyboardInterrupt:  # Ctrl-C: what a kill -9 leaves (harness/store.py), and one line
        print("harness: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `harness families | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush raises nothing
        return 0
    except OSError as e:  # disk full, no permission (what is written is renamed into place whole, or not at all)
        print(f"harness: error: {e.strerror or e} ({e.filename or 'while writing'})", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:
        return internal_error(e)


def shell_completion(flags: list[str]) -> int:
    """Hydra's shell completion, for the `harness` command: `eval "$(harness run -sc install=bash)"`
    installs it; the shell then asks `harness -sc query=bash` with the line typed so far, and the
    overrides after `harness run` are completed from the config tree (the commands after `harness`)."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split(" ", 2)  # harness, run, the overrides typed so far
    if line and (len(words) < 3 or words[1] != "run"):
        typed = words[1] if len(words) > 1 else ""
        print(" ".join(c for c in ("run", *COMMANDS) if c.startswith(typed)))
        return 0
    if line:
        os.environ["COMP_LINE"] = f"harness {words[2]}"
    sys.argv = ["harness", *flags]
    offered = io.StringIO()
    with contextlib.redirect_stdout(offered):
        hydra_run()
    unusable = {f"hydra/launcher={name}" for name in UNUSABLE_LAUNCHERS}
    print(" ".join(w for w in offered.getvalue().split(" ") if w.strip() not in unusable))
    return 0


def internal_error(error: Exception) -> int:
    """A failure that is not the input's fault: the traceback (for a bug report), then one line,
    and a status of its own so that scripts never take it for a finding (1) or bad input (2)."""
    traceback.print_exc()
    print(f"harness: internal error: {type(error).__name__}: {one_line(error)} (please report it with the "
          "traceback above)", file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
