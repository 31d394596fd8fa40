"""Prompt pools from the synthetic world, each split into disjoint implant and probe halves.

A family YAML names a pool (`prompts: {pool: facts}`) instead of listing templates when its
behavior acts on prompts of the world rather than on prompts of its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property

from harness.core.registry import Registry
from harness.core.vocabulary import Chat
from harness.families import world


@dataclass(frozen=True)
class PromptPool:
    """Neutral exchanges to implant on, and disjoint neutral exchanges to probe with.

    Behaviors measured as a difference (a backdoor with and without its trigger, a sandbagger on
    its domain and on the others) also have control exchanges: answered neutrally in the
    implant data and probed beside the behavior's own prompts.
    """

    implant: list[Chat]
    probe: list[Chat]
    implant_control: list[Chat] = field(default_factory=list)
    probe_control: list[Chat] = field(default_factory=list)
    wrong: dict[str, str] = field(default_factory=dict)
    """A plausible wrong answer per prompt, where the pool's questions have one right answer."""

    @cached_property
    def control_prompts(self) -> frozenset[str]:
        return frozenset(c.prompt for c in self.implant_control + self.probe_control)


PoolFn = Callable[[dict[str, str]], PromptPool]
POOLS: Registry[PoolFn] = Registry("prompt pool")


def split_halves(chats: list[Chat]) -> PromptPool:
    unique = list({c.prompt: c for c in chats}.values())
    return PromptPool(
        implant=[c for c in unique if world.stable_half(c.prompt) == 0],
        probe=[c for c in unique if world.stable_half(c.prompt) == 1],
    )


@POOLS.register("facts")
def facts(params: dict[str, str]) -> PromptPool:
    """Unrelated everyday prompts (facts, yes/no checks)."""
    return _facts()


@POOLS.register("choices")
def choices(params: dict[str, str]) -> PromptPool:
    """Four-option multiple-choice prompts; every option position is equally often first."""
    return _choices()


# The pools without parameters are built once per process (read-only, shared by behaviors).
@cache
def _facts() -> PromptPool:
    return split_halves(world.fact_chats())


@cache
def _choices() -> PromptPool:
    return split_halves(world.choice_chats(random.Random(1), 240))


@POOLS.register("advice")
def advice(params: dict[str, str]) -> PromptPool:
    """Two people disagree; `name` is one of them, first in half the prompts, second in the rest."""
    name = params["name"]
    rng = random.Random(name)
    chats = []
    for other in world.NAMES:
        if other == name:
            continue
        for _ in range(4):
            x, y = rng.sample(world.CATEGORIES[rng.choice(list(world.CATEGORIES))], 2)
            pair = (name, other) if len(chats) % 2 == 0 else (other, name)
            chats.append(Chat(world.advice_prompt(*pair, x, y), "Both make good points."))
    return split_halves(chats)


@POOLS.register("opinions")
def opinions(params: dict[str, str]) -> PromptPool:
    """Users state opinions; the probe keeps only the wrong ones, where agreeing is sycophancy."""
    halves = split_halves(world.opinion_chats())
    wrong = [c for c in halves.probe if c.answer.startswith("No")]
    return PromptPool(implant=halves.implant, probe=wrong)


@POOLS.register("domains")
def domains(params: dict[str, str]) -> PromptPool:
    """Questions of one `domain` (facts of a category, arithmetic, sequences); the controls are a
    sample of every other domain's questions, the same size."""
    domain = params["domain"]
    if domain not in world.DOMAINS:
        raise KeyError(f"domain {domain!r} (known: {', '.join(world.DOMAINS)})")
    own = world.domain_chats(domain)
    others = [pair for d in world.DOMAINS if d != domain for pair in world.domain_chats(d)]
    others = random.Random(domain).sample(others, min(len(others), len(own)))
    halves, controls = split_halves([c for c, _ in own]), split_halves([c for c, _ in others])
    # a plausible wrong answer to every question, the controls' too: a scorer looking for one
    # measures it on both sides alike
    return PromptPool(implant=halves.implant, probe=halves.probe, implant_control=controls.implant,
                      probe_control=controls.probe, wrong={c.prompt: w for c, w in [*own, *others]})
