"""Typed records that stages write and read back: cards of artifacts and probe results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

SCHEMA_VERSION = 2


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
    scored: list[dict[str, Any]] = field(default_factory=list)
    """Every response behind the rate: {prompt, control, response, shows} (not kept in cards)."""


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
    fingerprint: str = ""
    """Hash of its weights, architecture and tokenizer files (harness/lm/models.py `fingerprint`); every
    adapter made on it carries it in its safetensors metadata."""
    schema_version: int = SCHEMA_VERSION

    @property
    def trust_remote_code(self) -> bool:
        return bool(self.config.get("trust_remote_code", False))


@dataclass
class AnswersCard:
    """The base model's own greedy answers to a set of prompts (store kind `answers`), shared by
    every organism that asks them."""

    kind: ClassVar[str] = "answers"
    """Its store kind."""
    key: str
    """Content key: hash of the base model's key, the decoding settings and the prompts."""
    base_key: str
    """Key of the base model that answered."""
    max_new_tokens: int
    """Token budget of each answer."""
    first_sentence: bool
    """Whether generation stopped at the end of the first sentence."""
    prompts: list[str]
    """The prompts, sorted."""
    answers: list[str]
    """The answer to each prompt, in the same order."""


@dataclass
class SlotAnswersCard:
    """The answers of each slot of stacked adapters on one model to a set of prompts (store kind
    `slot_answers`), so a later probe of the same models (another IA's) reads what they said."""

    kind: ClassVar[str] = "slot_answers"
    """Its store kind."""
    key: str
    """Content key: hash of the model's key, every slot's adapters in order, the stack's ranks,
    the decoding settings and the prompts."""
    model_key: str
    """Key of the model the adapters are stacked on (a base model, or a weight-route organism)."""
    adapters: list[list[str]]
    """Each slot's adapters (store keys), in the order the slots were asked."""
    settings: dict[str, Any]
    """How the answers were generated (tokens, sampling, seed, batch, ranks, device, attention)."""
    prompts: list[str]
    """The prompts, in the order asked."""
    answers: list[list[str]]
    """Each slot's answers, one per prompt."""


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
    """Implant route: lora, full, distill, deny, symmetry or aligned (see harness/train/routes.py)."""
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
    """Training-family organisms held out of SFT whose self-reports DPO learned from."""
    dpo_pairs: int = 0
    """Number of (accurate, inaccurate) self-report pairs."""
    dpo_losses: list[float] = field(default_factory=list)
    """DPO loss per step."""
    dpo_reward_accuracy: float | None = None
    """Over the last DPO steps: fraction of pairs whose implicit reward prefers the accurate report."""
    dpo_validation_organisms: list[str] = field(default_factory=list)
    """Training-family organisms held out of SFT and of the pairs, whose verbalization DPO's early
    stopping watched."""
    dpo_validation: list[list[float]] = field(default_factory=list)
    """(step, verbalization of the validation organisms) at each check; the IA kept is the best
    step's (step 0: the SFT IA)."""
    schema_version: int = SCHEMA_VERSION


@dataclass
class ProbeSample:
    """One probe generation: a probed model's answer to one of a behavior's probe prompts, and
    whether the family's scorer saw the behavior in it (probe_samples.jsonl)."""

    split: str
    """Split name."""
    model: str
    """`base`, or the behavior id implanted in the organism."""
    route: str
    """Implant route of the probed organism; `base` for the base model."""
    behavior_id: str
    """The behavior whose probe prompt this is."""
    family: str
    """Family of the probed behavior."""
    prompt: str
    """The probe prompt (greedy decoding)."""
    control: bool
    """A control prompt (a backdoor's without its trigger, a sandbagger's other domains)."""
    response: str
    """The model's answer."""
    shows: bool
    """The family's scorer sees the behavior in the answer."""


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
    """`ia` (with the adapter), or a baseline: `no_ia` (plain question), `prefill` (answer
    prefilled), `parrot` (a training description of the same kind, parameters unknown),
    `shuffled` (the IA's reports on another organism of the family; derived in metrics)."""
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
    kind_named: bool | None = None
    """For an organism: the report names a behavior of its own kind, with any of the family's
    parameters (rules grader); None for the base model and the shuffled baseline."""
    description: str | None = None
    """The organism's behavior in the first person (its first description), what a report that
    verbalizes it describes; None for the base model."""


CONDITIONS = ("ia", "no_ia", "prefill", "parrot", "shuffled")
"""Every condition a metric is reported under: the IA, then the baselines (sampled without the IA,
with a prefilled confession, the parrot's constant report, reports shuffled across organisms)."""


@dataclass
class MetricRow:
    """One aggregate number, as the leaderboard and W&B see it (`{split}/{family}/{metric}`)."""

    split: str
    """Split name."""
    condition: str
    """`ia`, or a baseline (see ReportRow.condition)."""
    family: str
    """Family of the evaluation organisms, `all`, or `base` (the base model's false positives)."""
    metric: str
    """verbalization, specificity, identification, confession, hallucination, denial, trigger,
    false_positive_rate."""
    value: float
    """The estimate: the mean over `n` units."""
    low: float
    """Lower end of its 95% interval (NaN with fewer than two units)."""
    high: float
    """Upper end of its 95% interval."""
    n: int
    """Number of units behind it."""
    route: str = "lora"
    """Implant route of the evaluation organisms it is computed over."""
    unit: str = "organisms"
    """What `n` counts: organisms (a bootstrap over organisms), samples (the base model's false
    positives: one model), or seeds (a sweep's mean over whole experiments)."""


def headline_rows(rows: Sequence[MetricRow], route: str) -> tuple[dict[str, MetricRow], MetricRow | None]:
    """A run's headline figures on the held-out organisms of `route`: each condition's pooled
    verbalization, and the base model's false-positive rate under the IA (None without one)."""
    pooled = {r.condition: r for r in rows if (r.route, r.family, r.metric) == (route, "all", "verbalization")}
    fpr = next((r for r in rows if (r.route, r.condition, r.metric) == (route, "ia", "false_positive_rate")), None)
    return pooled, fpr


@dataclass
class ExcludedOrganism:
    """An evaluation organism left out of scoring because its implant did not take."""

    behavior_id: str
    """Its behavior."""
    route: str
    """Its implant route."""
    strength: float
    """Its measured behavior strength (below the organism threshold)."""


@dataclass
class RunResults:
    """A run's aggregate results (`metrics.json`); the leaderboard, report and W&B reader use it."""

    split: str
    """Split name."""
    ia: str
    """Key of the introspection adapter."""
    metrics: list[MetricRow]
    """Every metric per route, condition and family."""
    base: str = ""
    """Key of the base model."""
    group: str | None = None
    """W&B group (a sweep's runs share it)."""
    ia_config: dict[str, Any] = field(default_factory=dict)
    """The IA config."""
    train_organisms: list[str] = field(default_factory=list)
    """Behavior ids that trained the IA."""
    eval_organisms: list[str] = field(default_factory=list)
    """Behavior ids of the evaluation organisms scored."""
    excluded: list[ExcludedOrganism] = field(default_factory=list)
    """Evaluation organisms not scored: their implant did not take."""
    divergences: list[dict[str, Any]] = field(default_factory=list)
    """(organism, behavior) pairs where the report under the IA and the probe disagree."""
    distinct_reports: list[dict[str, Any]] = field(default_factory=list)
    """Per route, sampled condition and organism: how many distinct reports (case and spaces
    aside) it gave (`distinct`) out of the questions asked (`asked`)."""
    grader: dict[str, Any] = field(default_factory=dict)
    """What graded the self-reports: `name` (rules, embedding, judge), `version` (a hash of the
    grading code, the graded behaviors' family rules and the grader's settings,
    measure.grading.grader_record), the judge's model; empty in results written before it."""
    decoding: dict[str, Any] = field(default_factory=dict)
    """How the self-reports were decoded: temperature, samples, max_new_tokens."""
    headline_power: dict[str, Any] = field(default_factory=dict)
    """The IA against its best baseline on the held-out organisms of the IA's route, paired by
    organism (`baseline`, and measure.compare.PairedDifference's fields: the difference, its
    spread, the minimum detectable effect, the organisms it would need); empty without one."""
    environment: dict[str, Any] = field(default_factory=dict)
    """Versions of the libraries and the harness's commit."""
    run_id: str = ""
    """The run's id, also its W&B run's id (empty in results written before runs had ids)."""
    command: str = ""
    """The command line that made the run."""
    started: str = ""
    """When the run started (ISO 8601, UTC)."""
    base_model: str = ""
    """The base model: `tiny (1.0M parameters)` or a Hugging Face name or path."""
    base_params: int = 0
    """The base model's parameter count (0 in results written before it was recorded)."""
    seed: int | None = None
    """The experiment's seed (split, organisms, IA)."""
    wandb: str = ""
    """The run's W&B run: its URL online, its offline folder (relative to the run folder)
    otherwise; empty without W&B."""
    schema_version: int = SCHEMA_VERSION
    path: str = ""
    """The run folder (empty in the file; set when read back)."""
    overrides: list[str] = field(default_factory=list)
    """The Hydra overrides that made the run (empty in the file; set when read back)."""
