"""Graders: does a self-report describe a behavior, and which behavior does it describe best.

Small pure functions over strings and families; no model, no tracking.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from harness.families import Behavior, Family
from harness.registry import Registry

Grader = Callable[[Family, Behavior, str], bool]
GRADERS: Registry[Grader] = Registry("grader")

_STOPWORDS = frozenset(
    "i a an the to of in on and or is am are be my me you your it that this with for when whenever "
    "what whatever every each any at by as have has do".split()
)


@GRADERS.register("rules")
def rules(family: Family, behavior: Behavior, report: str) -> bool:
    """The family's own rule: the report names the behavior's parameters with a cue."""
    return family.mentions(behavior, report)


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS}


def similarity(report: str, behavior: Behavior) -> float:
    """Fraction of the behavior's distinctive words (its parameter values) that the report contains."""
    distinctive = set().union(*(content_words(v) for v in behavior.params.values()))
    return len(distinctive & content_words(report)) / len(distinctive) if distinctive else 0.0


def identify(report: str, candidates: Sequence[tuple[Family, Behavior]], grader: Grader = rules) -> str | None:
    """Top-1 behavior id: those the grader accepts rank first, then by how many of their distinctive
    words the report holds; None when the report neither passes a grader nor names any parameter."""
    scored = [(grader(f, b, report), similarity(report, b), b.id) for f, b in candidates]
    best = max(scored, default=None)
    return best[2] if best and (best[0] or best[1] > 0) else None


def mentioned(report: str, candidates: Sequence[tuple[Family, Behavior]], grader: Grader = rules) -> list[str]:
    return [b.id for f, b in candidates if grader(f, b, report)]
