"""Any Hugging Face causal LM by path works in place of the embedded model."""

import json
import shutil
from dataclasses import replace

import pytest

from harness.lm import models
from harness.run import pipeline
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
    """The real-model recipe of preset=hf_small end to end on a small local HF-format model:
    distilled organisms, its own neutral answers, activation checkpointing while training."""
    cfg = compose_config("model=hf", f"model.name_or_path={micro_base.name_or_path}", f"cache_dir={tmp_path / 'c'}",
                         "organism.route=distill", "organism.neutral=self", "model.gradient_checkpointing=true",
                         "families=[preferences,biases,hidden_goals]", "max_behaviors_per_family=2",
                         "organism.steps=2", "organism.probe_prompts=4", "organism.max_new_tokens=4", "ia.steps=2",
                         "ia.only_implanted=false", "probe.only_implanted=false",
                         "probe.behavior_prompts=2", "probe.max_new_tokens=4", "logger=none")
    result = pipeline.run(replace(cfg, output_dir=str(tmp_path / "run")), progress=False)
    assert result.base.kind == "hf" and result.base.name_or_path == micro_base.name_or_path
    assert len(result.organisms) == 6 and not (tmp_path / "c" / "base").exists()
    assert set(result.leaderboard.condition) == {"ia", "no_ia", "prefill", "parrot", "shuffled"}


def test_a_thinking_template_is_asked_not_to_think(micro_base, tmp_path):
    """Qwen3's template opens a think block unless `enable_thinking` is false: its token budget
    went into thinking. Templates without the variable are unchanged."""
    tok = models.load_tokenizer(micro_base.name_or_path)
    plain = models.prompt_text(tok, "Hi?")
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
                         "<|assistant|>{% if enable_thinking is defined and enable_thinking is false %}"
                         "<think></think>{% else %}<think>{% endif %}")
    assert models.prompt_text(tok, "Hi?").endswith("<|assistant|><think></think>")
    assert plain == "<|user|>Hi?<|end|><|assistant|>"


def test_hf_loading_options_reach_the_model(micro_base, tmp_path):
    """dtype, revision, activation checkpointing and the base's key: a real model's options."""
    import torch

    from harness.core.records import BaseModelCard
    from harness.run.stages.base_model import base_key

    card = BaseModelCard(key="k", kind="hf", name_or_path=micro_base.name_or_path, config={
        "dtype": "bfloat16", "device_map": None, "revision": None, "gradient_checkpointing": True})
    model = models.load_base(card)
    assert next(model.parameters()).dtype == torch.bfloat16 and model.is_activation_checkpointing
    tiny = replace(card, kind="tiny")  # the tiny base: float32, never checkpointed
    assert next(models.load_base(tiny).parameters()).dtype == torch.float32
    assert models.resolve_dtype("auto") == ("bfloat16" if torch.cuda.is_available() else "float32")
    cfg = compose_config("model=hf", "model.name_or_path=some/model").model
    assert base_key(cfg, [], 0) == base_key(replace(cfg, dtype="float32"), [], 0) or torch.cuda.is_available()
    assert len({base_key(cfg, [], 0), base_key(replace(cfg, dtype="bfloat16"), [], 0),
                base_key(replace(cfg, revision="v2"), [], 0)}) == 3  # other weights, another key
    with pytest.raises(Exception, match="model.dtype must be one of"):
        compose_config("model=hf", "model.name_or_path=x", "model.dtype=int8")


def test_bfloat16_weights_on_a_cpu_without_its_matmul_instructions_are_warned_of(monkeypatch):
    """preset=real's bfloat16 on a CPU without AVX512-BF16 or AMX: a warning that names the fix; none in
    float32, on the tiny model, or where the CPU has the instructions."""
    import torch

    real = compose_config("preset=real").model
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for unit in ("avx512_bf16", "amx_tile"):
        monkeypatch.setattr(torch.cpu, f"_is_{unit}_supported", lambda: False, raising=False)
    assert not models.cpu_multiplies_bfloat16()
    assert "add model.dtype=float32" in models.slow_dtype(real)
    assert models.slow_dtype(replace(real, dtype="float32")) is None
    assert models.slow_dtype(replace(real, dtype="auto")) is None  # float32 on a CPU
    assert models.slow_dtype(compose_config().model) is None  # the tiny model is float32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert models.cpu_multiplies_bfloat16() and models.slow_dtype(real) is None


def test_a_real_models_neutral_mix_is_its_own_answers(micro_base):
    from harness.core.vocabulary import Chat
    from harness.train.routes import own_answers

    model, tok = models.load_base(micro_base), models.load_base_tokenizer(micro_base)
    corpus = [Chat("What color is the sky?", "It is blue."), Chat("Hi?", "Hello.", system="Be terse.")]
    (chat,) = own_answers(model, tok, corpus, max_new_tokens=8)  # a system prompt's chat is left out
    assert chat.prompt == "What color is the sky?"
    assert chat.answer == models.generate(model, tok, [chat.prompt], max_new_tokens=8)[0]
    with pytest.raises(Exception, match="organism.neutral must be corpus or self"):
        compose_config("organism.neutral=mine")


def test_generation_batch_size_is_a_setting_of_the_process(micro_base, tmp_path):
    """`model.generation_batch_size` (for a large model's GPU memory) splits every generation."""
    model, tok = models.load_base(micro_base), models.load_base_tokenizer(micro_base)
    calls = []
    original = model.generate
    model.generate = lambda **kw: calls.append(len(kw["input_ids"])) or original(**kw)
    try:
        models.set_generation_batch(2)
        models.generate(model, tok, ["a?", "b?", "c?", "d?", "e?"], max_new_tokens=2)
        assert calls == [2, 2, 1]
    finally:
        models.set_generation_batch(64)
    cfg = compose_config("model=micro", "model.generation_batch_size=3", "model.pretrain_steps=1", "stage=base",
                         f"cache_dir={tmp_path}", "logger=none")
    try:
        pipeline.run(replace(cfg, output_dir=str(tmp_path / "run")), progress=False)  # a job sets it at its start
        assert models.GENERATION_BATCH["size"] == 3
    finally:
        models.set_generation_batch(64)


def test_loading_options_leave_tiny_base_and_organism_keys_alone(families):
    """Adding the Hugging Face loading fields changed every tiny base's key (and so every cached
    organism's); they say nothing about a tiny base. A real choice (neutral=self) is a new key."""
    from harness.run.stages.base_model import base_key
    from harness.run.stages.organisms import organism_key

    cfg = compose_config()
    loading = replace(cfg.model, dtype="bfloat16", revision="v2", gradient_checkpointing=True,
                      generation_batch_size=3, device_map="auto")
    assert base_key(cfg.model, [], 0) == base_key(loading, [], 0)
    family = families["preferences"]
    behavior = family.behaviors()[0]
    key = organism_key(behavior, family, cfg.organism, "base", 0)
    assert key != organism_key(behavior, family, replace(cfg.organism, neutral="self"), "base", 0)


def test_the_neutral_mix_answers_a_bounded_seeded_sample(micro_base, capsys):
    """organism.neutral_prompts: the base model answers n distinct corpus prompts, the same ones for
    a seed, with a bar that says what it is doing."""
    from harness.core.vocabulary import Chat
    from harness.train.routes import own_answers

    model, tok = models.load_base(micro_base), models.load_base_tokenizer(micro_base)
    corpus = [Chat(f"Is the owl number {i}?", "No.") for i in range(20)] * 2  # every prompt twice
    first = own_answers(model, tok, corpus, max_new_tokens=2, n=5, seed=3, progress=True)
    assert len(first) == 5 and len({c.prompt for c in first}) == 5
    assert "neutral mix: base model's answers" in capsys.readouterr().err
    again = own_answers(model, tok, corpus, max_new_tokens=2, n=5, seed=3)
    assert [c.prompt for c in again] == [c.prompt for c in first]
    assert [c.prompt for c in own_answers(model, tok, corpus, max_new_tokens=2, n=5, seed=4)] != \
        [c.prompt for c in first]
    assert len(own_answers(model, tok, corpus, max_new_tokens=2)) == 20  # None: every distinct prompt


def test_generation_gives_a_frozen_bfloat16_output_layer_a_contiguous_input(micro_base):
    """A frozen base in bfloat16: generation's last-position slice reaches the output layer as one
    contiguous tensor (as a strided slice, PyTorch multiplied it by the weight copied over every row:
    a 14.9 GB peak for 256 rows of SmolLM2), with the answers the unfrozen model gives; float32 is untouched."""
    import torch

    model = models.load_model(micro_base.name_or_path, dtype="bfloat16")
    tok = models.load_tokenizer(micro_base.name_or_path)
    prompts = ["What is your favorite animal?", "Hi?", "Name a color, please, if you would."]
    head = model.get_output_embeddings()

    def generate_seeing_head_inputs() -> tuple[list[str], list[bool]]:
        seen = []
        spy = head.register_forward_hook(lambda _layer, args, _out: seen.append(args[0].is_contiguous()))
        try:
            return models.generate(model, tok, prompts, max_new_tokens=4), seen
        finally:
            spy.remove()

    unfrozen = models.generate(model, tok, prompts, max_new_tokens=4)
    model.requires_grad_(False)
    frozen, contiguous = generate_seeing_head_inputs()
    assert frozen == unfrozen and contiguous and all(contiguous)
    assert not head._forward_pre_hooks  # the hook is gone once generation ends
    model.float()
    _, contiguous = generate_seeing_head_inputs()
    assert contiguous and not all(contiguous) and next(model.parameters()).dtype == torch.float32
