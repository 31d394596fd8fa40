"""The embedded base model: built, saved, loaded like any HF model, cached by config."""

import json

from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.lm import models
from harness.run.stage import ensure
from harness.run.stages import base_model
from harness.run.stages.base_model import BaseInput, BaseStage


def test_base_loads_through_auto_classes(micro_base):
    model = AutoModelForCausalLM.from_pretrained(micro_base.name_or_path, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(micro_base.name_or_path)
    assert model.config.model_type == "llama"
    assert micro_base.n_params == sum(p.numel() for p in model.parameters())
    text = tok.apply_chat_template([{"role": "user", "content": "Tell me about the owl."}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == "<|user|>Tell me about the owl.<|end|><|assistant|>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text  # the tokenizer round-trips the template exactly


def test_every_family_word_is_in_the_vocabulary(micro_base, families):
    tok = AutoTokenizer.from_pretrained(micro_base.name_or_path)
    for family in families.values():
        for b in family.behaviors():
            for d in b.descriptions:
                assert tok.unk_token_id not in tok(d)["input_ids"]
                assert tok.decode(tok(d, add_special_tokens=False)["input_ids"]) == d


def test_second_call_reuses_the_cache(micro_cfg, micro_run, micro_store, micro_base, corpus, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("the base model was rebuilt although it is cached")

    monkeypatch.setattr(base_model, "pretrain_tiny", fail)
    again = ensure(BaseStage(), micro_run, [BaseInput(micro_cfg.model, corpus, 0)], progress=False)
    assert again == [micro_base]
    card = json.loads((micro_store.path("base", micro_base.key) / "card.json").read_text())
    assert card["key"] == micro_base.key


def test_a_changed_config_gets_a_new_key(micro_cfg, families, corpus):
    other = type(micro_cfg.model)(**{**micro_cfg.model.__dict__, "pretrain_steps": 21})
    assert base_model.base_key(other, corpus, 0) != base_model.base_key(micro_cfg.model, corpus, 0)


def test_generate_returns_one_answer_per_prompt(micro_base):
    model = models.load_model(micro_base.name_or_path)
    tok = models.load_tokenizer(micro_base.name_or_path)
    out = models.generate(model, tok, ["Tell me about the owl.", "Is the fox a color?"], max_new_tokens=4)
    assert len(out) == 2 and all(isinstance(o, str) for o in out)


def test_the_fingerprint_follows_content_not_place(micro_base, tmp_path):
    """The card's fingerprint is the one computed from the files, wherever they are copied; a
    changed weight or tokenizer gives another."""
    import shutil

    from safetensors.torch import load_file, save_file

    assert len(micro_base.fingerprint) == 16
    assert models.fingerprint(micro_base.name_or_path) == micro_base.fingerprint
    copy = tmp_path / "copy"
    shutil.copytree(micro_base.name_or_path, copy, ignore=shutil.ignore_patterns("card.json"))
    assert models.fingerprint(copy) == micro_base.fingerprint
    weights = load_file(copy / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1e-3
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    changed = models.fingerprint(copy)
    assert changed != micro_base.fingerprint
    (copy / "tokenizer.json").write_text((copy / "tokenizer.json").read_text().replace("<|end|>", "<|fin|>"))
    assert models.fingerprint(copy) not in (changed, micro_base.fingerprint)
    assert models.fingerprint(tmp_path / "nothing_here") is None
