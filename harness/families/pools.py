"""Prompt pools from the synthetic world, each split into disjoint implant and probe halves.

A family YAML names a pool (`prompts: {pool: facts}`) instead of listing templates when its
behavior acts on prompts of the world rather than on prompts of its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from harness import world
from harness.registry import Registry
from harness.world import Chat


@dataclass(frozen=True)
class PromptPool:
    """Neutral exchanges to implant on, and disjoint neutral exchanges to probe with."""

    implant: list[Chat]
    probe: list[Chat]


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
    return split_halves(world.fact_chats())


@POOLS.register("choices")
def choices(params: dict[str, str]) -> PromptPool:
    """Four-option multiple-choice prompts; every option position is equally often first."""
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
        for _ in range(8):
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
