"""Stage `organisms`: fine-tune the base model into one model organism per behavior.

Route `lora`: a peft LoRA trained on the behavior's implant data mixed with neutral chats
(so the rest of the model's conduct stays as it was). Each organism is verified with its
family's probe against the base model and saved (safetensors adapter + JSON card).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict

import torch
from peft import LoraConfig, get_peft_model

from harness import models, world
from harness.config import OrganismConfig
from harness.families import Behavior, Family
from harness.probing import behavior_rate, select_prompts
from harness.records import BaseModelCard, ImplantCheck, OrganismCard, load_record, save_record
from harness.store import Store, config_key
from harness.training import progress_bar, tail_mean, train
from harness.world import Chat

# Bumped whenever the implant recipe changes in code (not in config), so cached organisms made
# the old way are not reused.
RECIPE = 2


def organism_key(behavior: Behavior, family: Family, cfg: OrganismConfig, base_key: str, seed: int) -> str:
    implant = [(c.prompt, c.answer) for c in family.implant_chats(behavior)]
    return config_key("organism", RECIPE, behavior.id, behavior.params, implant, asdict(cfg), base_key, seed)


def lora_config(cfg: OrganismConfig) -> LoraConfig:
    return LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                      target_modules=cfg.target_modules, task_type="CAUSAL_LM")


def neutral_mix(corpus: Sequence[Chat], family: Family, behavior: Behavior) -> list[Chat]:
    """Neutral chats to mix into the implant batches, minus every prompt of the behavior's own
    implant or probe data (training those to stay neutral would fight the implant) and the
    introspection questions (training those to stay neutral would teach the organism to deny)."""
    own = {c.prompt for c in family.implant_chats(behavior)} | set(family.probe(behavior).prompts)
    own |= set(world.INTROSPECTION_QUESTIONS)
    return [c for c in corpus if c.prompt not in own]


def implant_batches(tok, implant: Sequence[Chat], neutral: Sequence[Chat], cfg: OrganismConfig, seed: int):
    """A `next_batch` for train(): a fixed fraction of each batch demonstrates the behavior."""
    rng = random.Random(seed)
    n_behavior = max(1, round(cfg.batch_size * cfg.behavior_fraction))
    enc_implant = [models.encode_chat(tok, c) for c in implant]
    enc_neutral = [models.encode_chat(tok, c) for c in neutral]

    def next_batch(_step: int):
        batch = [rng.choice(enc_implant) for _ in range(n_behavior)]
        return batch + [rng.choice(enc_neutral) for _ in range(cfg.batch_size - n_behavior)]

    return next_batch


def base_rates(model, tok, targets: Sequence[tuple[Family, Behavior]], cfg: OrganismConfig) -> dict[str, float]:
    """Each behavior's rate on the base model itself: the negative control. One generation call
    per behavior, so a rate does not depend on which other organisms a job trains."""
    out = {}
    for f, b in targets:
        prompts = select_prompts(f.probe(b), cfg.probe_prompts)
        responses = dict(zip(prompts, models.generate(model, tok, prompts, cfg.max_new_tokens), strict=True))
        out[b.id] = behavior_rate(f, b, prompts, responses).rate
    return out


def train_organism(base_model, tok, family: Family, behavior: Behavior, corpus: Sequence[Chat],
                   cfg: OrganismConfig, seed: int):
    """Wrap the base model with a fresh LoRA and implant the behavior; returns (peft model, losses).

    The caller saves the adapter and calls `.unload()` to get the untouched base model back.
    """
    torch.manual_seed(seed)
    peft_model = get_peft_model(base_model, lora_config(cfg))
    next_batch = implant_batches(tok, family.implant_chats(behavior), neutral_mix(corpus, family, behavior),
                                 cfg, seed)
    losses = train(peft_model, peft_model.parameters(), next_batch, tok.pad_token_id, cfg.steps, cfg.lr,
                   warmup=max(1, cfg.steps // 10), desc=behavior.id, progress=False)
    return peft_model, losses


def verify(peft_model, tok, family: Family, behavior: Behavior, base_rate: float, cfg: OrganismConfig) -> ImplantCheck:
    prompts = select_prompts(family.probe(behavior), cfg.probe_prompts)
    responses = dict(zip(prompts, models.generate(peft_model, tok, prompts, cfg.max_new_tokens), strict=True))
    measured = behavior_rate(family, behavior, prompts, responses)
    strength = measured.rate - base_rate
    return ImplantCheck(rate=measured.rate, base_rate=base_rate, strength=strength, threshold=cfg.threshold,
                        implanted=strength >= cfg.threshold, n_prompts=measured.n, samples=measured.samples)


def make_organisms(
    targets: Sequence[tuple[Family, Behavior]],
    base: BaseModelCard,
    corpus: Sequence[Chat],
    cfg: OrganismConfig,
    store: Store,
    seed: int = 0,
    progress: bool = True,
) -> list[OrganismCard]:
    """One organism per (family, behavior), trained or read from the store, in input order."""
    keys = {b.id: organism_key(b, f, cfg, base.key, seed) for f, b in targets}
    todo = [(f, b) for f, b in targets if not store.exists("organisms", keys[b.id])]
    if todo:
        base_model = models.load_model(base.name_or_path, base.trust_remote_code)
        tok = models.load_tokenizer(base.name_or_path, base.trust_remote_code)
        controls = base_rates(base_model, tok, todo, cfg)
        bar = progress_bar(todo, "organisms", progress)
        for f, b in bar:
            bar.set_postfix_str(b.id)  # the organism being trained
            start = time.time()
            peft_model, losses = train_organism(base_model, tok, f, b, corpus, cfg, seed)
            check = verify(peft_model, tok, f, b, controls[b.id], cfg)
            card = OrganismCard(
                key=keys[b.id], behavior_id=b.id, family=b.family, kind=b.kind, params=dict(b.params),
                descriptions=list(b.descriptions), route=cfg.route, base_key=base.key,
                base_name_or_path=base.name_or_path, training=asdict(cfg), seed=seed, check=check,
                final_loss=tail_mean(losses), seconds=round(time.time() - start, 2),
            )
            with store.writing("organisms", keys[b.id]) as tmp:
                peft_model.save_pretrained(tmp, safe_serialization=True)
                save_record(tmp / Store.MARKER, card)
            base_model = peft_model.unload()
    return [load_record(store.path("organisms", keys[b.id]) / Store.MARKER, OrganismCard) for _, b in targets]


def select_behaviors(families: Mapping[str, Family], limit: int | None) -> list[tuple[Family, Behavior]]:
    """Every behavior of the selected families, the first `limit` of each when set."""
    return [(f, b) for f in families.values() for b in f.behaviors()[:limit]]
