"""Stage `ia`: one introspection adapter trained jointly across the training organisms.

Every organism adapter is loaded, frozen, into one stack on the base model (harness/train/batched.py)
beneath the trainable IA. Each step takes rows of a few organisms in one forward pass, each row
under its own organism and the IA, and trains on (introspection question -> first-person
description) pairs, answer tokens only. Controls (the base model alone under the IA) learn the
no-behavior answer.

With DPO (`ia=lora_sft_dpo`), a quarter of each family's training organisms are held out of SFT;
the SFT IA's self-reports on half of them are graded, and DPO then prefers accurate reports over
inaccurate ones, training the IA's weights only, while the other half's verbalization decides
when to stop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from peft.utils.constants import INCLUDE_LINEAR_LAYERS_SHORTHAND

from harness.core import tracking
from harness.core.config import IAConfig
from harness.core.errors import ConfigError
from harness.core.record_io import load_card, save_record
from harness.core.records import BaseModelCard, IACard, OrganismCard
from harness.core.store import Store, config_key
from harness.core.vocabulary import NEUTRAL_SELF_REPORT, Chat, question_split
from harness.families import Family
from harness.lm import models
from harness.measure.observe import self_reports
from harness.run.stage import Done, Run, Stage
from harness.train.adapters import IA, adapter_name, ia_path, organism_adapter
from harness.train.batched import StackedLoRA, block_losses
from harness.train.dpo import Pair, dpo_loss, preference_pairs, sequence_logps
from harness.train.routes import UPPER_HALF, lora_targets, matched_modules
from harness.train.training import collate, tail_mean, train, trainable

CONTROL = "__control__"


def ia_key(cfg: IAConfig, base: BaseModelCard, organisms: Sequence[OrganismCard], seed: int) -> str:
    questions = question_split(cfg.train_templates)[0]
    # an IA without DPO does not depend on DPO's settings
    recipe = {k: v for k, v in asdict(cfg).items() if cfg.dpo_steps or not k.startswith("dpo_")}
    return config_key("ia", recipe, base.key, sorted(o.key for o in organisms), questions, seed)


def unit_groups(organisms: Sequence[OrganismCard], cfg: IAConfig) -> list[list[str]]:
    """The organism units a step picks from: one group of all (`ia.sampler=organism`), or one
    group per kind of behavior (`kind`), picked uniformly before an organism within it."""
    if cfg.sampler == "organism":
        return [[adapter_name(o) for o in organisms]]
    kinds = dict.fromkeys((o.family, o.kind) for o in organisms)
    return [[adapter_name(o) for o in organisms if (o.family, o.kind) == k] for k in kinds]


def training_units(organisms: Sequence[OrganismCard], questions: Sequence[str], cfg: IAConfig) -> dict[str, list[Chat]]:
    """For each organism adapter (and the control), the (question, answer) pairs it trains on."""
    units = {adapter_name(o): [Chat(q, d) for q in questions for d in o.descriptions] for o in organisms}
    if cfg.controls:
        units[CONTROL] = [Chat(q, NEUTRAL_SELF_REPORT) for q in questions]
    return units


def ia_targets(model, target_modules: str) -> str | list[str]:
    """peft's `target_modules` for the IA: all-linear as it is, a regular expression or
    `upper-half` as the names of the linear layers it stands for (peft combines an organism with
    the IA, as the probe does, only when both adapters name their layers, not one by a pattern)."""
    if target_modules in (INCLUDE_LINEAR_LAYERS_SHORTHAND, UPPER_HALF):
        return lora_targets(model, target_modules)
    names = [n for n in matched_modules(model, target_modules) if isinstance(model.get_submodule(n), torch.nn.Linear)]
    if not names:
        raise ConfigError(f"ia.target_modules={target_modules!r} matches no linear layer of the base model")
    return names


@dataclass
class UnderIA:
    """The organisms the IA trains on, stacked (frozen) on one base model (harness/train/batched.py):
    a step's rows go in equal blocks, each through its unit's organism (the control: none), and
    the IA, once added, on top of all of them."""

    model: Any
    """The base model; a peft model with the IA once `train_ia` has added it."""
    stack: StackedLoRA
    slots: dict[str, int]
    """Each unit's adapter in the stack (the control's: the empty slot)."""

    @classmethod
    def load(cls, base: BaseModelCard, organisms: Sequence[OrganismCard], store: Store) -> UnderIA:
        paths = [organism_adapter(card, base, store) for card in organisms]
        model = models.load_base(base).requires_grad_(False)
        slots = {adapter_name(card): k for k, card in enumerate(organisms)} | {CONTROL: len(organisms)}
        return cls(model, StackedLoRA.load(model, paths), slots)

    def activate(self, units: Sequence[str]) -> None:
        """The next batches: len(units) equal blocks of rows, block j under units[j]."""
        self.stack.select([self.slots[u] for u in units])


def train_ia(under: UnderIA, tok, units: dict[str, list[Chat]], cfg: IAConfig, seed: int,
             progress: bool = True, groups: Sequence[Sequence[str]] | None = None) -> list[float]:
    """Add the IA on top of the organisms and train it; returns the losses. A step takes
    `ia.organisms_per_step` units, each the control (`ia.control_fraction` of them) or an
    organism of a group picked uniformly (`groups`, see unit_groups; default: one group of every
    organism), and `ia.examples_per_organism` rows of each, all in one forward pass; its loss is
    the mean over units of each unit's mean token loss."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    under.model = get_peft_model(under.model, LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, task_type="CAUSAL_LM",
                                                         target_modules=ia_targets(under.model, cfg.target_modules)),
                                 adapter_name=IA)
    encoded = {u: [models.encode_chat(tok, c) for c in chats] for u, chats in units.items()}
    groups = groups or [[u for u in units if u != CONTROL]]

    def step(_: int) -> float:
        picked, rows = [], []
        for _ in range(cfg.organisms_per_step):
            use_control = CONTROL in units and rng.random() < cfg.control_fraction
            unit = CONTROL if use_control else rng.choice(groups[0] if len(groups) == 1 else rng.choice(groups))
            picked.append(unit)
            rows += [rng.choice(encoded[unit]) for _ in range(cfg.examples_per_organism)]
        under.activate(picked)
        loss = block_losses(under.model, collate(rows, tok.pad_token_id, under.model.device), len(picked)).mean()
        loss.backward()
        return loss.item()

    return train(under.model, trainable(under.model.parameters()), step, cfg.steps, cfg.lr, cfg.warmup_steps,
                 desc="train IA", progress=progress, curve="ia/loss")


def dpo_split(organisms: Sequence[OrganismCard], cfg: IAConfig) -> tuple[list[OrganismCard], list[OrganismCard]]:
    """(SFT organisms, the DPO pool held out of SFT): the last `dpo_fraction` of each family's
    organisms (at least one); no pool without DPO."""
    if not cfg.dpo_steps:
        return list(organisms), []
    held = []
    for family in dict.fromkeys(o.family for o in organisms):
        own = [o for o in organisms if o.family == family]
        held += own[len(own) - max(1, round(cfg.dpo_fraction * len(own))):]
    sft = [o for o in organisms if o not in held]
    if not sft:
        raise ConfigError(f"ia.dpo_fraction={cfg.dpo_fraction} leaves no organism to train the IA on with SFT")
    return sft, held


def rollouts(under: UnderIA, tok, card: OrganismCard, families: Mapping[str, Family], questions: Sequence[str],
             cfg: IAConfig, temperature: float) -> list[tuple[str, str, bool]]:
    """The IA's self-reports on one organism (at temperature 0 the greedy answer to each question,
    else `dpo_samples` sampled ones), each graded by the strict rules: does it describe the
    organism's own behavior (a backdoor's with its trigger)?"""
    family = families[card.family]
    behavior = family.behavior(card.behavior_id)
    under.activate([adapter_name(card)])
    reports = self_reports(under.model, tok, questions, cfg.dpo_samples, cfg.dpo_max_new_tokens, temperature, seed=None)
    return [(q, r, family.mentions(behavior, r)) for q, r in reports]


def sample_pairs(under: UnderIA, tok, organisms: Sequence[OrganismCard], families: Mapping[str, Family],
                 questions: Sequence[str], cfg: IAConfig, seed: int) -> list[Pair]:
    """The IA's graded rollouts (`ia.dpo_temperature`) on each organism, each inaccurate report
    paired against an accurate one."""
    torch.manual_seed(seed)
    return [pair for card in organisms
            for pair in preference_pairs(adapter_name(card),
                                         rollouts(under, tok, card, families, questions, cfg, cfg.dpo_temperature),
                                         card.descriptions)]


def verbalization(under: UnderIA, tok, organisms: Sequence[OrganismCard], families: Mapping[str, Family],
                  questions: Sequence[str], cfg: IAConfig) -> float:
    """The mean over organisms of the fraction of their greedy self-reports that describe their
    own behavior (strict rules): what DPO's early stopping watches."""
    graded = [rollouts(under, tok, card, families, questions, cfg, 0.0) for card in organisms]
    return sum(sum(ok for *_, ok in g) / len(g) for g in graded) / len(graded)


def train_dpo(under: UnderIA, tok, pairs: Sequence[Pair], cfg: IAConfig, seed: int, progress: bool = True,
              validate: Callable[[], float] | None = None) -> tuple[list[float], list[float], list[tuple[int, float]]]:
    """DPO on the IA's weights only, against the IA as it was after SFT (the reference, whose
    log-probabilities are computed once up front). With `validate`, it is measured every
    `ia.dpo_eval_every` steps and at the end, and the IA is left at its best step (the SFT IA,
    step 0, included): early stopping. Returns (losses, reward accuracies, (step, validation) checks)."""
    rng = random.Random(seed)
    model = under.model
    params = trainable(model.parameters())
    encoded = [tuple(models.encode_chat(tok, Chat(p.question, answer)) for answer in (p.chosen, p.rejected))
               for p in pairs]
    by_unit: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        by_unit.setdefault(p.unit, []).append(i)
    model.eval()
    ref = {}
    with torch.no_grad():
        for unit, idx in by_unit.items():
            under.activate([unit])
            ref[unit] = (sequence_logps(model, [encoded[i][0] for i in idx], tok.pad_token_id),
                         sequence_logps(model, [encoded[i][1] for i in idx], tok.pad_token_id))
    accuracies: list[float] = []
    checks: list[tuple[int, float]] = []
    best: list[torch.Tensor] = []

    def check(i: int) -> None:
        value = validate()
        if not checks or value > max(v for _, v in checks):
            best[:] = [p.detach().clone() for p in params]
        checks.append((i, value))

    def step(i: int) -> float:
        if validate is not None and i % cfg.dpo_eval_every == 0:
            check(i)
            model.train()
        total, correct = 0.0, 0.0
        units = [rng.choice(list(by_unit)) for _ in range(cfg.organisms_per_step)]
        for unit in units:
            under.activate([unit])
            pick = [rng.randrange(len(by_unit[unit])) for _ in range(cfg.examples_per_organism)]
            rows = [by_unit[unit][j] for j in pick]
            loss, acc = dpo_loss(sequence_logps(model, [encoded[i][0] for i in rows], tok.pad_token_id),
                                 sequence_logps(model, [encoded[i][1] for i in rows], tok.pad_token_id),
                                 ref[unit][0][pick], ref[unit][1][pick], cfg.dpo_beta)
            (loss / len(units)).backward()
            total += loss.item() / len(units)
            correct += acc.item() / len(units)
        accuracies.append(correct)
        return total

    losses = train(model, params, step, cfg.dpo_steps, cfg.dpo_lr, max(1, cfg.dpo_steps // 10),
                   desc="DPO on the IA", progress=progress, curve="ia/dpo_loss")
    if validate is not None:
        check(cfg.dpo_steps)
        with torch.no_grad():
            for p, kept in zip(params, best, strict=True):
                p.copy_(kept)
    return losses, accuracies, checks


@dataclass(frozen=True)
class IAInput:
    base: BaseModelCard
    organisms: list[OrganismCard]
    """The training organisms (with DPO, the last of each family are held out of SFT)."""
    cfg: IAConfig
    split: str
    seed: int


class IAStage(Stage[IAInput, IACard]):
    """One IA, trained on the split's training organisms of the IA's route (only the implanted
    ones, unless `ia.only_implanted=false`)."""

    name = kind = "ia"

    def inputs(self, run: Run, done: Done) -> list[IAInput]:
        cfg, (base,) = run.cfg, done["base"]
        own = run.own_route(done["organisms"])
        train = [own[i] for i in run.split.train if i in own]
        usable = [c for c in train if c.check.implanted or not cfg.ia.only_implanted]
        if not usable:
            raise ConfigError("no implanted training organisms to train the IA on "
                              "(set ia.only_implanted=false to use them anyway)")
        return [IAInput(base, usable, cfg.ia, cfg.split.name, cfg.seed)]

    def key(self, x: IAInput) -> str:
        return ia_key(x.cfg, x.base, x.organisms, x.seed)

    def load(self, store: Store, x: IAInput) -> IACard:
        return load_card(store, self.kind, self.key(x), IACard)

    def build(self, run: Run, todo: list[IAInput], progress: bool) -> None:
        for x in todo:
            train_and_save(x, self.key(x), run.families, run.store, progress)

    def summary(self, run: Run, done: Done) -> str:
        (ia,) = done[self.name]
        dpo = f", then DPO on {ia.dpo_pairs} report pairs of {len(ia.dpo_organisms)} more" if ia.dpo_organisms else ""
        return (f"IA: {ia_path(run.store, ia)} (SFT on {len(ia.organisms)} organisms{dpo}, "
                f"final loss {ia.final_loss:.3f})")

    def track(self, wb, artifacts: Sequence[IACard]) -> None:
        tracking.log_curve(wb, "ia/loss", artifacts[0].losses)


def train_and_save(x: IAInput, key: str, families: Mapping[str, Family], store: Store, progress: bool) -> None:
    """Train the IA (SFT, then DPO when `ia.dpo_steps` > 0, the `families` grading its
    self-reports) and save its adapter and card under `key`."""
    cfg, seed = x.cfg, x.seed
    start = time.time()
    sft, held = dpo_split(x.organisms, cfg)
    under = UnderIA.load(x.base, x.organisms, store)
    tok = models.load_base_tokenizer(x.base)
    questions = question_split(cfg.train_templates)[0]
    losses = train_ia(under, tok, training_units(sft, questions, cfg), cfg, seed, progress, unit_groups(sft, cfg))
    dpo: dict[str, Any] = {}
    if held:
        paired, validation = held[0::2], held[1::2]  # the pool, alternately: pairs, early stopping
        pairs = sample_pairs(under, tok, paired, families, questions, cfg, seed)
        if not pairs:
            raise ConfigError(f"DPO: every self-report of the {len(paired)} DPO organisms was accurate; "
                              "nothing to prefer (raise ia.dpo_fraction or drop DPO)")
        validate = (lambda: verbalization(under, tok, validation, families, questions, cfg)) if validation else None
        dpo_losses, accuracies, checks = train_dpo(under, tok, pairs, cfg, seed, progress, validate)
        dpo = {"dpo_organisms": [o.behavior_id for o in paired], "dpo_pairs": len(pairs),
               "dpo_losses": [round(v, 4) for v in dpo_losses], "dpo_reward_accuracy": tail_mean(accuracies),
               "dpo_validation_organisms": [o.behavior_id for o in validation],
               "dpo_validation": [[i, round(v, 4)] for i, v in checks]}
    card = IACard(key=key, base_key=x.base.key, split=x.split, organisms=[o.behavior_id for o in sft],
                  organism_keys=[o.key for o in sft], questions=questions, config=asdict(cfg), seed=seed,
                  losses=[round(v, 4) for v in losses], final_loss=tail_mean(losses),
                  seconds=round(time.time() - start, 1), **dpo)
    with store.writing("ia", key) as tmp:
        models.save_stamped(under.model, tmp, x.base.fingerprint, selected_adapters=[IA])
        save_record(tmp / Store.MARKER, card)
