"""Any Hugging Face causal LM by path works in place of the embedded model."""

import json
import shutil
from dataclasses import replace

from harness import models, pipeline
from tests.conftest import compose_config


def test_a_tokenizer_without_chat_template_gets_a_plain_one(micro_base, tmp_path):
    folder = tmp_path / "no_template"
    shutil.copytree(micro_base.name_or_path, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    again = models.load_tokenizer(folder)
    assert models.prompt_text(again, "Hi?") == "User: Hi?\nAssistant:"


def test_pipeline_runs_on_a_local_hf_model(micro_base, tmp_path):
    cfg = compose_config("model=hf", f"model.name_or_path={micro_base.name_or_path}", f"cache_dir={tmp_path / 'c'}",
                         "families=[preferences,biases,hidden_goals]", "max_behaviors_per_family=2",
                         "organism.steps=2", "organism.probe_prompts=4", "organism.max_new_tokens=4", "ia.steps=2",
                         "ia.only_implanted=false", "probe.only_implanted=false", "probe.samples=1",
                         "probe.behavior_prompts=2", "probe.max_new_tokens=4", "logger=none")
    result = pipeline.run(replace(cfg, output_dir=str(tmp_path / "run")), progress=False)
    assert result.base.kind == "hf" and result.base.name_or_path == micro_base.name_or_path
    assert len(result.organisms) == 6 and not (tmp_path / "c" / "base").exists()
    assert set(result.leaderboard.condition) == {"ia", "no_ia", "prefill", "parrot", "shuffled"}
