"""Stage `ia`: one introspection adapter trained jointly across the training organisms.

Every organism adapter is loaded, frozen, into one PeftModel beside the trainable IA. Each step
stacks a few organisms in turn under the IA (`base_model.set_adapter([organism, "ia"])`) and
accumulates the loss of (introspection question -> first-person description) pairs, answer
tokens only. Controls (the base model alone under the IA) learn the no-behavior answer.

With DPO (`ia=lora_sft_dpo`), a few training organisms per family are held out of SFT; the SFT
IA's sampled self-reports on them are graded, and DPO then prefers accurate reports over
inaccurate ones, training the IA's weights only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel

from harness import models, world
from harness.config import WEIGHT_ROUTES, IAConfig
from harness.dpo import Pair, dpo_loss, preference_pairs, sequence_logps
from harness.errors import ConfigError
from harness.families import Family
from harness.observe import self_reports
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
    """The organism's folder, checked: made from this base model, and a safetensors peft adapter
    (or, for the weight routes, a safetensors checkpoint)."""
    what = f"organism {card.behavior_id} ({card.route})"
    path = store.path("organisms", card.key)
    if card.base_key != base.key:
        raise ConfigError(f"{what} was made from base model {card.base_key}, not {base.key} ({path})")
    return models.check_checkpoint(path, what) if card.route in WEIGHT_ROUTES else models.check_adapter(path, what)


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


def dpo_split(organisms: Sequence[OrganismCard], cfg: IAConfig) -> tuple[list[OrganismCard], list[OrganismCard]]:
    """(SFT organisms, organisms held out of SFT whose self-reports DPO learns from): the last
    `dpo_organisms` of each family; none without DPO."""
    if not cfg.dpo_steps:
        return list(organisms), []
    held = [c for f in dict.fromkeys(o.family for o in organisms)
            for c in [o for o in organisms if o.family == f][-cfg.dpo_organisms:]]
    sft = [o for o in organisms if o not in held]
    if not sft:
        raise ConfigError(f"ia.dpo_organisms={cfg.dpo_organisms} leaves no organism to train the IA on with SFT")
    return sft, held


def sample_pairs(model: PeftModel, tok, organisms: Sequence[OrganismCard], families: Mapping[str, Family],
                 questions: Sequence[str], cfg: IAConfig, seed: int) -> list[Pair]:
    """Sample the IA's self-reports on each organism, grade them (rules grader: does the report
    describe the organism's own behavior?), and pair inaccurate ones against accurate ones."""
    torch.manual_seed(seed)
    pairs = []
    for card in organisms:
        family = families[card.family]
        behavior = family.behavior(card.behavior_id)
        activate(model, adapter_name(card), [])  # the organism stacked under the IA: two adapters at once
        reports = self_reports(model, tok, questions, cfg.dpo_samples, cfg.dpo_max_new_tokens, 1.0, seed=None)
        graded = [(q, r, family.mentions(behavior, r)) for q, r in reports]
        pairs += preference_pairs(adapter_name(card), graded, card.descriptions)
    return pairs


def train_dpo(model: PeftModel, tok, pairs: Sequence[Pair], cfg: IAConfig, seed: int,
              progress: bool = True) -> tuple[list[float], list[float]]:
    """DPO on the IA's weights only, against the IA as it was after SFT (the reference, whose
    log-probabilities are computed once up front); returns (losses, reward accuracies)."""
    rng = random.Random(seed)
    ia_params = [p for n, p in model.named_parameters() if f".{IA}." in n]
    frozen = [p for n, p in model.named_parameters() if "lora_" in n and f".{IA}." not in n]
    encoded = [tuple(models.encode_chat(tok, Chat(p.question, answer)) for answer in (p.chosen, p.rejected))
               for p in pairs]
    by_unit: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        by_unit.setdefault(p.unit, []).append(i)
    model.eval()
    ref = {}
    with torch.no_grad():
        for unit, idx in by_unit.items():
            activate(model, unit, frozen)
            ref[unit] = (sequence_logps(model, [encoded[i][0] for i in idx], tok.pad_token_id),
                         sequence_logps(model, [encoded[i][1] for i in idx], tok.pad_token_id))
    opt, sched = make_optimizer(ia_params, cfg.dpo_lr, cfg.dpo_steps, max(1, cfg.dpo_steps // 10))
    model.train()
    losses, accuracies = [], []
    for _ in progress_bar(range(cfg.dpo_steps), "DPO on the IA", progress):
        total, correct = 0.0, 0.0
        units = [rng.choice(list(by_unit)) for _ in range(cfg.organisms_per_step)]
        for unit in units:
            activate(model, unit, frozen)
            pick = [rng.randrange(len(by_unit[unit])) for _ in range(cfg.examples_per_organism)]
            rows = [by_unit[unit][j] for j in pick]
            loss, acc = dpo_loss(sequence_logps(model, [encoded[i][0] for i in rows], tok.pad_token_id),
                                 sequence_logps(model, [encoded[i][1] for i in rows], tok.pad_token_id),
                                 ref[unit][0][pick], ref[unit][1][pick], cfg.dpo_beta)
            (loss / len(units)).backward()
            total += loss.item() / len(units)
            correct += acc.item() / len(units)
        torch.nn.utils.clip_grad_norm_(ia_params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(total)
        accuracies.append(correct)
    model.eval()
    return losses, accuracies


def ensure_ia(base: BaseModelCard, organisms: Sequence[OrganismCard], cfg: IAConfig, split: str, store: Store,
              seed: int = 0, progress: bool = True, families: Mapping[str, Family] | None = None) -> IACard:
    """The IA's card, training (and caching) the adapter if it is not in the store. With DPO
    (`ia.dpo_steps` > 0) the `families` grade the sampled self-reports."""
    key = ia_key(cfg, base, organisms, seed)
    if store.exists("ia", key):
        return load_record(store.path("ia", key) / Store.MARKER, IACard)
    start = time.time()
    sft, held = dpo_split(organisms, cfg)
    model = load_with_organisms(base, organisms, store)
    tok = models.load_tokenizer(base.name_or_path, base.trust_remote_code)
    questions = question_split(cfg)[0]
    losses = train_ia(model, tok, training_units(sft, questions, cfg), cfg, seed, progress)
    dpo: dict[str, Any] = {}
    if held:
        if families is None:
            raise ValueError("DPO grades self-reports with the families; pass families=")
        pairs = sample_pairs(model, tok, held, families, questions, cfg, seed)
        if not pairs:
            raise ConfigError(f"DPO: every sampled self-report of the {len(held)} held-out organisms was accurate; "
                              "nothing to prefer (raise ia.dpo_samples or drop DPO)")
        dpo_losses, accuracies = train_dpo(model, tok, pairs, cfg, seed, progress)
        dpo = {"dpo_organisms": [o.behavior_id for o in held], "dpo_pairs": len(pairs),
               "dpo_losses": [round(v, 4) for v in dpo_losses], "dpo_reward_accuracy": tail_mean(accuracies)}
    card = IACard(key=key, base_key=base.key, split=split, organisms=[o.behavior_id for o in sft],
                  organism_keys=[o.key for o in sft], questions=questions, config=asdict(cfg), seed=seed,
                  losses=[round(v, 4) for v in losses], final_loss=tail_mean(losses),
                  seconds=round(time.time() - start, 1), **dpo)
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
