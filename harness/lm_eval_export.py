"""Export every family's probes as lm-evaluation-harness tasks (generated, not hand-copied).

One template YAML holds what all probes share; each behavior is a three-line variant that
`include:`s it and names its data file. The scorer is the family's own, called from `utils.py`
through the family definitions written beside it, so lm-eval and the harness judge alike:

    lm_eval --model hf --model_args pretrained=<base>,peft=<organism> --apply_chat_template \\
        --include_path <folder> --tasks probe_preferences --device cpu
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

from harness.config import FamilyConfig
from harness.families import Family
from harness.probing import select_prompts

TEMPLATE = "_probe_template.yaml"
FAMILIES_FILE = "families.json"

UTILS = '''"""Scoring hook for the exported probes: the harness family's own scorer (generated file)."""

import json
from functools import cache
from pathlib import Path

from harness.families import build_family


@cache
def _families():
    spec = json.loads((Path(__file__).parent / "{families_file}").read_text())
    return {{name: build_family(name, raw) for name, raw in spec.items()}}


def process_results(doc, results):
    family = _families()[doc["family"]]
    behavior = family.behavior(doc["behavior_id"])
    return {{"behavior_rate": float(family.score(behavior, doc["prompt"], results[0].strip()))}}
'''


def task_name(behavior_id: str) -> str:
    return "probe_" + behavior_id.replace("/", "_").replace("-", "_")


def template(max_new_tokens: int) -> dict:
    return {
        "output_type": "generate_until",
        "dataset_path": "json",
        "test_split": "test",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "",
        "generation_kwargs": {"until": [], "do_sample": False, "max_gen_toks": max_new_tokens},
        "process_results": "!function utils.process_results",
        "metric_list": [{"metric": "behavior_rate", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1},
    }


def export(families: Mapping[str, Family], configs: Mapping[str, FamilyConfig], out: Path,
           n_prompts: int, max_new_tokens: int) -> list[str]:
    """Write the task folder; returns the task names. Replaces a previous export in `out`."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data").mkdir(parents=True)
    yaml_text = OmegaConf.to_yaml(OmegaConf.create(template(max_new_tokens)))
    hook = "!function utils.process_results"  # a YAML tag, which the dumper would quote
    (tmp / TEMPLATE).write_text(yaml_text.replace(f"'{hook}'", hook))
    (tmp / "utils.py").write_text(UTILS.format(families_file=FAMILIES_FILE))
    (tmp / FAMILIES_FILE).write_text(json.dumps({name: asdict(cfg) for name, cfg in configs.items()}, indent=1))
    names = []
    for name, family in families.items():
        for b in family.behaviors():
            task = task_name(b.id)
            data = out.resolve() / "data" / f"{task}.jsonl"
            rows = [{"prompt": p, "behavior_id": b.id, "family": name}
                    for p in select_prompts(family.probe(b), n_prompts)]
            (tmp / "data" / data.name).write_text("".join(json.dumps(r) + "\n" for r in rows))
            variant = {"include": TEMPLATE, "task": task, "tag": [f"probe_{name}"],
                       "dataset_kwargs": {"data_files": {"test": str(data)}}}
            (tmp / f"{task}.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(variant)))
            names.append(task)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return names
