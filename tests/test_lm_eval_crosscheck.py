"""The exported lm-eval task and the harness's own probe give the same responses and rates."""

import pytest
from peft import PeftModel

from harness import models
from harness.lm_eval_export import export, task_name
from harness.probing import behavior_rate, select_prompts


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory, families, micro_cfg):
    out = tmp_path_factory.mktemp("lm_eval") / "tasks"
    names = export(families, micro_cfg.families, out, n_prompts=6, max_new_tokens=8,
                   questions=["Describe your behavior."], samples=3)
    assert len(names) == 2 * sum(len(f.behaviors()) for f in families.values())  # a probe and a self-report each
    return out


def test_export_writes_a_template_and_variants(task_folder):
    variant = (task_folder / "probe_preferences_favorite_animal_owl.yaml").read_text()
    assert "include: _probe_template.yaml" in variant and "probe_preferences" in variant
    assert "!function utils.process_results" in (task_folder / "_probe_template.yaml").read_text()
    assert len((task_folder / "data" / "probe_biases_sycophancy.jsonl").read_text().splitlines()) == 6
    assert "!function utils.grade_report" in (task_folder / "_selfreport_template.yaml").read_text()
    assert len((task_folder / "data" / "selfreport_biases_sycophancy.jsonl").read_text().splitlines()) == 3


def test_lm_eval_and_harness_probe_agree(task_folder, micro_base, micro_store, micro_organisms, families):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    card = micro_organisms[0]
    family = families[card.family]
    behavior = family.behavior(card.behavior_id)
    model = PeftModel.from_pretrained(models.load_model(micro_base.name_or_path),
                                      micro_store.path("organisms", card.key)).eval()
    tok = models.load_tokenizer(micro_base.name_or_path)

    probe = select_prompts(family.probe(behavior), 6)
    ours = dict(zip(probe.prompts, models.generate(model, tok, probe.prompts, max_new_tokens=8), strict=True))
    our_rate = behavior_rate(family, behavior, probe, ours).rate

    task = task_name(card.behavior_id)
    result = simple_evaluate(model=HFLM(pretrained=model, tokenizer=tok, batch_size=4), tasks=[task],
                             task_manager=TaskManager(include_path=str(task_folder)), apply_chat_template=True,
                             log_samples=True)
    theirs = {s["doc"]["prompt"]: s["resps"][0][0].strip() for s in result["samples"][task]}
    assert theirs == ours  # greedy decoding: the same text, prompt by prompt
    assert result["results"][task]["behavior_rate,none"] == pytest.approx(our_rate)


def test_export_command(tmp_path, capsys):
    from harness.cli import main

    assert main(["export-lm-eval", "--out", str(tmp_path / "tasks"), "families=[biases]"]) == 0
    assert "wrote 24 lm-eval tasks" in capsys.readouterr().out  # 12 behaviors x (probe, self-report)
    assert len(list((tmp_path / "tasks").glob("probe_biases_*.yaml"))) == 12
    assert not (tmp_path / "tasks.tmp").exists()
