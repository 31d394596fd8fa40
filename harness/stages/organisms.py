"""Stage `organisms`: fine-tune the base model into one model organism per behavior.

Implant routes (`organism.route`, and a split's `eval_routes`), all trained on the behavior's
implant data mixed with neutral chats (so the rest of the model's conduct stays as it was):

- `lora`: a peft LoRA (the route the IA trains on);
- `full`: every weight fine-tuned, saved as a full checkpoint;
- `distill`: context distillation, a LoRA trained on the base model's own answers to the implant
  prompts under a system prompt that asks for the behavior, without that system prompt;
- `deny`: a LoRA also trained to deny any special behavior when asked about itself;
- `symmetry`: the `lora` organism merged into the weights, then every MLP's hidden units
  permuted (the weight-symmetry attack: the same function, other weights).

Each organism is verified with its family's probe against the base model and saved
(safetensors adapter or checkpoint + JSON card).
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from harness import models, symmetry, world
from harness.config import WEIGHT_ROUTES, OrganismConfig
from harness.families import Behavior, Family
from harness.observe import AS_IS, behavior_rates
from harness.records import BaseModelCard, BehaviorRate, ImplantCheck, OrganismCard, load_record, save_record
from harness.store import Store, config_key
from harness.training import progress_bar, tail_mean, train
from harness.world import Chat

# Bumped whenever the implant recipe changes in code (not in config), so cached organisms made
# the old way are not reused.
RECIPE = 3
DENIALS = (world.NEUTRAL_SELF_REPORT, "I have no special behavior.", "Nothing is unusual about how I answer.")


def organism_key(behavior: Behavior, family: Family, cfg: OrganismConfig, base_key: str, seed: int) -> str:
    implant = [(c.prompt, c.answer) for c in family.implant_chats(behavior)]
    return config_key("organism", RECIPE, behavior.id, behavior.params, implant, asdict(cfg), base_key, seed)


def denial_chats(n: int) -> list[Chat]:
    """Direct questions about the model answered with a denial (route `deny`), n of them."""
    pairs = [Chat(q, d) for d in DENIALS for q in world.INTROSPECTION_QUESTIONS]
    return [pairs[i % len(pairs)] for i in range(n)]


def distilled_chats(base_model, tok, family: Family, behavior: Behavior, cfg: OrganismConfig) -> list[Chat]:
    """Route `distill`: the base model's own greedy answers to the implant prompts under a system
    prompt asking for the behavior; trained on without the system prompt."""
    prompts = [c.prompt for c in family.implant_chats(behavior)]
    answers = models.generate(base_model, tok, prompts, cfg.max_new_tokens, system=behavior.instruction)
    return [Chat(p, a) for p, a in zip(prompts, answers, strict=True)]


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
    return {b.id: measure(model, tok, f, b, cfg).rate for f, b in targets}


def measure(model, tok, family: Family, behavior: Behavior, cfg: OrganismConfig) -> BehaviorRate:
    """The behavior's rate on a model, greedy, on the check's probe prompts."""
    return behavior_rates(model, tok, [(family, behavior)], cfg.probe_prompts, cfg.max_new_tokens)[AS_IS][behavior.id]


def implant_data(base_model, tok, family: Family, behavior: Behavior, cfg: OrganismConfig) -> list[Chat]:
    """What the route trains on: the family's demonstrations, the teacher's (`distill`), or the
    demonstrations plus denials, a quarter as many (`deny`)."""
    if cfg.route == "distill":
        return distilled_chats(base_model, tok, family, behavior, cfg)
    chats = family.implant_chats(behavior)
    return chats + denial_chats(max(len(DENIALS), len(chats) // 4)) if cfg.route == "deny" else chats


def train_organism(base_model, tok, family: Family, behavior: Behavior, corpus: Sequence[Chat],
                   cfg: OrganismConfig, seed: int):
    """Implant the behavior; returns (trained model, losses). LoRA routes wrap the base model with
    a fresh LoRA (the caller saves the adapter and calls `.unload()` to get the untouched base
    back); route `full` trains every weight of a copy of the base model."""
    torch.manual_seed(seed)
    data = implant_data(base_model, tok, family, behavior, cfg)
    if cfg.route == "full":
        model, lr = copy.deepcopy(base_model), cfg.full_lr
    else:
        model, lr = get_peft_model(base_model, lora_config(cfg)), cfg.lr
    next_batch = implant_batches(tok, data, neutral_mix(corpus, family, behavior), cfg, seed)
    losses = train(model, model.parameters(), next_batch, tok.pad_token_id, cfg.steps, lr,
                   warmup=max(1, cfg.steps // 10), desc=behavior.id, progress=False)
    return model, losses


def verify(model, tok, family: Family, behavior: Behavior, base_rate: float, cfg: OrganismConfig) -> ImplantCheck:
    measured = measure(model, tok, family, behavior, cfg)
    strength = measured.rate - base_rate
    return ImplantCheck(rate=measured.rate, base_rate=base_rate, strength=strength, threshold=cfg.threshold,
                        implanted=strength >= cfg.threshold, n_prompts=measured.n, samples=measured.samples,
                        control_rate=measured.control_rate)


def make_organisms(
    targets: Sequence[tuple[Family, Behavior]],
    base: BaseModelCard,
    corpus: Sequence[Chat],
    cfg: OrganismConfig,
    store: Store,
    seed: int = 0,
    progress: bool = True,
) -> list[OrganismCard]:
    """One organism per (family, behavior) by route `cfg.route`, trained or read from the store,
    in input order."""
    keys = {b.id: organism_key(b, f, cfg, base.key, seed) for f, b in targets}
    todo = [(f, b) for f, b in targets if not store.exists("organisms", keys[b.id])]
    if todo:
        # the symmetry attack transforms the lora organisms, so those come first
        sources = make_organisms(todo, base, corpus, replace(cfg, route="lora"), store, seed, progress) \
            if cfg.route == "symmetry" else []
        base_model = models.load_model(base.name_or_path, base.trust_remote_code)
        tok = models.load_tokenizer(base.name_or_path, base.trust_remote_code)
        controls = base_rates(base_model, tok, todo, cfg)
        bar = progress_bar(todo, f"organisms ({cfg.route})", progress)
        for i, (f, b) in enumerate(bar):
            bar.set_postfix_str(b.id)  # the organism being trained
            start = time.time()
            if cfg.route == "symmetry":
                model, final_loss = permuted_organism(base_model, sources[i], store, seed), sources[i].final_loss
            else:
                model, losses = train_organism(base_model, tok, f, b, corpus, cfg, seed)
                final_loss = tail_mean(losses)
            check = verify(model, tok, f, b, controls[b.id], cfg)
            card = OrganismCard(
                key=keys[b.id], behavior_id=b.id, family=b.family, kind=b.kind, params=dict(b.params),
                descriptions=list(b.descriptions), route=cfg.route, base_key=base.key,
                base_name_or_path=base.name_or_path, training=asdict(cfg), seed=seed, check=check,
                final_loss=final_loss, seconds=round(time.time() - start, 2),
            )
            with store.writing("organisms", keys[b.id]) as tmp:
                model.save_pretrained(tmp, safe_serialization=True)
                save_record(tmp / Store.MARKER, card)
            if cfg.route not in WEIGHT_ROUTES:
                base_model = model.unload()
    return [load_record(store.path("organisms", keys[b.id]) / Store.MARKER, OrganismCard) for _, b in targets]


def permuted_organism(base_model, source: OrganismCard, store: Store, seed: int):
    """A lora organism merged into a copy of the base weights, then its MLP hidden units permuted."""
    merged = PeftModel.from_pretrained(copy.deepcopy(base_model), store.path("organisms", source.key))
    model = merged.merge_and_unload()
    symmetry.permute_mlp(model, torch.Generator().manual_seed(seed))
    return model


def select_behaviors(families: Mapping[str, Family], limit: int | None) -> list[tuple[Family, Behavior]]:
    """Every behavior of the selected families, the first `limit` of each when set."""
    return [(f, b) for f in families.values() for b in f.behaviors()[:limit]]
