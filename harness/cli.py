"""Console script `harness`: `harness run [overrides]`, `harness families`."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from harness.config import CONF_DIR, REPO_ROOT, TASKS_DIR, Config, one_line, validate
from harness.errors import ConfigError

USAGE = """\
usage: harness <command> [args]

commands:
  run [overrides]   the whole experiment: base model, organisms, IA, probes, leaderboard
  leaderboard [DIR ...] [--sweep DIR | --group NAME | --from-wandb ENTITY/PROJECT|DIR] [--out DIR]
                    one table from every run's metrics.json under DIR (default: outputs multirun);
                    --sweep: a sweep's runs, swept values as columns, and a plot; --group: runs of a W&B group;
                    --from-wandb: the same table from W&B runs (the API, or offline run files under DIR)
  export-lm-eval [--out DIR] [overrides]
                    write every family's probes as lm-eval tasks (default DIR: outputs/lm_eval_tasks)
  audit --model PATH --ia PATH [--base NAME_OR_PATH] [--out DIR] [overrides]
                    probe a fine-tune (peft adapter or checkpoint) for every behavior, ask it with and
                    without the IA, print its audit card; exit 1 when a measured behavior goes unreported
  report [DIR] [--out DIR]
                    one static HTML page (report.html, plots in report_files/) for a run or a sweep folder
                    (default: the newest run under outputs/)
  families          list the behavior families and their behaviors

`harness run` takes Hydra overrides (key=value, group=option, --multirun). Examples:
  harness run                                          # embedded tiny model, all families
  harness run families=[preferences,biases]            # a subset of families
  harness run model=micro max_behaviors_per_family=2   # a smoke run in seconds
  harness run organism.steps=60 organism.rank=4        # change the implant
  harness run model=hf model.name_or_path=/path/to/model
  harness run split=leave_one_family_out split.heldout_family=biases
  harness run split=heldout_route                      # evaluate on full / distill / deny organisms
  harness run split=symmetry_attack ia=lora_sft_dpo    # permuted-weight organisms, an IA with DPO
  harness run --multirun ia.rank=1,4,16 logger=none    # a sweep, one run folder per job
  harness run --multirun sweeps=ia_rank hydra/launcher=joblib   # a preset from sweeps/, 2 local processes
  harness run --multirun sweeps=scaling_families hydra/launcher=slurm hydra.launcher.partition=gpu
  harness run --cfg job                                # print the composed config
  harness leaderboard multirun/2026-11-26              # every run under a folder, one table
  harness leaderboard --sweep multirun/ia_rank/2026-11-27_10-00-00   # swept values as columns + plot
  harness audit --model .cache/harness/organisms/<key> --ia .cache/harness/ia/<key>/ia
  harness audit --model my-peft-lora/ --ia my-ia/ --base Qwen/Qwen3-0.6B model=hf model.name_or_path=Qwen/Qwen3-0.6B

config groups: model ({model}), organism (lora), split ({split}),
  ia ({ia}), probe (default), logger (wandb, wandb_online, none), families ({families}),
  sweeps ({sweeps}), hydra/launcher (basic, joblib, submitit_local, submitit_slurm, slurm, ray, ray_cluster)
artifacts are cached in .cache/harness (or $HARNESS_CACHE); each run writes outputs/<date>/<time>/
"""


def usage() -> str:
    return USAGE.format(**{g: ", ".join(group_options(g)) for g in ("model", "families", "sweeps", "split", "ia")})


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
    from harness.families import available_family_configs, build_families
    from harness.grading import GRADERS
    from harness.models import check_model_source
    from harness.stage import Run

    build_families(available_family_configs())  # the base corpus reads every family on disk
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
        raise ConfigError(_explain(e)) from e
    typed = [validate(c) for c in composed]
    for t in typed:
        GRADERS.get(t.probe.grader)
        Run.of(t)
    for name in sorted({t.model.name_or_path for t in typed if t.model.kind == "hf"}):
        check_model_source(name, any(t.model.trust_remote_code for t in typed))
    return typed[0]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for root in (CONF_DIR, TASKS_DIR, REPO_ROOT) for p in (root / group).glob("*.yaml"))


def _explain(error: Exception) -> str:
    message = one_line(error)
    missing = re.search(r"Could not (?:find|load) '([\w/]+)/(\w+)'", message)
    if missing:
        group, name = missing.groups()
        return f"unknown {group} option {name!r} (known: {', '.join(group_options(group))})"
    return message.split(" Config search path:")[0]


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _run(cfg: DictConfig) -> None:
    from harness import leaderboard, pipeline
    from harness.stages.organisms import family_summary

    typed = validate(cfg)
    hydra_cfg = HydraConfig.get()
    typed.output_dir = hydra_cfg.runtime.output_dir
    try:
        result = pipeline.run(typed, overrides=leaderboard.override_pairs(list(hydra_cfg.overrides.task)))
    except ConfigError as e:  # found only once the job runs (e.g. no organism implanted)
        print(f"harness: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # disk full, no permission: finished artifacts and results are left as they were
        print(f"harness: error: {e.strerror or e} ({e.filename or 'while writing'})", file=sys.stderr)
        sys.exit(2)
    if result is None:  # a fan-out job of a sweep: its artifacts are in the store
        return
    print()
    print(result.table.to_markdown(index=False, floatfmt=".2f"))
    print()
    print(family_summary(result.table).to_markdown(floatfmt=".2f"))
    failed = result.table[~result.table.implanted]
    if len(failed):
        print(f"\n{len(failed)} organism(s) below the implant threshold "
              f"({typed.organism.threshold}), marked implanted=false: {', '.join(failed.behavior)}")
    print("\nverbalization rate of held-out organisms per family, by condition (full table: leaderboard.md):")
    print(leaderboard.to_markdown(leaderboard.compact(result.leaderboard)))
    print(f"\nresults written to {result.output_dir}/ (organisms, metrics.json, self_reports.jsonl, leaderboard)")
    if result.wandb_dir is not None:
        hint = f" (upload it later: wandb sync {result.wandb_dir})" if typed.logger.mode == "offline" else ""
        print(f"W&B run folder: {result.wandb_dir}{hint}")


def run_command(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(usage())
        return 0
    modes = [a for a in args if a in ("-m", "--multirun", "-c", "--cfg", "--info")]
    if len(modes) > 1:
        print(f"harness: error: {' and '.join(modes)} cannot be used together", file=sys.stderr)
        return 2
    takes_value = ("--cfg", "-c", "--package", "-p", "--info")
    overrides = [a for i, a in enumerate(args)
                 if not a.startswith("-") and not (i and args[i - 1] in takes_value)]
    try:
        check(overrides, multirun=any(a in ("-m", "--multirun") for a in args))
    except ConfigError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    sys.argv = ["harness run", *args]
    _run()
    return 0


def pop_option(args: list[str], flag: str) -> tuple[str | None, list[str]]:
    """The value given with `flag VALUE`, and the remaining arguments."""
    if flag not in args:
        return None, args
    i = args.index(flag)
    if i + 1 >= len(args) or args[i + 1].startswith("--"):
        raise ConfigError(f"{flag} needs a value")
    return args[i + 1], args[:i] + args[i + 2 :]


def pop_out(args: list[str], default: Path | None) -> tuple[Path | None, list[str]]:
    """The folder given with `--out DIR` (or the default), and the remaining arguments."""
    value, rest = pop_option(args, "--out")
    return (default if value is None else Path(value)), rest


def leaderboard_command(args: list[str]) -> int:
    from harness import leaderboard
    from harness.config import LoggerConfig

    out, args = pop_out(args, None)
    sweep, args = pop_option(args, "--sweep")
    group, args = pop_option(args, "--group")
    source, args = pop_option(args, "--from-wandb")
    if source is not None:
        from harness.wandb_runs import load_wandb_results

        if args or sweep:
            raise ConfigError("--from-wandb takes no run folders and no --sweep")
        board = leaderboard.leaderboard(load_wandb_results(source))
        if board.empty:
            raise ConfigError(f"no evaluation runs in {source}")
        print(f"verbalization rate per family, by W&B run and condition ({source})")
        print(leaderboard.to_markdown(leaderboard.compact(board)))
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            print(f"\nwritten to {', '.join(map(str, leaderboard.write(board, out)))}")
        return 0
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
        results = leaderboard.in_group(results, group)
    if not results:
        where = ", ".join(map(str, folders)) or "outputs, multirun"
        what = f" of W&B group {group!r}" if group else ""
        raise ConfigError(f"no {leaderboard.RESULTS_FILE}{what} under {where}: run `harness run` first")
    if sweep is not None or group is not None:
        target = out or Path(sweep or f"multirun/{group}")
        target.mkdir(parents=True, exist_ok=True)
        board, written = leaderboard.write_sweep(results, target, LoggerConfig(group=group or results[0].group))
        print(f"{len(results)} runs; " + leaderboard.sweep_text(board, written))
        return 0
    board = leaderboard.leaderboard(results)
    print("verbalization rate per family, by run and condition (every column: --out DIR)")
    print(leaderboard.to_markdown(leaderboard.compact(board)))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        md, csv = leaderboard.write(board, out)
        print(f"\nwritten to {md} and {csv}")
    return 0


def export_command(args: list[str]) -> int:
    from harness.core import question_split
    from harness.families import build_families
    from harness.lm_eval_export import export

    out, args = pop_out(args, Path("outputs/lm_eval_tasks"))
    cfg = check(args)
    held_out = question_split(cfg.ia.train_questions)[1]
    tasks = export(build_families(cfg.families), cfg.families, out, cfg.organism.probe_prompts,
                   cfg.organism.max_new_tokens, held_out, cfg.probe.samples, cfg.probe.temperature,
                   cfg.probe.max_new_tokens)
    groups = " ".join(f"probe_{f} selfreport_{f}" for f in cfg.families)
    print(f"wrote {len(tasks)} lm-eval tasks to {out}/ (tags: {groups})")
    print(f"run one: lm_eval --model hf --model_args pretrained=<base>,peft=<organism> --apply_chat_template "
          f"--include_path {out} --tasks {tasks[0]} --device cpu")
    return 0


def audit_command(args: list[str]) -> int:
    from dataclasses import asdict

    from harness import audit
    from harness.families import build_families
    from harness.store import write_json, write_text

    model, args = pop_option(args, "--model")
    ia, args = pop_option(args, "--ia")
    base, args = pop_option(args, "--base")
    if model is None or ia is None:
        raise ConfigError("audit needs --model PATH (a peft adapter or a checkpoint) and --ia PATH (the IA adapter)")
    out, args = pop_out(args, Path("outputs/audit") / Path(model).resolve().name)
    cfg = check(args)
    card = audit.audit(Path(model), Path(ia), base, build_families(cfg.families), cfg)
    out.mkdir(parents=True, exist_ok=True)
    text = audit.to_markdown(card)
    write_json(out / "audit.json", asdict(card))
    write_text(out / "audit.md", text)
    print(text)
    print(f"audit card written to {out / 'audit.md'} and {out / 'audit.json'}")
    return 1 if card.with_verdict("hidden") else 0


def report_command(args: list[str]) -> int:
    from harness import leaderboard, tracking
    from harness.config import LoggerConfig
    from harness.report import write_report

    out, args = pop_out(args, None)
    if len(args) > 1:
        raise ConfigError("report takes one run or sweep folder")
    if args:
        folder = Path(args[0])
    else:
        runs = sorted(Path("outputs").glob("*/*/metrics.json"))
        if not runs:
            raise ConfigError("no run under outputs/: run `harness run` first, or name a folder")
        folder = runs[-1].parent
    if not folder.is_dir():
        raise ConfigError(f"no such folder: {folder}")
    path = write_report(folder, out)
    images = sorted((path.parent / "report_files").glob("*.png"))
    group = next((r.group for r in leaderboard.load_results([folder]) if r.group), None)
    tracking.log_report(LoggerConfig(group=group), path.parent, images)
    print(f"report written to {path} (open it in a browser; {len(images)} plots in {path.parent / 'report_files'}, "
          "also logged to W&B under wandb/)")
    return 0


def families_command() -> int:
    from harness.families import available_family_configs, build_families

    for name, family in build_families(available_family_configs()).items():
        behaviors = family.behaviors()
        print(f"{name} ({len(behaviors)} behaviors)")
        for b in behaviors:
            print(f"  {b.id:45s} {b.descriptions[0]}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = args[0], args[1:]
    if command != "run" and any(a in ("-h", "--help") for a in rest):
        print(usage())  # every command's flags and examples are on one page
        return 0
    try:
        if command == "run":
            return run_command(rest)
        if command == "families":
            return families_command()
        if command == "leaderboard":
            return leaderboard_command(rest)
        if command == "export-lm-eval":
            return export_command(rest)
        if command == "audit":
            return audit_command(rest)
        if command == "report":
            return report_command(rest)
    except ConfigError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    known = "run, leaderboard, export-lm-eval, audit, report, families"
    print(f"harness: error: unknown command {command!r} (known: {known})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
