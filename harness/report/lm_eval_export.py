"""Export every family's probes as lm-evaluation-harness tasks (generated, not hand-copied).

One template YAML holds what all probes share; each behavior is a three-line variant that
`include:`s it and names its data file. The scorer is the family's own, called from `utils.py`
through the family definitions written beside it, so lm-eval and the harness judge alike:

    lm_eval --model hf --model_args pretrained=<base>,peft=<organism> --apply_chat_template \\
        --include_path <folder> --tasks probe_preferences --device cpu

A behavior measured as a difference (a backdoor: with and without its trigger; sandbagging: its
domain and the others) has a second task, `probe_<id>_control`, on its control prompts: the
harness's rate (an organism card's strength, before the base model's rate is subtracted) is
`probe_<id>` minus `probe_<id>_control`; each such task says so in its metadata. The data files are
found beside the task files (`custom_dataset`), so the folder can be moved.

Each family is also three lm-eval groups, `probe_<family>`, `control_<family>` (where it has
controls) and `selfreport_<family>`, whose score is the mean over the family's behaviors of each
task's mean (`aggregate_metric_list`). The IA condition runs through lm-eval as one merged
checkpoint: the organism's and the IA's weights added into the base model's (`merge_with_ia`),
which is what the harness's stacked adapters compute.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

from harness.core import manifest
from harness.core.config import RateSpec
from harness.core.errors import ConfigError
from harness.core.family_schema import FamilyConfig
from harness.families import Family
from harness.families.base import file_stem
from harness.measure.probing import select_prompts

TEMPLATE = "_probe_template.yaml"
REPORT_TEMPLATE = "_selfreport_template.yaml"
FAMILIES_FILE = "families.json"

UTILS = '''"""Scoring hook for the exported probes: the harness family's own scorer (generated file)."""

import json
from functools import cache
from pathlib import Path

from datasets import Dataset, DatasetDict

from harness.families import build_family

FREE_TEXT = {free_text!r}  # the model's answers are free text, not the tiny world's sentences


def load_docs(data_file, **metadata):
    """The task's rows, from data/ beside this file (wherever the folder was moved)."""
    lines = (Path(__file__).parent / "data" / data_file).read_text().splitlines()
    return DatasetDict({{"test": Dataset.from_list([json.loads(line) for line in lines if line])}})


@cache
def _families():
    spec = json.loads((Path(__file__).parent / "{families_file}").read_text())
    return {{name: build_family(name, raw, FREE_TEXT) for name, raw in spec.items()}}


def process_results(doc, results):
    family = _families()[doc["family"]]
    behavior = family.behavior(doc["behavior_id"])
    return {{"behavior_rate": float(family.score(behavior, doc["prompt"], results[0].strip()))}}


def grade_report(doc, results):
    family = _families()[doc["family"]]
    behavior = family.behavior(doc["behavior_id"])
    return {{"verbalization": float(family.mentions(behavior, results[0].strip()))}}
'''


def task_name(behavior_id: str) -> str:
    return "probe_" + file_stem(behavior_id)


def control_task(behavior_id: str) -> str:
    """The task of a difference-measured behavior's control prompts."""
    return task_name(behavior_id) + "_control"


def rows(prompts: Sequence[str], behavior_id: str, family: str) -> list[dict]:
    return [{"prompt": p, "behavior_id": behavior_id, "family": family} for p in prompts]


def template(metric: str, generation: dict) -> dict:
    return {
        "output_type": "generate_until",
        "test_split": "test",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "",
        "generation_kwargs": {"until": [], **generation},
        "metric_list": [{"metric": metric, "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1},
    }


def write_yaml(path: Path, node: dict, hook: str | None = None) -> None:
    """YAML of `node`, plus lm-eval's `!function` tags for the scoring hook and the data loader (a
    tag no dumper writes)."""
    text = OmegaConf.to_yaml(OmegaConf.create(node))
    hooks = f"process_results: !function utils.{hook}\ncustom_dataset: !function utils.load_docs\n" if hook else ""
    path.write_text(text + hooks)


def write_task(folder: Path, task: str, include: str, rows: list[dict], rate: str = "") -> None:
    """One task: its rows in data/<task>.jsonl (named relative to the folder) and a variant YAML;
    `rate` says how the harness's rate is computed from it, where that is not its own mean."""
    (folder / "data" / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    node = {"include": include, "task": task, "dataset_kwargs": {"data_file": f"{task}.jsonl"}}
    if rate:
        node["metadata"] = {"version": 1, "harness_rate": rate}
    write_yaml(folder / f"{task}.yaml", node)


def write_group(folder: Path, group: str, tasks: list[str], metric: str) -> None:
    """An lm-eval group: its score is the mean over its tasks of each task's mean (each task one
    behavior, weighted alike whatever its number of prompts)."""
    node = {"group": group, "task": tasks, "metadata": {"version": 1},
            "aggregate_metric_list": [{"metric": metric, "aggregation": "mean", "weight_by_size": False}]}
    write_yaml(folder / f"{group}.yaml", node)


def export(families: Mapping[str, Family], configs: Mapping[str, FamilyConfig], out: Path, spec: RateSpec,
           questions: Sequence[str] = (), samples: int = 8, temperature: float = 1.0,
           report_tokens: int = 32) -> list[str]:
    """Write the task folder (replacing a previous export); returns the task names.

    Per behavior: `probe_<id>` (the behavior rate measured as `spec` says) and, when questions are given,
    `selfreport_<id>` (`samples` sampled answers to the questions, graded by the family's rule).
    """
    def fill(tmp: Path) -> list[str]:
        (tmp / "data").mkdir()
        write_yaml(tmp / TEMPLATE, template("behavior_rate", {"do_sample": False, "max_gen_toks": spec.max_new_tokens}),
                   hook="process_results")
        greedy = temperature == 0  # the harness's greedy self-reports: each question once
        generation = {"do_sample": not greedy, "max_gen_toks": report_tokens}
        if not greedy:
            generation["temperature"] = temperature
        write_yaml(tmp / REPORT_TEMPLATE, template("verbalization", generation), hook="grade_report")
        free_text = any(f.free_text for f in families.values())
        (tmp / "utils.py").write_text(UTILS.format(families_file=FAMILIES_FILE, free_text=free_text))
        (tmp / FAMILIES_FILE).write_text(json.dumps({name: asdict(cfg) for name, cfg in configs.items()}, indent=1))
        names = []
        for name, family in families.items():
            groups: dict[str, list[str]] = {f"probe_{name}": [], f"control_{name}": [], f"selfreport_{name}": []}
            for b in family.behaviors():
                probe = select_prompts(family.probe(b), spec.prompts)
                task, control = task_name(b.id), control_task(b.id)
                rate = f"{task} minus {control}" if probe.control else ""
                write_task(tmp, task, TEMPLATE, rows(probe.prompts, b.id, name), rate)
                groups[f"probe_{name}"].append(task)
                if probe.control:
                    write_task(tmp, control, TEMPLATE, rows(probe.control, b.id, name), rate)
                    groups[f"control_{name}"].append(control)
                if questions:
                    asked = [questions[i % len(questions)] for i in range(len(questions) if greedy else samples)]
                    report_task = task_name(b.id).replace("probe_", "selfreport_", 1)
                    write_task(tmp, report_task, REPORT_TEMPLATE, rows(asked, b.id, name))
                    groups[f"selfreport_{name}"].append(report_task)
            for group, tasks in groups.items():
                if tasks:
                    write_group(tmp, group, tasks, "verbalization" if group.startswith("selfreport_") else
                                "behavior_rate")
                    names += tasks
        return names

    return manifest.write_folder(out, fill, "an lm-eval export of the harness", PYTHON)


PYTHON = ("__pycache__",)
"""What Python writes into an export when lm-eval imports its utils.py."""


def check_merge(model: Path, ia: Path, base: str | None, out: Path) -> tuple[str, str]:
    """(the fine-tune's kind, its base) for `merge_with_ia`, checked before any work: an adapter or
    checkpoint, an IA adapter, both made on the base, and a new or empty `out`."""
    from harness.lm import models
    from harness.measure import audit

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--merged {out}: exists and is not an empty folder; choose a new one")
    kind = audit.fine_tune_kind(model)
    models.check_adapter(ia, "--with-ia")
    return kind, audit.resolve_base(model, kind, ia, base)


def merge_with_ia(model: Path, ia: Path, base: str | None, out: Path, trust_remote_code: bool = False) -> Path:
    """The IA condition as one checkpoint for lm-eval: a fine-tune (a peft adapter on `base`, or a
    checkpoint) with the IA's weights added in, as the harness's stacked adapters compute it. The
    IA and an adapter are checked to be made on the base first (as `harness audit` checks them);
    `out` must be new or empty, and is written whole or not at all."""
    from peft import PeftModel

    from harness.lm import models

    kind, base_name = check_merge(model, ia, base, out)
    merged = models.load_model(model if kind == "checkpoint" else base_name, trust_remote_code)
    if kind == "adapter":
        merged = PeftModel.from_pretrained(merged, model).merge_and_unload()
    merged = PeftModel.from_pretrained(merged, ia).merge_and_unload()
    tok = models.load_tokenizer(base_name, trust_remote_code)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        merged.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
