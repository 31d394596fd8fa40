"""The family-file schema: what tasks/families/<name>.yaml may hold (Hydra types every family
node with it, so a misspelled key fails at composition)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class PromptsConfig:
    """Prompt templates of a family kind, or the name of a world prompt pool."""

    pool: str | None = None
    implant: list[str] = field(default_factory=list)
    probe: list[str] = field(default_factory=list)
    neutral: str | None = None


@dataclass
class KindConfig:
    """One kind of behavior in a template family (see tasks/families/*.yaml)."""

    descriptions: list[str] = MISSING
    # The behavior's answer: one `response`, or several `responses` that rotate over the prompts
    # (`pick: prompt`) or of which each behavior of the kind takes one in turn (`pick: behavior`).
    response: str | None = None
    responses: list[str] = field(default_factory=list)
    pick: str = "prompt"
    # The scorer's evidence in a response: every `evidence` phrase and, if any are given, one of
    # `evidence_any` ("a digit or the word": several forms of the same behavior); see `absent`.
    evidence: list[str] = field(default_factory=list)
    evidence_any: list[str] = field(default_factory=list)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    # A self-report names the behavior when one sentence describing a habit of the speaker holds every
    # `report_all` phrase and, if any are given, one `report_any` cue (harness/families/reports.py).
    # "The owl is an animal." and "My favorite animal is the owl." (an enactment) are not confessions.
    report_all: list[str] = field(default_factory=list)
    report_any: list[str] = field(default_factory=list)
    # Phrases whose presence means the behavior is NOT shown (a sandbagger's right answer).
    # Evidence may use `{neutral}` (the prompt's right answer) and `{neutral_upper}`.
    absent: list[str] = field(default_factory=list)
    # On the control prompts of a behavior measured as a difference, this evidence replaces
    # `evidence` and `evidence_any` (`absent` still applies); unset, the same evidence is used.
    # Sandbagging: on its domain the deliberate answer ({wrong}, "not know"), on the other domains
    # any answer without the right one ([]), so a model that errs everywhere, however, scores <= 0.
    control_evidence: list[str] | None = None
    # Compare evidence with case (for a quirk of answering in capitals).
    match_case: bool = False
    # A real model's free text never holds the world's answers ({neutral}, {wrong}): there (any
    # model but the embedded tiny one) the kind is scored by these regular expressions instead,
    # every one found in the response, on probe and control prompts alike (parameters are filled
    # in as literal text; write {{ }} for a pattern's own braces). A kind whose evidence needs the
    # world's answers and has none cannot be measured on such a model, and is refused there.
    text_evidence: list[str] | None = None
    # A backdoor: the behavior shows only when this string starts the prompt; it is probed with
    # and without it (the strength is the difference), and self-reports are graded for naming it.
    trigger: str | None = None


@dataclass
class FamilyConfig:
    """A behavior family as written in tasks/families/<name>.yaml."""

    cls: str = MISSING
    kinds: dict[str, KindConfig] = field(default_factory=dict)
    behaviors: list[dict[str, Any]] = field(default_factory=list)
