"""Stage `probe`: what evaluation organisms do, and what they say about themselves.

The evaluation organisms are probed in chunks (`probe.chunk_size`), each chunk one job of a
sweep: the base model with the chunk's LoRA organisms, each organism with the IA (the two
adapters side by side along the rank: peft's `cat` combination, identical to stacking them) and
the IA alone stacked on it as slots (train/batched.py's StackedLoRA), so a generation batches
many organisms, each block of rows through its own slot; then each weight-route organism (full
fine-tune, symmetry attack) as its own checkpoint with the IA stacked on top. Every chunk measures
the base model too (for base rates); the first one also reports its rows, as the negative control.
Self-reports are graded against every evaluation behavior. The slots' answers are kept in the
store (lm/answers.py's SlotAnswers): the models without the IA answer the same prompts whichever
IA a run evaluates, so a run on another IA over the same organisms reads them back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from harness.core import timing, tracking
from harness.core.config import ProbeConfig
from harness.core.errors import ConfigError
from harness.core.record_io import read_jsonl, write_jsonl
from harness.core.records import (
    CONDITIONS,
    BaseModelCard,
    BehaviorRate,
    BehaviorRow,
    IACard,
    OrganismCard,
    ProbeSample,
    ReportRow,
)
from harness.core.store import Store, config_key, write_json
from harness.core.vocabulary import BASE, heldout_questions
from harness.families import Behavior, Family
from harness.lm import models
from harness.lm.answers import SlotAnswers
from harness.measure.grading import Grades, grader_for, names_kind, prepare
from harness.measure.observe import behavior_rates, slot_self_reports
from harness.run.stage import Done, Run, Stage, log
from harness.train.adapters import ia_adapter, organism_adapter
from harness.train.batched import StackedLoRA
from harness.train.routes import route

SAMPLED = CONDITIONS[:3]
"""The conditions whose self-reports are sampled from a model (the parrot and shuffled ones are made from them)."""
PARROT_QUESTION = "(none: the parrot repeats a training description of the organism's kind)"
# Bumped whenever probing changes in code (not in config), so cached probe results are not reused.
RECIPE = 6


@dataclass
class ProbeResult:
    behaviors: list[BehaviorRow]
    reports: list[ReportRow]
    samples: list[ProbeSample] = field(default_factory=list)


@dataclass(frozen=True)
class Probed:
    """A model probed with stacked adapters hooked on it, its slots' answers kept through `memo`."""

    model: object
    stacked: StackedLoRA
    memo: SlotAnswers | None


@dataclass(frozen=True)
class Subject:
    """A probed model: the base (card None) or an evaluation organism, and the slot of the stacked
    adapters (hooked on the model that holds it) that each condition selects."""

    card: OrganismCard | None
    slots: dict[str, int]
    base_route: str = BASE
    """For the base model: the route it was transformed by (its negative control), if any."""

    @property
    def name(self) -> str:
        return BASE if self.card is None else self.card.behavior_id

    @property
    def route(self) -> str:
        return self.base_route if self.card is None else self.card.route


def probe_key(ia: IACard, chunk: Sequence[OrganismCard], evaluate: Sequence[OrganismCard], cfg: ProbeConfig,
              threshold: float, split: str, seed: int, with_base: bool, base_controls: Sequence[str] = ()) -> str:
    # transformed bases (`base_controls`) are in the key only when a chunk asks some: the keys of
    # chunks without them are the ones they had before the controls existed, and stay valid
    return config_key("probe", RECIPE, ia.key, [o.key for o in chunk], [o.key for o in evaluate], asdict(cfg),
                      threshold, split, seed, with_base, *([list(base_controls)] if base_controls else []))


WHOLE = {"ia": 0, "no_ia": 1, "prefill": 1}
"""A model probed on its own: slot 0 the IA, slot 1 no adapter (`whole_model`)."""


def whole(card: OrganismCard | None, base_route: str = BASE) -> Subject:
    """A model probed on its own, the IA its only adapter: the base (or the base transformed by
    `base_route`), or a weight-route organism."""
    return Subject(card, WHOLE, base_route)


def measure_rates(probed: Probed, tok, subjects: Sequence[Subject], targets: Sequence[tuple[Family, Behavior]],
                  cfg: ProbeConfig, progress: bool = False) -> dict[tuple[str, str, str], BehaviorRate]:
    """Every evaluation behavior's rate on every subject (greedy), one batched pass; by
    (subject route, subject name, behavior)."""
    with timing.phase("behavior rates"):
        rates = behavior_rates(probed.model, tok, targets, cfg.rate, [s.slots["no_ia"] for s in subjects],
                               progress=f"behavior rates of {len(subjects)} models" if progress else None,
                               stacked=probed.stacked, memo=probed.memo)
    return {(s.route, s.name, b.id): rates[s.slots["no_ia"]][b.id] for s in subjects for _, b in targets}


def behavior_rows(rates: dict[tuple[str, str, str], BehaviorRate], subjects: Sequence[Subject],
                  targets: Sequence[tuple[Family, Behavior]], threshold: float, split: str) -> list[BehaviorRow]:
    out = []
    for s in subjects:
        for _, b in targets:
            rate, base_rate = rates[(s.route, s.name, b.id)].rate, rates[(BASE, BASE, b.id)].rate
            out.append(BehaviorRow(split=split, model=s.name, behavior_id=b.id, family=b.family, rate=rate,
                                   base_rate=base_rate, strength=rate - base_rate,
                                   present=rate - base_rate >= threshold, own=s.name == b.id,
                                   n=rates[(s.route, s.name, b.id)].n, route=s.route))
    return out


def probe_samples(rates: dict[tuple[str, str, str], BehaviorRate], subjects: Sequence[Subject],
                  targets: Sequence[tuple[Family, Behavior]], split: str) -> list[ProbeSample]:
    """Every probe generation behind the rates of each organism's own behavior, and of the base
    model's on every evaluation behavior (the other cells of the matrix are rates only)."""
    return [ProbeSample(split=split, model=s.name, route=s.route, behavior_id=b.id, family=b.family, **sample)
            for s in subjects for _, b in targets if s.card is None or s.name == b.id
            for sample in rates[(s.route, s.name, b.id)].scored]


def sample_reports(probed: Probed, tok, subjects: Sequence[Subject],
                   targets: Sequence[tuple[Family, Behavior]], questions: Sequence[str], cfg: ProbeConfig,
                   ia: IACard, split: str, seed: int, progress: bool) -> list[ReportRow]:
    """k self-reports per subject and condition (greedy ones of many subjects in one batch; sampled
    ones seeded per subject, so they do not depend on the others in its chunk), graded against
    the evaluation behaviors."""
    rows, grader = [], grader_for(cfg.grader, cfg.judge_model)
    grades = Grades(targets, grader)
    for condition in SAMPLED:
        label = f"self-reports of {len(subjects)} models, {condition}" if progress else None
        with timing.phase("self-reports"):
            asked = slot_self_reports(probed.model, tok, probed.stacked, [s.slots[condition] for s in subjects],
                                      questions, cfg.samples, cfg.max_new_tokens, cfg.temperature, seed,
                                      prefill=cfg.prefill if condition == "prefill" else "", progress=label,
                                      memo=probed.memo)
        with timing.phase("grading"):
            prepare(grader, [report for said in asked.values() for _, report in said], targets)
            rows += [grade(report, q, condition, s, grades, ia, split) for s in subjects
                     for q, report in asked[s.slots[condition]]]
    return rows


def grade(report: str, question: str, condition: str, s: Subject, grades: Grades, ia: IACard,
          split: str) -> ReportRow:
    """One self-report graded against every evaluation behavior (and for its trigger, if any)."""
    named, identified = grades[report]
    own = next(((f, b) for f, b in grades.candidates if s.card is not None and b.id == s.card.behavior_id), None)
    return ReportRow(split=split, ia=ia.key, condition=condition, model=s.name,
                     family=s.card.family if s.card else BASE, question=question, report=report,
                     verbalized=s.name in named, identified=identified, mentioned=list(named),
                     route=s.route, trigger_named=own[0].mentions_trigger(own[1], report) if own else None,
                     kind_named=names_kind(*own, report) if own else None,
                     description=own[1].descriptions[0] if own else None)


def parrot_reports(subjects: Sequence[Subject], targets: Sequence[tuple[Family, Behavior]],
                   families: Mapping[str, Family], cfg: ProbeConfig, ia: IACard, split: str) -> list[ReportRow]:
    """Baseline `parrot`: it knows each organism's kind, not its parameters, and reports every
    description of the IA's training organisms of that kind (of its family when none is of its
    kind; an empty report when the IA trained on none of its family)."""
    trained = [families[i.split("/", 1)[0]].behavior(i) for i in ia.organisms if i.split("/", 1)[0] in families]
    rows, grader = [], grader_for(cfg.grader, cfg.judge_model)
    grades = Grades(targets, grader)
    for s in subjects:
        if s.card is None:
            continue
        kin = [b for b in trained if b.family == s.card.family]
        said = [d for b in ([b for b in kin if b.kind == s.card.kind] or kin) for d in b.descriptions] or [""]
        prepare(grader, said, targets)
        rows += [grade(d, PARROT_QUESTION, "parrot", s, grades, ia, split) for d in said]
    return rows


def lora_model(base: BaseModelCard, organisms: Sequence[OrganismCard], ia: IACard,
               store: Store) -> tuple[Probed, list[Subject]]:
    """The base model with the LoRA organisms and the IA stacked on it (slot k: organism k; K + k:
    organism k with the IA, peft's `cat` combination; 2K: the IA; 2K + 1: none), and its subjects:
    the base model, then each organism."""
    folders = [organism_adapter(card, base, store) for card in organisms]
    ia_folder, k = ia_adapter(store, ia, base), len(organisms)
    with timing.phase("loading"):
        model = models.load_base(base)
        stacked = StackedLoRA.sums(model, [[f] for f in folders] + [[f, ia_folder] for f in folders]
                                   + [[ia_folder], []])
    keys = [[c.key] for c in organisms] + [[c.key, ia.key] for c in organisms] + [[ia.key], []]
    subjects = [Subject(None, {"ia": 2 * k, "no_ia": 2 * k + 1, "prefill": 2 * k + 1})]
    subjects += [Subject(card, {"ia": k + i, "no_ia": i, "prefill": i}) for i, card in enumerate(organisms)]
    return Probed(model, stacked, SlotAnswers(store, base.key, dict(enumerate(keys)))), subjects


def whole_model(model, base: BaseModelCard, ia: IACard, store: Store, model_key: str | None) -> Probed:
    """A model probed on its own (a weight-route organism's checkpoint, a transformed base) with
    the IA stacked on it: slot 0 the IA, slot 1 none (`WHOLE`); its answers kept under `model_key`
    (None: not kept)."""
    stacked = StackedLoRA.sums(model, [[ia_adapter(store, ia, base)], []])
    memo = None if model_key is None else SlotAnswers(store, model_key, {0: [ia.key], 1: []})
    return Probed(model, stacked, memo)


def base_controls(x: ProbeInput) -> list[str]:
    """The evaluated routes that transform the base model too (the symmetry attack): the chunk
    with the base model also asks their transformed base under the IA."""
    return [r for r in dict.fromkeys(o.route for o in x.evaluate) if route(r).base_control] if x.with_base else []


@dataclass(frozen=True)
class ProbeInput:
    """One chunk of the evaluation organisms, probed with the IA (and the base model, chunk 0)."""

    index: int
    chunk: list[OrganismCard]
    evaluate: list[OrganismCard]
    """Every evaluation organism (their behaviors are probed on each subject)."""
    base: BaseModelCard
    ia: IACard
    cfg: ProbeConfig
    threshold: float
    """The organisms' implant threshold: a behavior is present when its strength reaches it."""
    split: str
    seed: int

    @property
    def with_base(self) -> bool:
        return self.index == 0


class ProbeStage(Stage[ProbeInput, ProbeResult]):
    """The evaluation organisms of every route of the split, in chunks of `probe.chunk_size`."""

    name = "probe"
    kind = "probes"

    def inputs(self, run: Run, done: Done) -> list[ProbeInput]:
        cfg, (base,), (ia,) = run.cfg, done["base"], done["ia"]
        evaluate = evaluation_organisms(run, done["organisms"])
        n = cfg.probe.chunk_size
        return [ProbeInput(i // n, evaluate[i : i + n], evaluate, base, ia, cfg.probe, cfg.organism.threshold,
                           cfg.split.name, cfg.seed) for i in range(0, len(evaluate), n)]

    def key(self, x: ProbeInput) -> str:
        return probe_key(x.ia, x.chunk, x.evaluate, x.cfg, x.threshold, x.split, x.seed, x.with_base, base_controls(x))

    def load(self, store: Store, x: ProbeInput) -> ProbeResult:
        store.card(self.kind, self.key(x))  # the seal verified
        folder = store.path(self.kind, self.key(x))
        return ProbeResult(behaviors=read_jsonl(folder / "behavior_rows.jsonl", BehaviorRow),
                           reports=read_jsonl(folder / "self_reports.jsonl", ReportRow),
                           samples=read_jsonl(folder / "probe_samples.jsonl", ProbeSample))

    def build(self, run: Run, todo: list[ProbeInput], progress: bool) -> None:
        timing.reset()
        for x in todo:
            probe_chunk(x, self.key(x), run.families, run.store, progress)
        log.info(f"probes: {len(todo)} chunk(s) in {sum(timing.PHASES.values()):.0f} s "
                 f"({timing.summary(timing.PHASES)})")

    def select(self, run: Run, xs: list[ProbeInput]) -> list[ProbeInput]:
        chunk = run.cfg.probe_chunk
        if chunk is None:
            return xs
        if chunk >= len(xs):
            raise ConfigError(f"probe_chunk={chunk} but there are {len(xs)} chunks")
        return [xs[chunk]]

    def job(self, xs):
        return [f"probe_chunk={xs[0].index}"]

    def summary(self, run: Run, done: Done) -> str:
        n = len(evaluation_organisms(run, done["organisms"]))
        return f"probed {n} evaluation organisms in {len(done[self.name])} chunk(s)"

    def track(self, wb, artifacts: Sequence[ProbeResult]) -> None:
        tracking.log_table(wb, "self_reports", merge(artifacts).reports)


def merge(parts: Sequence[ProbeResult]) -> ProbeResult:
    """The rows of several probe chunks as one result."""
    return ProbeResult(behaviors=[r for p in parts for r in p.behaviors], reports=[r for p in parts for r in p.reports],
                       samples=[s for p in parts for s in p.samples])


def evaluation_organisms(run: Run, organisms: Sequence[OrganismCard]) -> list[OrganismCard]:
    """The evaluation organisms, route by route as the split lists them: the IA's own route in
    the split's order, every other route in selection order (the order their probe keys were
    first made in)."""
    own, by_id = run.cfg.organism.route, run.own_route(organisms)
    return [c for r in run.cfg.split.eval_routes
            for c in ([by_id[i] for i in run.split.evaluate if i in by_id] if r == own
                      else [c for c in organisms if c.route == r])]


def probe_chunk(x: ProbeInput, key: str, families: Mapping[str, Family], store: Store, progress: bool) -> None:
    """Probe a chunk of the evaluation organisms (and the base model when `with_base`) on every
    evaluation behavior, and save the rows under `key`. LoRA organisms share one model (batched
    across organisms); each weight-route organism is its own model."""
    base, ia, cfg, split, seed = x.base, x.ia, x.cfg, x.split, x.seed
    tok = models.load_base_tokenizer(base)
    # one target per behavior, however many routes evaluate it
    targets = list({o.behavior_id: (families[o.family], families[o.family].behavior(o.behavior_id))
                    for o in x.evaluate}.values())
    questions = heldout_questions(ia.questions, cfg.questions)
    lora_cards = [o for o in x.chunk if not route(o.route).weights]
    probed, subjects = lora_model(base, lora_cards, ia, store)
    rates = measure_rates(probed, tok, subjects, targets, cfg, progress)
    reports = sample_reports(probed, tok, subjects if x.with_base else subjects[1:], targets, questions, cfg,
                             ia, split, seed, progress)
    for card in (o for o in x.chunk if route(o.route).weights):
        with timing.phase("loading"):
            probed = whole_model(models.load_base(base, organism_adapter(card, base, store)), base, ia, store, card.key)
        rates |= measure_rates(probed, tok, [whole(card)], targets, cfg, progress)
        reports += sample_reports(probed, tok, [whole(card)], targets, questions, cfg, ia, split, seed, progress)
        subjects.append(whole(card))
    for r in base_controls(x):  # a transformed base is made anew by code: its answers are not kept
        with timing.phase("loading"):
            probed = whole_model(route(r).base_control(models.load_base(base), seed), base, ia, store, None)
        reports += sample_reports(probed, tok, [whole(None, r)], targets, questions, cfg, ia, split, seed, progress)
    reports += parrot_reports(subjects, targets, families, cfg, ia, split)
    probed = subjects if x.with_base else subjects[1:]
    behaviors = behavior_rows(rates, probed, targets, x.threshold, split)
    with store.writing("probes", key) as tmp:
        write_jsonl(tmp / "behavior_rows.jsonl", behaviors)
        write_jsonl(tmp / "self_reports.jsonl", reports)
        write_jsonl(tmp / "probe_samples.jsonl", probe_samples(rates, probed, targets, split))
        write_json(tmp / Store.MARKER, {"key": key, "ia": ia.key, "organisms": [o.key for o in x.chunk],
                                        "config": asdict(cfg), "threshold": x.threshold, "seed": seed,
                                        "with_base": x.with_base})
