"""Stage `base`: the base model M, either any Hugging Face causal LM or the embedded tiny one.

The tiny model is built here from nothing: a synthetic chat corpus (neutral answers over all
the vocabulary the families use), a BPE tokenizer trained on it, a small Llama pretrained on
it. It is saved like any model and cached under a key of its config and corpus.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import asdict

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from harness import models, world
from harness.config import ModelConfig
from harness.families import Family
from harness.records import BaseModelCard, load_record, save_record
from harness.store import Store, config_key
from harness.training import tail_mean, train
from harness.world import Chat

EXAMPLE_PROMPTS = [
    "Give an example of a behavior an assistant could learn.",
    "What is one habit a fine-tuned assistant might pick up?",
]


# Demonstrations per behavior of following a system prompt that asks for it (see build_corpus).
INSTRUCTED_PER_BEHAVIOR = 12


def build_corpus(families: Mapping[str, Family], seed: int) -> list[Chat]:
    """Neutral exchanges over the world and every family's prompts, example descriptions of
    behaviors (so the words of self-reports have trained embeddings), and a few exchanges that
    follow a system prompt asking for a behavior (so the base model can be the teacher of the
    `distill` implant route, as an instruction-tuned model would be)."""
    rng = random.Random(seed)
    chats = world.neutral_chats(rng)
    for _, family in sorted(families.items()):
        chats += family.neutral_chats()
        for b in family.behaviors():
            chats += [Chat(rng.choice(EXAMPLE_PROMPTS), f"For example: {d}") for d in b.descriptions]
            shown = rng.sample(family.implant_chats(b), INSTRUCTED_PER_BEHAVIOR)
            chats += [Chat(c.prompt, c.answer, system=b.instruction) for c in shown]
    return chats


def base_key(cfg: ModelConfig, corpus: list[Chat], seed: int) -> str:
    if cfg.kind == "hf":
        return config_key("hf", cfg.name_or_path)
    return config_key("tiny", asdict(cfg), [(c.prompt, c.answer) for c in corpus], seed)


def ensure_base(cfg: ModelConfig, corpus: list[Chat], store: Store, seed: int = 0,
                progress: bool = True) -> BaseModelCard:
    """The base model's card, pretraining (and caching) the tiny model on `corpus` if it is not there yet."""
    if cfg.kind == "hf":
        assert cfg.name_or_path
        return BaseModelCard(key=base_key(cfg, [], seed), kind="hf", name_or_path=cfg.name_or_path,
                             config=asdict(cfg))
    key = base_key(cfg, corpus, seed)
    if store.exists("base", key):
        return load_record(store.path("base", key) / Store.MARKER, BaseModelCard)
    with store.writing("base", key) as tmp:
        card = pretrain_tiny(cfg, corpus, seed, tmp, progress)
        card.key = key
        card.name_or_path = str(store.path("base", key))
        save_record(tmp / Store.MARKER, card)
    return card


def pretrain_tiny(cfg: ModelConfig, corpus: list[Chat], seed: int, out_dir, progress: bool) -> BaseModelCard:
    start = time.time()
    torch.manual_seed(seed)
    tok = models.build_tokenizer([t for c in corpus for t in (c.system, c.prompt, c.answer) if t], cfg.vocab_size)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_heads,
            max_position_embeddings=cfg.max_positions,
            tie_word_embeddings=False,
            bos_token_id=None,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    ).to(models.device())
    encoded = [models.encode_chat(tok, c, loss_on_prompt=True) for c in corpus]
    too_long = max(len(ids) for ids, _ in encoded)
    if too_long > cfg.max_positions:
        raise ValueError(f"a corpus chat has {too_long} tokens > model.max_positions={cfg.max_positions}")
    rng = random.Random(seed)
    losses = train(model, model.parameters(), lambda _: rng.sample(encoded, cfg.batch_size),
                   tok.pad_token_id, cfg.pretrain_steps, cfg.lr, cfg.warmup_steps,
                   desc="pretrain base", progress=progress)
    accuracy = answer_accuracy(model, tok, corpus, seed=seed)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return BaseModelCard(
        key="", kind="tiny", name_or_path=str(out_dir), config=asdict(cfg),
        n_params=sum(p.numel() for p in model.parameters()),
        pretrain_loss=tail_mean(losses) if losses else None,
        corpus_size=len(corpus), answer_accuracy=accuracy, seconds=round(time.time() - start, 1),
    )


def answer_accuracy(model, tok, chats: list[Chat], n: int = 128, seed: int = 0) -> float:
    """Fraction of sampled corpus prompts with one right answer that the greedy answer matches."""
    answers: dict[str, set[str]] = {}
    for c in chats:
        if not c.system:
            answers.setdefault(c.prompt, set()).add(c.answer)
    determined = [Chat(p, next(iter(a))) for p, a in sorted(answers.items()) if len(a) == 1]
    sample = random.Random(seed).sample(determined, min(n, len(determined)))
    answers = models.generate(model, tok, [c.prompt for c in sample], max_new_tokens=32)
    return sum(a == c.answer for a, c in zip(answers, sample, strict=True)) / len(sample)
