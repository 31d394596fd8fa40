"""Typed records that stages write and read back: cards of artifacts and probe results."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from harness.store import write_json, write_text

SCHEMA_VERSION = 1
R = TypeVar("R")


@dataclass
class BehaviorRate:
    """A behavior's rate on one model: the fraction of probe prompts whose response shows it."""

    rate: float
    """Fraction of probe responses the scorer judged to show the behavior (minus `control_rate`)."""
    n: int
    """Number of probe prompts."""
    samples: list[dict[str, str]] = field(default_factory=list)
    """A few (prompt, response) pairs, for a reader to see what the model did."""
    control_rate: float | None = None
    """For behaviors measured as a difference (backdoors, sandbagging): the fraction on the
    control prompts (no trigger, other domains), already subtracted from `rate`."""
    control_n: int = 0
    """Number of control prompts."""


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
    control_rate: float | None = None
    """For behaviors measured as a difference: the organism's rate on the control prompts
    (without the trigger, other domains), already subtracted from `rate`."""


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

    @property
    def trust_remote_code(self) -> bool:
        return bool(self.config.get("trust_remote_code", False))


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
    """Implant route: lora, full, distill, deny or symmetry (see harness/stages/organisms.py)."""
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


def write_jsonl(path: Path, rows: list[Any]) -> None:
    """One record per line (the per-sample results format)."""
    write_text(path, "".join(json.dumps(asdict(r)) + "\n" for r in rows))


def read_jsonl(path: Path, cls: type[R]) -> list[R]:
    return [from_dict(cls, json.loads(line)) for line in Path(path).read_text().splitlines() if line]


@dataclass
class IACard:
    """An introspection adapter and what it was trained on."""

    key: str
    """Content key: hash of the IA config, the training organisms, the base model, questions, seed."""
    base_key: str
    """Key of the base model."""
    split: str
    """Name of the split that chose its training organisms."""
    organisms: list[str]
    """Behavior ids of the training organisms."""
    organism_keys: list[str]
    """Artifact keys of the training organisms."""
    questions: list[str]
    """Introspection questions it was trained on (the others are held out for evaluation)."""
    config: dict[str, Any]
    """The IA config."""
    seed: int
    """Training seed."""
    losses: list[float]
    """Training loss per step."""
    final_loss: float
    """Mean loss over the last steps."""
    seconds: float
    """Wall time to train."""
    dpo_organisms: list[str] = field(default_factory=list)
    """Training-family organisms held out of SFT whose sampled self-reports DPO learned from."""
    dpo_pairs: int = 0
    """Number of (accurate, inaccurate) self-report pairs."""
    dpo_losses: list[float] = field(default_factory=list)
    """DPO loss per step."""
    dpo_reward_accuracy: float | None = None
    """Over the last DPO steps: fraction of pairs whose implicit reward prefers the accurate report."""
    schema_version: int = SCHEMA_VERSION


@dataclass
class BehaviorRow:
    """One behavior's measured rate on one probed model (an evaluation organism or the base)."""

    split: str
    """Split name."""
    model: str
    """`base`, or the behavior id implanted in the organism."""
    behavior_id: str
    """The behavior whose probe was run."""
    family: str
    """Family of the probed behavior."""
    rate: float
    """Fraction of probe prompts whose response shows the behavior."""
    base_rate: float
    """The base model's rate on the same prompts."""
    strength: float
    """rate - base_rate."""
    present: bool
    """strength >= the organism threshold: the behavior is measurably there."""
    own: bool
    """True when this is the organism's implanted behavior."""
    n: int
    """Number of probe prompts."""
    route: str = "lora"
    """Implant route of the probed organism; `base` for the base model."""


@dataclass
class ReportRow:
    """One sampled self-report and its grades."""

    split: str
    """Split name."""
    ia: str
    """Key of the introspection adapter evaluated."""
    condition: str
    """`ia` (with the adapter), `no_ia` (plain question), `prefill` (answer prefilled)."""
    model: str
    """`base`, or the behavior id implanted in the organism."""
    family: str
    """Family of the organism's behavior; `base` for the base model."""
    question: str
    """The held-out introspection question asked."""
    report: str
    """The sampled answer (with the prefill, if any)."""
    verbalized: bool
    """The grader says the report describes the implanted behavior (always false for the base)."""
    identified: str | None
    """The evaluation behavior the report matches best (top-1), or None when it matches none."""
    mentioned: list[str]
    """Every evaluation behavior the grader says the report names."""
    route: str = "lora"
    """Implant route of the organism; `base` for the base model."""
    trigger_named: bool | None = None
    """For an organism with a trigger (a backdoor): the report names the trigger."""
