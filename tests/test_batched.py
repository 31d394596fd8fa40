"""Batched organism training: each organism of a batch follows the updates it would get alone,
and is saved as an ordinary peft adapter that gives its rows' logits."""

import copy
from dataclasses import replace

import pytest
import torch
from peft import PeftModel, get_peft_model

from harness.core.vocabulary import Chat
from harness.lm import models
from harness.train import batched
from harness.train.batched import StackedLoRA, stacked_step
from harness.train.routes import implant_batches, lora_config, neutral_mix, route, warmup
from harness.train.training import collate, step_on_batches, train


@pytest.fixture(scope="module")
def setup(micro_cfg, micro_base, families, corpus):
    base = models.load_model(micro_base.name_or_path)
    tok = models.load_tokenizer(micro_base.name_or_path)
    items = [(families[f], families[f].behaviors()[i]) for f, i in [("preferences", 0), ("biases", 1),
                                                                      ("hidden_goals", 2)]]
    cfg = replace(micro_cfg.organism, steps=6)
    return base, tok, items, cfg


def alone(base, tok, family, behavior, corpus, cfg, seed):
    """The reference: one peft LoRA trained by itself with the plain training loop."""
    torch.manual_seed(seed)
    model = get_peft_model(base, lora_config(cfg, base))
    batches = implant_batches(tok, family.implant_chats(behavior), neutral_mix(corpus, family, behavior), cfg, seed)
    losses = train(model, [p for p in model.parameters() if p.requires_grad],
                   step_on_batches(model, batches, tok.pad_token_id), cfg.steps, cfg.lr, warmup=warmup(cfg),
                   progress=False)
    return model, losses


@pytest.mark.parametrize("pass_tokens", [10**9, 1])
def test_each_organism_of_a_batch_trains_as_if_alone(setup, corpus, pass_tokens, monkeypatch):
    """Trained in one pass, or in as many as a block has rows, by row length (batched.length_buckets)."""
    base, tok, items, cfg = setup
    monkeypatch.setattr(batched, "PASS_TOKENS", pass_tokens)
    prompts = [models.prompt_text(tok, p) for p in ["Describe your behavior.", "Which is larger, 3 or 7?"]]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        untrained = base(**enc).logits
    reference = []
    for family, behavior in items:
        model, losses = alone(base, tok, family, behavior, corpus, cfg, seed=3)
        with torch.no_grad():
            reference.append((losses, model(**enc).logits))
        model.unload()
    made = route("lora").organisms(base, tok, items, corpus, cfg, seed=3)
    for (model, final_loss), (losses, logits) in zip(made, reference, strict=True):
        with torch.no_grad():
            got = model(**enc).logits
        assert final_loss == pytest.approx(sum(losses[-10:]) / len(losses[-10:]), rel=1e-4)
        assert torch.allclose(got, logits, atol=1e-4), (got - logits).abs().max()
        assert not torch.allclose(got, untrained, atol=1e-3)  # it did train


def test_an_adapter_saved_from_a_batch_gives_its_rows_logits(setup, corpus, tmp_path):
    base, tok, items, cfg = setup
    before = {k: v.clone() for k, v in base.state_dict().items()}
    stacked = StackedLoRA.fresh(base, lora_config(cfg, base), len(items), seed=0)
    batches = [implant_batches(tok, f.implant_chats(b), neutral_mix(corpus, f, b), cfg, 0) for f, b in items]
    train(base, stacked.parameters(), stacked_step(base, stacked, batches, tok.pad_token_id, [[] for _ in items]),
          4, cfg.lr, warmup=1, progress=False, clip=stacked.clip_grad_norms)
    rows = [models.encode_chat(tok, c) for c in items[0][0].implant_chats(items[0][1])[:2]]
    with torch.no_grad():
        blocks = base(**{k: v for k, v in collate(rows * len(items), tok.pad_token_id, base.device).items()
                         if k != "labels"}).logits.reshape(len(items), len(rows), -1, base.config.vocab_size)
    for k, model in enumerate(stacked.peft_models()):
        model.save_pretrained(tmp_path / str(k), safe_serialization=True)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())  # the base is untouched
    assert not torch.allclose(blocks[0], blocks[1], atol=1e-4)  # the organisms differ
    for k in range(len(items)):
        loaded = PeftModel.from_pretrained(models.load_model(models_path(base)), tmp_path / str(k))
        with torch.no_grad():
            alone_logits = loaded(**{k2: v for k2, v in collate(rows, tok.pad_token_id, base.device).items()
                                     if k2 != "labels"}).logits
        assert torch.allclose(alone_logits, blocks[k], atol=1e-5), (alone_logits - blocks[k]).abs().max()


def models_path(model) -> str:
    return model.config._name_or_path


def test_batches_of_unequal_size_are_refused(setup, corpus):
    base, tok, items, cfg = setup
    stacked = StackedLoRA.fresh(base, lora_config(cfg, base), 2, seed=0)
    row = models.encode_chat(tok, items[0][0].implant_chats(items[0][1])[0])
    step = stacked_step(base, stacked, [lambda _: [row], lambda _: [row, row]], tok.pad_token_id, [[], []])
    with pytest.raises(ValueError, match="same number of rows"):
        step(0)
    stacked.remove_hooks()


def test_gradients_are_clipped_per_organism(setup):
    base, _, _, cfg = setup
    stacked = StackedLoRA.fresh(base, lora_config(cfg, base), 2, seed=0)
    stacked.remove_hooks()
    for p in stacked.parameters():
        p.grad = torch.ones_like(p)
        p.grad[1] *= 1e-4  # organism 1: a gradient far below the clip norm
    norms = lambda: torch.stack([p.grad.flatten(1).pow(2).sum(1) for p in stacked.parameters()]).sum(0).sqrt()  # noqa: E731
    small = norms()[1].item()
    assert norms()[0] > 1
    stacked.clip_grad_norms(1.0)
    assert norms()[0].item() == pytest.approx(1.0, rel=1e-5)
    assert norms()[1].item() == pytest.approx(small, rel=1e-6)


def test_loaded_adapters_of_different_ranks_route_rows_and_the_empty_slot_is_the_base(setup, tmp_path):
    """StackedLoRA.load pads ranks with zeros and folds each adapter's scaling into B: each block
    of rows gets its own adapter's logits, and the last slot none."""
    from peft import LoraConfig

    base, tok, items, _ = setup
    folders = []
    for i, (r, alpha) in enumerate([(2, 8), (4, 4)]):
        torch.manual_seed(i)
        model = get_peft_model(base, LoraConfig(r=r, lora_alpha=alpha, target_modules="all-linear",
                                                init_lora_weights=False))
        model.save_pretrained(tmp_path / str(i), safe_serialization=True)
        model.unload()
        folders.append(tmp_path / str(i))
    rows = [models.encode_chat(tok, c) for c in items[0][0].implant_chats(items[0][1])[:2]]
    batch = {k: v for k, v in collate(rows, tok.pad_token_id, base.device).items() if k != "labels"}
    with torch.no_grad():
        expected = [PeftModel.from_pretrained(models.load_model(models_path(base)), f)(**batch).logits
                    for f in folders] + [base(**batch).logits]
        stacked = StackedLoRA.load(base, folders)
        stacked.select([0, 1, 2])
        three = {k: v.repeat(3, 1) for k, v in batch.items()}
        got = base(**three).logits.reshape(3, len(rows), *expected[0].shape[1:])
    stacked.remove_hooks()
    assert not torch.allclose(expected[0], expected[1], atol=1e-3)
    for k in range(3):
        assert torch.allclose(got[k], expected[k], atol=1e-5), (k, (got[k] - expected[k]).abs().max())


def test_slot_answers_are_kept_by_slots_prompts_and_settings(setup, tmp_path, monkeypatch):
    """slot_answers through a memo: the first call generates and keeps what it would generate
    without one; the same call reads it back; other slots, an order of them, a token budget or a
    generation batch is another key and generates."""
    from peft import LoraConfig

    from harness.core.store import Store
    from harness.lm.answers import SlotAnswers
    from harness.measure import observe

    base, tok, _, _ = setup
    torch.manual_seed(0)
    peft = get_peft_model(base, LoraConfig(r=2, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    peft.save_pretrained(tmp_path / "org", safe_serialization=True)
    peft.unload()
    plain = models.load_model(models_path(base))
    stacked = StackedLoRA.sums(plain, [[tmp_path / "org"], []])
    memo = SlotAnswers(Store(tmp_path / "store"), "base", {0: ["org"], 1: []})
    prompts = ["What is your favorite animal?", "Which is larger, 3 or 7?"]
    with torch.no_grad():
        first = observe.slot_answers(plain, tok, stacked, prompts, [0, 1], 6, memo=memo)
        assert first == observe.slot_answers(plain, tok, stacked, prompts, [0, 1], 6)
        assert first[0] != first[1]

        def generated(*_args, **_kwargs):
            raise AssertionError("generated")

        monkeypatch.setattr(observe, "generate_slots", generated)
        assert observe.slot_answers(plain, tok, stacked, prompts, [0, 1], 6, memo=memo) == first
        size = models.GENERATION_BATCH["size"]
        for slots, tokens, batch in (([1, 0], 6, size), ([0], 6, size), ([0, 1], 7, size), ([0, 1], 6, 1)):
            try:
                models.set_generation_batch(batch)
                with pytest.raises(AssertionError, match="generated"):
                    observe.slot_answers(plain, tok, stacked, prompts, slots, tokens, memo=memo)
            finally:
                models.set_generation_batch(size)


def test_summed_slots_are_peft_cat_combinations_and_generate_as_peft_would(setup, tmp_path):
    """StackedLoRA.sums: an organism on some layers (regex targets) and the IA on all of them, as
    slots [organism], [organism, IA], [IA] and [] (none), give the logits of peft's adapters and
    of their `cat` combination (the probe's organism+IA); slot_answers generates each slot's
    answers, many slots in one batch, as peft generates with each adapter alone."""
    from peft import LoraConfig

    from harness.measure.observe import slot_answers
    from harness.train.adapters import combine_with_ia

    base, tok, items, _ = setup
    configs = {"org": LoraConfig(r=2, lora_alpha=8, target_modules=r".*layers\.0\.self_attn\..*_proj",
                                 init_lora_weights=False),
               "ia": LoraConfig(r=4, lora_alpha=4, target_modules="all-linear", init_lora_weights=False)}
    for i, (name, config) in enumerate(configs.items()):
        torch.manual_seed(i)
        model = get_peft_model(base, config)
        model.save_pretrained(tmp_path / name, safe_serialization=True)
        model.unload()
    peft = PeftModel.from_pretrained(models.load_model(models_path(base)), tmp_path / "org", adapter_name="org")
    peft.load_adapter(tmp_path / "ia", adapter_name="ia")
    combine_with_ia(peft, "org", "ia", "org_ia")
    order = ["org", "org_ia", "ia", "__base__"]
    rows = [models.encode_chat(tok, c) for c in items[0][0].implant_chats(items[0][1])[:2]]
    batch = {k: v for k, v in collate(rows, tok.pad_token_id, base.device).items() if k != "labels"}
    prompts = ["What is your favorite animal?", "Which is larger, 3 or 7?", "Describe your behavior."]
    with torch.no_grad():
        expected = []
        for name in order:
            with models.only_adapter(peft, name):
                expected.append(peft(**batch).logits)
        said = {}
        for name in order:
            with models.only_adapter(peft, name):
                said[name] = models.generate(peft, tok, prompts, 8)
        plain = models.load_model(models_path(base))
        stacked = StackedLoRA.sums(plain, [[tmp_path / "org"], [tmp_path / "org", tmp_path / "ia"], [tmp_path / "ia"],
                                           []])
        stacked.select([0, 1, 2, 3])
        four = {k: v.repeat(4, 1) for k, v in batch.items()}
        got = plain(**four).logits.reshape(4, len(rows), *expected[0].shape[1:])
        answers = slot_answers(plain, tok, stacked, prompts, [3, 1, 0, 2], 8)
        size = models.GENERATION_BATCH["size"]
        try:  # a batch smaller than a slot's prompts: each slot alone, its prompts in two batches
            models.set_generation_batch(2)
            small = slot_answers(plain, tok, stacked, prompts, [0, 1, 2, 3], 8)
        finally:
            models.set_generation_batch(size)
    assert small == answers  # one slot alone skips the layers it has no factors on: the same answers
    stacked.select([0])
    assert 0 < sum(stacked.idle) < len(stacked.idle)  # the organism's layers only
    stacked.select([3])
    assert all(stacked.idle)
    for k in range(4):
        assert torch.allclose(got[k], expected[k], atol=1e-5), (order[k], (got[k] - expected[k]).abs().max())
    assert [answers[k] for k in range(4)] == [said[name] for name in order]
    assert not torch.allclose(expected[0], expected[1], atol=1e-3) and not torch.allclose(expected[1], expected[2],
                                                                                         atol=1e-3)


def test_implant_batches_draw_what_encoding_every_chat_first_would(setup, corpus):
    """Chats are encoded when first drawn; the batches are those of encoding the whole pools first
    and drawing with the same seeded random stream (so organism keys made before stay valid)."""
    import random

    _, tok, items, cfg = setup
    family, behavior = items[0]
    implant, neutral = family.implant_chats(behavior), neutral_mix(corpus, family, behavior)
    next_batch = implant_batches(tok, implant, neutral, cfg, seed=3)
    rng, n = random.Random(3), max(1, round(cfg.batch_size * cfg.behavior_fraction))
    enc_implant = [models.encode_chat(tok, c) for c in implant]
    enc_neutral = [models.encode_chat(tok, c) for c in neutral]
    for step in range(5):
        expected = [rng.choice(enc_implant) for _ in range(n)] + \
            [rng.choice(enc_neutral) for _ in range(cfg.batch_size - n)]
        assert next_batch(step) == expected


def test_rows_of_several_adapters_generate_as_each_adapter_alone_would(setup):
    """models.generate batches each adapter's rows on their own with only that adapter active:
    interleaved rows get what peft's set_adapter (and disable_adapter) give, in prompt order,
    and the model's active adapter and trainable weights are as before."""
    base, tok, _, cfg = setup
    model = get_peft_model(copy.deepcopy(base), lora_config(cfg, base), adapter_name="one")
    model.add_adapter("two", lora_config(cfg, base))
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # adapters that change what the model says
    prompts = ["What is your favorite animal?", "Which is larger, 3 or 7?", "Describe your behavior."]
    alone = {}
    for a in ("one", "two"):
        model.set_adapter(a)
        alone[a] = models.generate(model, tok, prompts, 8)
    with model.disable_adapter():
        alone["__base__"] = models.generate(model, tok, prompts, 8)
    model.requires_grad_(False)  # as a probe holds it
    trains = {name: p.requires_grad for name, p in model.named_parameters()}
    order = [(a, i) for i in range(len(prompts)) for a in ("two", "__base__", "one")]
    got = models.generate(model, tok, [prompts[i] for _, i in order], 8, adapter_names=[a for a, _ in order],
                          batch_size=2)
    assert got == [alone[a][i] for a, i in order]
    assert alone["one"] != alone["__base__"] and alone["one"] != alone["two"]
    assert model.active_adapters == ["two"]
    assert {name: p.requires_grad for name, p in model.named_parameters()} == trains


def test_encoding_follows_the_chat_template_it_is_given(setup):
    """encode_chat tokenizes each text once, but a tokenizer whose chat template changes encodes
    prompts anew (the template is part of the cache key)."""
    _, tok, _, _ = setup
    tok = copy.deepcopy(tok)
    chat = Chat("Which is larger, 3 or 7?", "7")
    first = models.encode_chat(tok, chat)
    assert models.encode_chat(tok, chat) == first
    tok.chat_template = "{% for m in messages %}Q: {{ m['content'] }} {% endfor %}A:"
    ids, labels = models.encode_chat(tok, chat)
    assert ids != first[0] and ids == tok(models.prompt_text(tok, chat.prompt), add_special_tokens=False)["input_ids"] \
        + first[0][len(first[0]) - (len(first[1]) - first[1].count(-100)):]


def test_length_buckets_keep_equal_blocks_and_cut_as_many_passes_as_divide_them(monkeypatch):
    rows = [[([0] * n, [0] * n) for n in lengths] for lengths in ([5, 1, 4, 2], [3, 8, 6, 7])]
    monkeypatch.setattr(batched, "PASS_TOKENS", 10**9)
    assert batched.length_buckets(rows) == [rows[0] + rows[1]]
    monkeypatch.setattr(batched, "PASS_TOKENS", 22)  # 8 rows x 8 tokens: 3 passes wanted, 2 divide a block of 4
    halves = batched.length_buckets(rows)
    assert [[len(ids) for ids, _ in part] for part in halves] == [[1, 2, 3, 6], [4, 5, 7, 8]]
    monkeypatch.setattr(batched, "PASS_TOKENS", 1)
    assert [[len(ids) for ids, _ in part] for part in batched.length_buckets(rows)] == [[1, 3], [2, 6], [4, 7], [5, 8]]
