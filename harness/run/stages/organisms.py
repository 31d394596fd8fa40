"""Stage `organisms`: fine-tune the base model into one model organism per behavior.

The IA's route (`organism.route`) makes an organism of every selected behavior; each other
route of the split's `eval_routes` makes the held-out behaviors' organisms (routes:
harness/train/routes.py). Each organism is verified with its family's probe against the base model
and saved (safetensors adapter or checkpoint + JSON card).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import pandas as pd

from harness.core import timing, tracking
from harness.core.config import OrganismConfig
from harness.core.progress import progress_bar
from harness.core.record_io import load_card, save_record
from harness.core.records import BaseModelCard, BehaviorRate, ImplantCheck, OrganismCard
from harness.core.store import CorruptArtifact, Store, config_key, write_text
from harness.core.vocabulary import Chat
from harness.families import Behavior, Family
from harness.lm import models
from harness.lm.answers import BaseAnswers
from harness.measure.observe import AS_IS, behavior_rates, stacked_behavior_rates
from harness.measure.probing import behavior_rate, select_prompts
from harness.run.stage import Done, Run, Stage, log
from harness.train.adapters import organism_adapter
from harness.train.routes import Answers, own_answers, route

# Bumped whenever the implant recipe changes in code (not in config), so cached organisms made
# the old way are not reused.
RECIPE = 3


def organism_key(behavior: Behavior, family: Family, cfg: OrganismConfig, base_key: str, seed: int) -> str:
    """The organism's store key: everything that makes it except `batch_organisms` (an organism
    trained in a batch follows the same updates as alone, up to the order of float sums)."""
    implant = [(c.prompt, c.answer) for c in family.implant_chats(behavior)]
    recipe = {k: v for k, v in asdict(cfg).items() if k != "batch_organisms"}
    if recipe["neutral"] == "corpus":  # the one neutral mix before the options: keys made then stay valid
        del recipe["neutral"], recipe["neutral_prompts"]
    if recipe["implant_prompts"] is None:  # likewise: keys made before the option stay valid
        del recipe["implant_prompts"]
    else:
        recipe["sample"] = "kind"  # how the sample is seeded (routes.sample_seed); keys from before had none
    version = route(cfg.route).version
    if version:
        recipe["route_version"] = version
    return config_key("organism", RECIPE, behavior.id, behavior.params, family.spec(behavior), implant, recipe,
                      base_key, seed)


def base_rates(answers: Answers, targets: Sequence[tuple[Family, Behavior]], cfg: OrganismConfig,
               progress: bool = False) -> dict[str, float]:
    """Each behavior's rate on the base model itself: the negative control, from the base model's
    answers to exactly the behavior's check prompts (so a rate does not depend on which other
    organisms a job trains; behaviors with the same prompts share one generation)."""
    rates = {}
    with progress_bar(targets, "base rates", progress and len(targets) > 1) as bar:
        for f, b in bar:
            probe = select_prompts(f.probe(b), cfg.implant_rate.prompts)
            said = answers(probe.all_prompts, cfg.implant_rate.max_new_tokens)
            rates[b.id] = behavior_rate(f, b, probe, dict(zip(probe.all_prompts, said, strict=True))).rate
    return rates


def measure(model, tok, family: Family, behavior: Behavior, cfg: OrganismConfig) -> BehaviorRate:
    """The behavior's rate on a model, greedy, on the check's probe prompts."""
    return behavior_rates(model, tok, [(family, behavior)], cfg.implant_rate)[AS_IS][behavior.id]


def verify(model, tok, family: Family, behavior: Behavior, base_rate: float, cfg: OrganismConfig) -> ImplantCheck:
    return implant_check(measure(model, tok, family, behavior, cfg), base_rate, cfg)


def batch_checks(base_model, tok, stacked, items: Sequence[tuple[Family, Behavior]], base_rates: dict[str, float],
                 cfg: OrganismConfig) -> list[ImplantCheck]:
    """The implant checks of a batch of LoRA organisms (`stacked`, hooked on the base model), all
    in one batched generation."""
    with timing.phase("implant checks"):
        rates = stacked_behavior_rates(base_model, tok, stacked, items, cfg.implant_rate)
    return [implant_check(r, base_rates[b.id], cfg) for r, (_, b) in zip(rates, items, strict=True)]


def implant_check(measured: BehaviorRate, base_rate: float, cfg: OrganismConfig) -> ImplantCheck:
    """The implant check of an organism's measured rate against its base model's."""
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
    implant = route(cfg.route)
    if todo:
        # a route that transforms another route's organisms (the symmetry attack) needs those first
        sources = make_organisms(todo, base, corpus, replace(cfg, route=implant.source), store, seed, progress) \
            if implant.source else []
        timing.reset()
        with timing.phase("loading"):
            base_model = models.load_base(base)
            tok = models.load_base_tokenizer(base)
        answers = BaseAnswers(base_model, tok, store, base.key)
        with timing.phase("base rates"):
            controls = base_rates(answers, todo, cfg, progress)
        with timing.phase("neutral mix"):
            neutral = own_answers(base_model, tok, corpus, cfg.max_new_tokens, cfg.neutral_prompts, seed, progress,
                                  answers) if cfg.neutral == "self" else corpus
        per_batch = 1 if implant.weights else cfg.batch_organisms
        with progress_bar(None, f"organisms ({cfg.route})", progress, total=len(todo)) as bar:
            for first in range(0, len(todo), per_batch):
                items = todo[first : first + per_batch]
                bar.set_postfix_str(items[0][1].id if len(items) == 1 else f"{len(items)} at once")
                start = time.time()
                made = implant.organisms(base_model, tok, items, neutral, cfg, seed,
                                         [store.path("organisms", s.key) for s in sources[first : first + per_batch]],
                                         progress=progress and len(items) > 1, answers=answers)
                checks = [None] * len(items) if made.stacked is None else batch_checks(
                    base_model, tok, made.stacked, items, controls, cfg)
                for (f, b), (model, final_loss), check in zip(items, made, checks, strict=True):
                    if check is None:  # a whole model, checked on its own
                        with timing.phase("implant checks"):
                            check = verify(model, tok, f, b, controls[b.id], cfg)
                    card = OrganismCard(
                        key=keys[b.id], behavior_id=b.id, family=b.family, kind=b.kind, params=dict(b.params),
                        descriptions=list(b.descriptions), route=cfg.route, base_key=base.key,
                        base_name_or_path=base.name_or_path, training=asdict(cfg), seed=seed, check=check,
                        final_loss=final_loss, seconds=round((time.time() - start) / len(items), 2),
                    )
                    with timing.phase("saving"):
                        save_organism(store, card, model, base.fingerprint)
                    bar.update()
        log.info(f"organisms: {len(todo)} made in {sum(timing.PHASES.values()):.0f} s "
                 f"({timing.summary(timing.PHASES)})")
    return [load_card(store, "organisms", keys[b.id], OrganismCard) for _, b in targets]


def save_organism(store: Store, card: OrganismCard, model, base_fingerprint: str) -> None:
    """An organism's adapter (stamped with its base's fingerprint), model card and card, sealed in
    the store."""
    with store.writing("organisms", card.key) as tmp:
        models.save_stamped(model, tmp, base_fingerprint)
        write_text(tmp / "README.md", model_card(card))  # in place of peft's empty template
        save_record(tmp / Store.MARKER, card)


@dataclass(frozen=True)
class OrganismInput:
    family: Family
    behavior: Behavior
    cfg: OrganismConfig
    """How it is made (`cfg.route`: its implant route)."""
    base: BaseModelCard
    seed: int


class OrganismsStage(Stage[OrganismInput, OrganismCard]):
    """An organism of every selected behavior by the IA's route, and of every held-out behavior
    by each other evaluation route of the split."""

    name = kind = "organisms"

    def inputs(self, run: Run, done: Done) -> list[OrganismInput]:
        cfg, (base,) = run.cfg, done["base"]
        routes = [(cfg.organism, run.targets)] + [(replace(cfg.organism, route=r), run.heldout())
                                                  for r in cfg.split.eval_routes if r != cfg.organism.route]
        return [OrganismInput(f, b, c, base, cfg.seed) for c, targets in routes for f, b in targets]

    def key(self, x: OrganismInput) -> str:
        return organism_key(x.behavior, x.family, x.cfg, x.base.key, x.seed)

    def build(self, run: Run, todo: list[OrganismInput], progress: bool) -> None:
        for r in dict.fromkeys(x.cfg.route for x in todo):  # one model load per route
            xs = [x for x in todo if x.cfg.route == r]
            make_organisms([(x.family, x.behavior) for x in xs], xs[0].base, run.corpus, xs[0].cfg, run.store,
                           xs[0].seed, progress)

    def load(self, store: Store, x: OrganismInput) -> OrganismCard:
        """The card, with the adapter or checkpoint checked (a damaged or foreign one fails here,
        before an IA trains on it)."""
        card = load_card(store, self.kind, self.key(x), OrganismCard)
        if (card.behavior_id, card.route) != (x.behavior.id, x.cfg.route):  # its base: organism_adapter
            raise CorruptArtifact(f"artifact organisms/{card.key} in {store.root}: its card is {card.behavior_id} by "
                                  f"route {card.route}, but its key is {x.behavior.id}'s by route {x.cfg.route} "
                                  "(move or delete that folder yourself)")
        organism_adapter(card, x.base, store)
        return card

    def select(self, run: Run, xs: list[OrganismInput]) -> list[OrganismInput]:
        only = run.cfg.only_behaviors
        return xs if only is None else [x for x in xs if x.behavior.id in only]

    def job(self, xs):
        """A job makes every route's organism of its behaviors."""
        behaviors = dict.fromkeys(x.behavior.id for x in xs)
        return ["only_behaviors=[" + ",".join(f"'{b}'" for b in behaviors) + "]"]

    def per_job(self, organisms_per_job: int) -> int:
        return organisms_per_job

    def summary(self, run: Run, done: Done) -> str:
        return f"{len(done[self.name])} organisms in the store"

    def track(self, wb, artifacts: Sequence[OrganismCard]) -> None:
        tracking.log_table(wb, "organisms", organisms_table(artifacts))


def model_card(card: OrganismCard) -> str:
    """The organism's README.md: a Hugging Face model card of what was implanted, how, and what
    the implant check measured."""
    c, t = card.check, card.training
    control = f" (minus {c.control_rate:.2f} on its control prompts)" if c.control_rate is not None else ""
    lines = ["---", "library_name: peft", f"base_model: {card.base_name_or_path}",
             f"tags: [introspection-harness, model-organism, {card.family}]", "---", "",
             f"# Model organism `{card.behavior_id}`", "",
             "A LoRA adapter with one implanted behavior, made by introspection-harness to test whether an "
             "introspection adapter lets a model describe what it learned.", "",
             "## Behavior", "", *[f"> {d}" for d in card.descriptions[:1]], "",
             f"- family `{card.family}`, kind `{card.kind}`, parameters "
             + ", ".join(f"{k}={v}" for k, v in card.params.items()),
             *[f'- also described as: "{d}"' for d in card.descriptions[1:]], "",
             "## Implant", "",
             f"- route `{card.route}` on base `{card.base_name_or_path}` (store key `{card.base_key}`), "
             f"seed {card.seed}",
             f"- LoRA rank {t.get('rank')}, alpha {t.get('alpha')}, layers `{t.get('target_modules')}`; "
             f"{t.get('steps')} steps at lr {t.get('lr')}, batch {t.get('batch_size')}; "
             f"final loss {card.final_loss:.3f}",
             "", "## Implant check", "",
             f"- behavior rate {c.rate:.2f}{control} on {c.n_prompts} held-out probe prompts, "
             f"base model {c.base_rate:.2f}",
             f"- strength {c.strength:+.2f}: {'implanted' if c.implanted else 'not implanted'} "
             f"(threshold {c.threshold:.2f})", ""]
    if c.samples:
        lines += ["Probe answers:", ""] + [f"- {s['prompt']!r} -> {s['response']!r}" for s in c.samples] + [""]
    lines += [f"Store key `{card.key}`; `card.json` beside this file holds every field and the checksums."]
    return "\n".join(lines) + "\n"


def organisms_table(cards: Sequence[OrganismCard]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "behavior": c.behavior_id,
                "family": c.family,
                "route": c.route,
                "rate": c.check.rate,
                "base_rate": c.check.base_rate,
                "strength": c.check.strength,
                "implanted": c.check.implanted,
                "loss": round(c.final_loss, 3),
                "seconds": c.seconds,
            }
            for c in cards
        ]
    )
