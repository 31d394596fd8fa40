"""`harness export-lm-eval`: every family's probes (and self-report questions) as
lm-evaluation-harness tasks, and the IA condition as one merged checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.compose import check
from harness.core.errors import ConfigError

NAME = "export-lm-eval"
HELP = "write every family's probes as lm-eval tasks"
EXAMPLES = """\
examples:
  harness export-lm-eval                               # every family's probes as lm-eval tasks
  harness export-lm-eval --with-ia .cache/harness/ia/<key>/ia --model .cache/harness/organisms/<key>
                                                       # ... and the IA condition as one merged checkpoint
  harness export-lm-eval --out my_tasks families=[preferences]
"""


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("outputs/lm_eval_tasks"))
    p.add_argument("--with-ia", type=Path, metavar="IA", help="also write the IA condition as one checkpoint: "
                   "--model with this IA merged in (run lm-eval's selfreport tasks on it)")
    p.add_argument("--model", type=Path, help="with --with-ia: the organism (a peft adapter or a checkpoint)")
    p.add_argument("--base", help="with --with-ia: the base model (default: the IA's own base)")
    p.add_argument("--merged", type=Path, help="with --with-ia: where the checkpoint goes "
                   "(default: outputs/lm_eval_models/<model>_with_ia)")
    p.add_argument("overrides", nargs="*", help="config overrides (families=..., ...)")


def command(a: argparse.Namespace) -> int:
    from harness.core.vocabulary import question_split
    from harness.families import build_families
    from harness.report.lm_eval_export import check_merge, export, merge_with_ia

    if (a.with_ia is None) != (a.model is None) or (a.with_ia is None and (a.base or a.merged)):
        raise ConfigError("--with-ia IA and --model MODEL go together (--base and --merged only with them)")
    out, cfg = a.out, check(a.overrides)
    merged = a.merged or (Path("outputs/lm_eval_models") / f"{a.model.resolve().name}_with_ia" if a.model else None)
    if a.with_ia is not None:
        check_merge(a.model, a.with_ia, a.base, merged)  # before writing anything
    held_out = question_split(cfg.ia.train_templates)[1]
    tasks = export(build_families(cfg.families, cfg.model.free_text), cfg.families, out, cfg.organism.implant_rate,
                   held_out, cfg.probe.samples, cfg.probe.temperature,
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
