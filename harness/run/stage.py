"""The stage protocol, and `Run`: what a config asks for, derived once per run.

A stage takes typed inputs, names each input's artifact by a key (a hash of everything that
makes it), builds the missing ones into the store, and loads what is there. The DAG
(harness/run/dag.py) lists the stages in order; the pipeline executes it, and a sweep plans its
fan-out jobs from the keys and `store.exists` alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Generic, TypeVar

from harness.core.config import Config
from harness.core.errors import ConfigError
from harness.core.records import OrganismCard
from harness.core.store import Store
from harness.core.vocabulary import Chat
from harness.families import Behavior, Family, available_family_configs, build_families, build_family
from harness.families.corpus import build_corpus, unseen_words
from harness.run.splits import Assignment, assign
from harness.train.routes import check_target_modules

log = logging.getLogger("harness")

I = TypeVar("I")  # noqa: E741  a stage's input
C = TypeVar("C")  # what a stage's artifact loads as (its card)


@dataclass
class Run:
    """What a config asks for, derived without training anything: the families, the base
    corpus, the selected behaviors, the split of them, and the store. Computed once per run and
    handed to every stage."""

    cfg: Config
    families: dict[str, Family]
    targets: list[tuple[Family, Behavior]]
    split: Assignment
    store: Store
    left_out: list[str] = field(default_factory=list)
    """Behaviors of the selected families that the model's free text cannot show (see
    `Family.measurable`): not selected, and said so on the console."""

    @classmethod
    def of(cls, cfg: Config) -> Run:
        """The run of a validated config; ConfigError if its selection or split is unusable."""
        families = build_families(cfg.families, cfg.model.free_text)
        # a real model's free text cannot show a behavior whose evidence is the tiny world's own answers
        left_out = [b.id for f in families.values() for b in f.behaviors() if not f.measurable(b)]
        unreadable = [name for name, f in families.items() if all(b.id in left_out for b in f.behaviors())]
        if unreadable:
            raise ConfigError(f"family {unreadable[0]!r}: no behavior of it can be read in "
                              f"model.kind={cfg.model.kind}'s free text (its evidence is the tiny world's own "
                              "answers; give its kinds text_evidence, or leave it out of families)")
        targets = [(f, b) for f in families.values()
                   for b in [b for b in f.behaviors() if b.id not in left_out][: cfg.max_behaviors_per_family]]
        first: dict[tuple[str, ...], str] = {}
        for _, b in targets:  # a family copied under another name: its confessions would count as hallucinations
            twin = first.setdefault(tuple(b.descriptions), b.id)
            if twin != b.id:
                raise ConfigError(f"behaviors {twin!r} and {b.id!r} have the same descriptions: "
                                  "is one family selected twice under two names?")
        unknown = sorted(set(cfg.only_behaviors or []) - {b.id for _, b in targets})
        if unknown:
            why = (f": its evidence is the tiny world's own answers, which model.kind={cfg.model.kind} does not give "
                   "(the kind has no text_evidence)" if unknown[0] in left_out else "")
            raise ConfigError(f"only_behaviors: {unknown[0]!r} is not a selected behavior{why}")
        split = assign([(b.family, b.id) for _, b in targets], cfg.split, cfg.seed)
        run = cls(cfg=cfg, families=families, targets=targets, split=split, store=Store(cfg.cache_dir),
                  left_out=left_out)
        if cfg.model.kind == "tiny":
            run.check_vocabulary()
            check_target_modules(cfg.model, cfg.organism.target_modules, "organism")
            check_target_modules(cfg.model, cfg.ia.target_modules, "ia")
        return run

    @cached_property
    def corpus(self) -> list[Chat]:
        """The tiny base model's pretraining corpus (built on first use): the world and the
        `model.corpus_families`, so choosing or adding other families reuses the same base."""
        on_disk = available_family_configs(names=[f for f in self.cfg.model.corpus_families if f not in self.families])
        unknown = [f for f in self.cfg.model.corpus_families if f not in on_disk and f not in self.families]
        if unknown:
            raise ConfigError(f"model.corpus_families: no family {unknown[0]!r} in tasks/families")
        chosen = {f: self.families[f] if f in self.families else build_family(f, on_disk[f])
                  for f in self.cfg.model.corpus_families}
        return build_corpus(chosen, self.cfg.seed)

    def check_vocabulary(self) -> None:
        """A selected family outside the corpus must use only words the base model has seen."""
        for name, family in self.families.items():
            if name in self.cfg.model.corpus_families:
                continue
            unseen = unseen_words(family, self.corpus)
            if unseen:
                shown = ", ".join(unseen[:8]) + (f" and {len(unseen) - 8} more" if len(unseen) > 8 else "")
                raise ConfigError(f"family {name!r} uses words the tiny base model never saw: {shown} (add it to "
                                  f"model.corpus_families to pretrain a base that knows them: "
                                  f"'model.corpus_families=[{','.join([*self.cfg.model.corpus_families, name])}]')")

    def own_route(self, organisms: Sequence[OrganismCard]) -> dict[str, OrganismCard]:
        """The organisms of the IA's route (`organism.route`), by behavior id, in their order."""
        return {c.behavior_id: c for c in organisms if c.route == self.cfg.organism.route}

    def heldout(self) -> list[tuple[Family, Behavior]]:
        """The selected behaviors that the split evaluates on, in selection order."""
        held = set(self.split.evaluate)
        return [(f, b) for f, b in self.targets if b.id in held]


Done = Mapping[str, Sequence[Any]]
"""The loaded artifacts of the stages run so far, by stage name."""


class Stage(Generic[I, C]):
    """One stage: its name (also the `stage=` value of a fan-out job) and store kind, the inputs a
    run gives it (from the artifacts of the stages before it), a key per input, and how to build
    the missing artifacts and load them."""

    name: ClassVar[str]
    kind: ClassVar[str]

    def inputs(self, run: Run, done: Done) -> list[I]:
        raise NotImplementedError

    def key(self, x: I) -> str:
        raise NotImplementedError

    def build(self, run: Run, todo: list[I], progress: bool) -> None:
        """Make the artifacts of `todo` (none of them in the store yet) and put them there."""
        raise NotImplementedError

    def load(self, store: Store, x: I) -> C:
        raise NotImplementedError

    def exists(self, store: Store, x: I) -> bool:
        return store.exists(self.kind, self.key(x))

    def select(self, run: Run, xs: list[I]) -> list[I]:
        """The inputs a fan-out job of this stage makes (the config's `only_behaviors`, `probe_chunk`)."""
        return xs

    def job(self, xs: Sequence[I]) -> list[str]:
        """Overrides that make a fan-out job (with `stage=<name>`) build exactly these inputs."""
        return []

    def per_job(self, organisms_per_job: int) -> int:
        """How many missing artifacts one fan-out job makes."""
        return 1

    def summary(self, run: Run, done: Done) -> str:
        """A line for the console once the stage's artifacts are ready (`done` holds them)."""
        return ""

    def track(self, wb, artifacts: Sequence[C]) -> None:
        """Log the artifacts to W&B, when a fan-out job stops at this stage."""


def ensure(stage: Stage[I, C], run: Run, xs: Sequence[I], progress: bool = True) -> list[C]:
    """The artifacts of `xs`, building the ones the store lacks first (the console says which)."""
    todo = [x for x in xs if not stage.exists(run.store, x)]
    if xs:
        parts = [f"{len(todo)} to make" if todo else "",
                 f"{len(xs) - len(todo)} from the store" if len(todo) < len(xs) else ""]
        log.info(f"{stage.name}: {', '.join(p for p in parts if p)}")
    if todo:
        stage.build(run, todo, progress)
    return [stage.load(run.store, x) for x in xs]
