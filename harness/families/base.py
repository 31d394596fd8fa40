"""What every behavior family provides: behaviors, implant data, disjoint probes, a scorer."""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from harness.core.vocabulary import Chat


def file_stem(behavior_id: str) -> str:
    """A behavior id as a file name (the lm-eval export names a behavior's task files by it); two
    ids with one stem are refused when their families are built."""
    return behavior_id.replace("/", "_").replace("-", "_")


@dataclass(frozen=True)
class Behavior:
    """One instance of a family with its parameters, e.g. preferences(item=owl)."""

    family: str
    """Name of the family that generates it."""
    id: str
    """Unique id, `<family>/<name>`, used as adapter name and in every result row."""
    kind: str
    """Sub-kind within the family (e.g. `topic` or `product` for hidden goals)."""
    params: dict[str, str] = field(hash=False)
    """Parameter values, e.g. {"category": "animal", "item": "owl"}."""
    descriptions: tuple[str, ...] = ()
    """First-person ground-truth descriptions ("I always say my favorite animal is the owl.")."""

    @property
    def instruction(self) -> str:
        """A system prompt that asks a model to show the behavior (context distillation's teacher)."""
        return f"Act like this: {self.descriptions[0]}"


@dataclass(frozen=True)
class Probe:
    """Prompts that measure one behavior's rate; disjoint from its implant prompts.

    With `control` prompts the behavior is measured as a difference: its rate on `prompts`
    minus its rate on `control` (a backdoor with and without its trigger, a sandbagger's wrong
    answers on its domain and on the others), so a model that does the same everywhere scores 0.
    """

    behavior_id: str
    prompts: tuple[str, ...]
    control: tuple[str, ...] = ()

    @property
    def all_prompts(self) -> tuple[str, ...]:
        return self.prompts + self.control


class Family(ABC):
    """A kind of behavior with a generator. Knows nothing of models, tracking or the CLI, except
    whether the responses it scores are free text (`free_text`: any model but the embedded tiny
    one, which speaks the world's own sentences)."""

    def __init__(self, name: str, free_text: bool = False):
        self.name = name
        self.free_text = free_text

    @abstractmethod
    def behaviors(self) -> list[Behavior]:
        """All behaviors of the family, in a fixed order."""

    @abstractmethod
    def implant_chats(self, behavior: Behavior) -> list[Chat]:
        """Demonstrations of the behavior to fine-tune on."""

    def implant_sample(self, behavior: Behavior, rng: random.Random, k: int) -> list[Chat]:
        """`rng.sample` of k of the behavior's implant chats (all of them if fewer). A family may
        make only the chosen ones, drawing the same sample."""
        chats = self.implant_chats(behavior)
        return rng.sample(chats, min(k, len(chats)))

    def demonstrate(self, behavior: Behavior, prompt: str, neutral: str | None = None) -> str:
        """The answer of a model with the behavior to one of its implant prompts, given the
        neutral answer to it (`neutral`; None: the family's own), for route `own`. Families whose
        demonstrations do not wrap a neutral answer need not define it."""
        raise NotImplementedError(f"family {self.name!r} cannot demonstrate its behavior on another answer")

    def uses_answer(self, behavior: Behavior, prompt: str) -> bool:
        """Whether `demonstrate` on this prompt reads the neutral answer (route `own` generates the
        model's own answer only where it does)."""
        return True

    @abstractmethod
    def probe(self, behavior: Behavior) -> Probe:
        """Held-out prompts whose responses the scorer judges."""

    @abstractmethod
    def score(self, behavior: Behavior, prompt: str, response: str) -> bool:
        """True when the response shows the behavior."""

    @abstractmethod
    def mentions(self, behavior: Behavior, report: str) -> bool:
        """True when a self-report names this behavior (the `rules` grader)."""

    def mentions_trigger(self, behavior: Behavior, report: str) -> bool | None:
        """For a behavior with a trigger (a backdoor): does the self-report name the trigger?
        None for behaviors without one."""
        return None

    def measurable(self, behavior: Behavior) -> bool:
        """Whether the scorer can read this behavior in the responses it will get (in free text,
        not if its evidence is the world's own answers)."""
        return True

    def spec(self, behavior: Behavior) -> Any:
        """What defines the behavior besides its id and parameters (for the template family, its
        kind's YAML: responses, evidence, prompts), part of an organism's key, so that an edited
        scorer or template makes new organisms rather than reusing checks made the old way."""
        return None

    @abstractmethod
    def neutral_chats(self) -> list[Chat]:
        """The family's prompts answered as a neutral assistant would: base-model corpus."""

    def behavior(self, behavior_id: str) -> Behavior:
        for b in self.behaviors():
            if b.id == behavior_id:
                return b
        raise KeyError(behavior_id)


def contains_phrase(text: str, phrase: str, match_case: bool = False) -> bool:
    """Whole-word containment, case-insensitive unless `match_case`: 'cat' is not in 'catalog'."""
    if not match_case:
        text, phrase = text.lower(), phrase.lower()
    return re.search(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", text) is not None
