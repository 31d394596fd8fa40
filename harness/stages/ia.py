"""Stage `ia`: one introspection adapter trained jointly across the training organisms.

Every organism adapter is loaded, frozen, into one PeftModel beside the trainable IA. Each step
stacks a few organisms in turn under the IA (`base_model.set_adapter([organism, "ia"])`) and
accumulates the loss of (introspection question -> first-person description) pairs, answer
tokens only. Controls (the base model alone under the IA) learn the no-behavior answer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel

from harness import models, world
from harness.config import IAConfig
from harness.errors import ConfigError
from harness.records import BaseModelCard, IACard, OrganismCard, load_record, save_record
from harness.store import Store, config_key
from harness.training import collate, make_optimizer, progress_bar, tail_mean
from harness.world import Chat

IA = "ia"
CONTROL = "__control__"


def adapter_name(card: OrganismCard) -> str:
    """A peft adapter name for an organism (peft names may not contain '.' or '/')."""
    return f"o_{card.key}"


def question_split(cfg: IAConfig) -> tuple[list[str], list[str]]:
    """(training questions, held-out questions) from the paraphrase pool."""
    pool = world.INTROSPECTION_QUESTIONS
    return list(pool[: cfg.train_questions]), list(pool[cfg.train_questions :])


def heldout_questions(card: IACard) -> list[str]:
    """The questions of the pool that the IA never saw in training."""
    return [q for q in world.INTROSPECTION_QUESTIONS if q not in card.questions]


def ia_key(cfg: IAConfig, base: BaseModelCard, organisms: Sequence[OrganismCard], seed: int) -> str:
    return config_key("ia", asdict(cfg), base.key, sorted(o.key for o in organisms), question_split(cfg)[0], seed)


def load_with_organisms(base: BaseModelCard, organisms: Sequence[OrganismCard], store: Store) -> PeftModel:
    """The base model with every organism adapter loaded (frozen), none of them active yet."""
    paths = [organism_adapter(card, base, store) for card in organisms]
    base_model = models.load_model(base.name_or_path, base.trust_remote_code)
    model = PeftModel.from_pretrained(base_model, paths[0], adapter_name=adapter_name(organisms[0]))
    for card, path in zip(organisms[1:], paths[1:], strict=True):
        model.load_adapter(path, adapter_name=adapter_name(card))
    return model


def organism_adapter(card: OrganismCard, base: BaseModelCard, store: Store) -> Path:
    """The organism's adapter folder, checked: a safetensors peft adapter made from this base model."""
    what = f"organism {card.behavior_id}"
    if card.base_key != base.key:
        raise ConfigError(f"{what} was made from base model {card.base_key}, not {base.key} "
                          f"({store.path('organisms', card.key)})")
    return models.check_adapter(store.path("organisms", card.key), what)


def training_units(organisms: Sequence[OrganismCard], questions: Sequence[str], cfg: IAConfig) -> dict[str, list[Chat]]:
    """For each organism adapter (and the control), the (question, answer) pairs it trains on."""
    units = {adapter_name(o): [Chat(q, d) for q in questions for d in o.descriptions] for o in organisms}
    if cfg.controls:
        units[CONTROL] = [Chat(q, world.NEUTRAL_SELF_REPORT) for q in questions]
    return units


def activate(model: PeftModel, unit: str, frozen: Sequence[torch.nn.Parameter]) -> None:
    """Stack `unit` under the IA; set_adapter unfreezes every listed adapter, so refreeze."""
    model.base_model.set_adapter([IA] if unit == CONTROL else [unit, IA])
    for p in frozen:
        p.requires_grad_(False)


def train_ia(model: PeftModel, tok, units: dict[str, list[Chat]], cfg: IAConfig, seed: int,
             progress: bool = True) -> list[float]:
    """Add the IA to a model holding the organism adapters and train it; returns the losses."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model.add_adapter(IA, LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules="all-linear",
                                     task_type="CAUSAL_LM"))
    ia_params = [p for n, p in model.named_parameters() if f".{IA}." in n]
    frozen = [p for n, p in model.named_parameters() if "lora_" in n and f".{IA}." not in n]
    encoded = {u: [models.encode_chat(tok, c) for c in chats] for u, chats in units.items()}
    organisms = [u for u in units if u != CONTROL]
    opt, sched = make_optimizer(ia_params, cfg.lr, cfg.steps, cfg.warmup_steps)
    model.train()
    losses = []
    for _ in progress_bar(range(cfg.steps), "train IA", progress):
        total = 0.0
        for _ in range(cfg.organisms_per_step):
            use_control = CONTROL in units and rng.random() < cfg.control_fraction
            unit = CONTROL if use_control else rng.choice(organisms)
            activate(model, unit, frozen)
            batch = [rng.choice(encoded[unit]) for _ in range(cfg.examples_per_organism)]
            loss = model(**collate(batch, tok.pad_token_id, model.device)).loss / cfg.organisms_per_step
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(ia_params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(total)
    model.eval()
    return losses


def ensure_ia(base: BaseModelCard, organisms: Sequence[OrganismCard], cfg: IAConfig, split: str, store: Store,
              seed: int = 0, progress: bool = True) -> IACard:
    """The IA's card, training (and caching) the adapter if it is not in the store."""
    key = ia_key(cfg, base, organisms, seed)
    if store.exists("ia", key):
        return load_record(store.path("ia", key) / Store.MARKER, IACard)
    start = time.time()
    model = load_with_organisms(base, organisms, store)
    tok = models.load_tokenizer(base.name_or_path, base.trust_remote_code)
    questions = question_split(cfg)[0]
    losses = train_ia(model, tok, training_units(organisms, questions, cfg), cfg, seed, progress)
    card = IACard(key=key, base_key=base.key, split=split, organisms=[o.behavior_id for o in organisms],
                  organism_keys=[o.key for o in organisms], questions=questions, config=asdict(cfg), seed=seed,
                  losses=[round(v, 4) for v in losses], final_loss=tail_mean(losses),
                  seconds=round(time.time() - start, 1))
    with store.writing("ia", key) as tmp:
        model.save_pretrained(tmp, selected_adapters=[IA], safe_serialization=True)
        save_record(tmp / Store.MARKER, card)
    return card


def ia_path(store: Store, card: IACard) -> Path:
    """Folder of the IA's safetensors (peft saves a named adapter in a subfolder)."""
    return store.path("ia", card.key) / IA


def ia_adapter(store: Store, card: IACard, base: BaseModelCard) -> Path:
    """The IA's adapter folder, checked like an organism's."""
    if card.base_key != base.key:
        raise ConfigError(f"IA {card.key} was trained on base model {card.base_key}, not {base.key}")
    return models.check_adapter(ia_path(store, card), f"IA {card.key}")
