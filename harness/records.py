"""Typed records that stages write and read back: cards of artifacts and probe results."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from harness.store import write_json

SCHEMA_VERSION = 1
R = TypeVar("R")


@dataclass
class BehaviorRate:
    """A behavior's rate on one model: the fraction of probe prompts whose response shows it."""

    rate: float
    """Fraction of probe responses the scorer judged to show the behavior."""
    n: int
    """Number of probe prompts."""
    samples: list[dict[str, str]] = field(default_factory=list)
    """A few (prompt, response) pairs, for a reader to see what the model did."""


@dataclass
class ImplantCheck:
    """Verification of an implant: the organism's probe rate against the base model's."""

    rate: float
    """Behavior rate of the organism on its probe prompts."""
    base_rate: float
    """Behavior rate of the base model on the same prompts (the negative control)."""
    strength: float
    """rate - base_rate."""
    threshold: float
    """Minimum strength for `implanted`."""
    implanted: bool
    """strength >= threshold: only implanted organisms should be used as labelled data."""
    n_prompts: int
    """Number of probe prompts behind each rate."""
    samples: list[dict[str, str]] = field(default_factory=list)
    """A few probe prompts with the organism's responses."""


@dataclass
class BaseModelCard:
    """The base model M: where it is and how it was made."""

    key: str
    """Content key of the artifact (a hash of its config)."""
    kind: str
    """`tiny` (built and pretrained by the harness) or `hf` (loaded by name or path)."""
    name_or_path: str
    """What `from_pretrained` loads."""
    config: dict[str, Any]
    """The model config that made it."""
    n_params: int = 0
    """Number of parameters."""
    pretrain_loss: float | None = None
    """Mean loss over the last pretraining steps (tiny model only)."""
    corpus_size: int = 0
    """Number of chats in the pretraining corpus (tiny model only)."""
    answer_accuracy: float | None = None
    """Fraction of 128 sampled corpus prompts (with one right answer) answered exactly, greedy."""
    seconds: float = 0.0
    """Wall time to build it."""
    schema_version: int = SCHEMA_VERSION


@dataclass
class OrganismCard:
    """A model organism: base model + a LoRA that implants one behavior, and its verification."""

    key: str
    """Content key of the artifact: hash of behavior, implant route, training config, seed, base."""
    behavior_id: str
    """The implanted behavior, `<family>/<name>`."""
    family: str
    """Family of the behavior."""
    kind: str
    """Kind within the family."""
    params: dict[str, str]
    """Behavior parameters."""
    descriptions: list[str]
    """Ground-truth first-person descriptions of the behavior."""
    route: str
    """Implant route (`lora`)."""
    base_key: str
    """Key of the base model the adapter applies to."""
    base_name_or_path: str
    """What the base model loads from."""
    training: dict[str, Any]
    """The organism config it was trained with."""
    seed: int
    """Training seed."""
    check: ImplantCheck
    """Probe result: behavior strength and whether the implant took."""
    final_loss: float
    """Mean training loss over the last steps."""
    seconds: float
    """Wall time to train and verify."""
    schema_version: int = SCHEMA_VERSION


def save_record(path: Path, record: Any) -> None:
    write_json(path, asdict(record))


def from_dict(cls: type[R], data: dict[str, Any]) -> R:
    """Rebuild a record (and its nested records) from its JSON form."""
    hints = get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            value, hint = data[f.name], hints[f.name]
            kwargs[f.name] = from_dict(hint, value) if is_dataclass(hint) and isinstance(value, dict) else value
    return cls(**kwargs)


def load_record(path: Path, cls: type[R]) -> R:
    return from_dict(cls, json.loads(Path(path).read_text()))
