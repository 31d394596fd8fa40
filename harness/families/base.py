"""What every behavior family provides: behaviors, implant data, disjoint probes, a scorer."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from harness.world import Chat


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


@dataclass(frozen=True)
class Probe:
    """Prompts that measure one behavior's rate; disjoint from its implant prompts."""

    behavior_id: str
    prompts: tuple[str, ...]


class Family(ABC):
    """A kind of behavior with a generator. Knows nothing of models, tracking or the CLI."""

    def __init__(self, name: str):
        self.name = name

    @abstractmethod
    def behaviors(self) -> list[Behavior]:
        """All behaviors of the family, in a fixed order."""

    @abstractmethod
    def implant_chats(self, behavior: Behavior) -> list[Chat]:
        """Demonstrations of the behavior to fine-tune on."""

    @abstractmethod
    def probe(self, behavior: Behavior) -> Probe:
        """Held-out prompts whose responses the scorer judges."""

    @abstractmethod
    def score(self, behavior: Behavior, prompt: str, response: str) -> bool:
        """True when the response shows the behavior."""

    @abstractmethod
    def mentions(self, behavior: Behavior, report: str) -> bool:
        """True when a self-report names this behavior (the `rules` grader)."""

    @abstractmethod
    def neutral_chats(self) -> list[Chat]:
        """The family's prompts answered as a neutral assistant would: base-model corpus."""

    def behavior(self, behavior_id: str) -> Behavior:
        for b in self.behaviors():
            if b.id == behavior_id:
                return b
        raise KeyError(behavior_id)


def contains_phrase(text: str, phrase: str) -> bool:
    """Whole-word, case-insensitive containment: 'cat' is not in 'catalog'."""
    pattern = r"(?<!\w)" + re.escape(phrase.lower()) + r"(?!\w)"
    return re.search(pattern, text.lower()) is not None
