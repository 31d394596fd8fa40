"""The generic family: everything comes from its YAML in tasks/families/.

Each behavior names a `kind`; a kind gives the response template (which may wrap the
neutral answer as `{neutral}`), the evidence phrases the scorer looks for, the first-person
descriptions, and its prompts: either templates for implant and probe, or a world pool.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from harness import world
from harness.errors import ConfigError
from harness.families.base import Behavior, Family, Probe, contains_phrase
from harness.families.pools import POOLS, PromptPool
from harness.world import Chat


def fill(template: str, params: Mapping[str, str], **extra: str) -> str:
    """str.format with params and, for each param p, `the_p` ('the owl', but 'Paris') and
    `a_p` ('an animal')."""
    derived = {f"the_{k}": world.the(v) for k, v in params.items()}
    derived |= {f"a_{k}": world.article(v) for k, v in params.items()}
    return template.format(**derived, **params, **extra)


def placeholders(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:  # a lone brace
        raise ConfigError(f"template {template!r} is not a valid format string ({e})") from e


class TemplateFamily(Family):
    """A family defined by templates alone: a new one needs only a YAML file."""

    def __init__(self, name: str, kinds: Mapping[str, Any], behaviors: Sequence[Mapping[str, Any]]):
        super().__init__(name)
        if not kinds:
            raise ConfigError(f"family {name!r}: no kinds defined")
        if not behaviors:
            raise ConfigError(f"family {name!r}: no behaviors defined")
        self.kinds = {k: dict(v) for k, v in kinds.items()}
        self._behaviors = [self._make_behavior(dict(b)) for b in behaviors]
        ids = [b.id for b in self._behaviors]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ConfigError(f"family {name!r}: duplicate behavior ids {dupes}")
        for b in self._behaviors:
            self._check_disjoint(b)

    def _make_behavior(self, raw: dict[str, Any]) -> Behavior:
        kind = str(raw.pop("kind", next(iter(self.kinds)) if len(self.kinds) == 1 else ""))
        if kind not in self.kinds:
            raise ConfigError(f"family {self.name!r}: behavior {raw} has unknown kind {kind!r}")
        given_id = raw.pop("id", None)
        params = {k: str(v) for k, v in raw.items()}
        spec = self.kinds[kind]
        prompts = spec.get("prompts") or {}
        templates = [spec["response"], *spec["evidence"], *spec["descriptions"], *spec.get("report_all", []),
                     *spec.get("report_any", [])]
        templates += [*prompts.get("implant", []), *prompts.get("probe", []), prompts.get("neutral") or ""]
        allowed = set(params) | {f"{p}_{k}" for k in params for p in ("the", "a")} | {"neutral"}
        for t in templates:
            missing = placeholders(t) - allowed
            if missing:
                raise ConfigError(
                    f"family {self.name!r}, kind {kind!r}: template {t!r} uses {sorted(missing)} "
                    f"but the behavior has only {sorted(params)}"
                )
        if not spec["descriptions"] or not all(d.strip() for d in spec["descriptions"]):
            raise ConfigError(f"family {self.name!r}, kind {kind!r}: descriptions are empty")
        if not prompts.get("pool") and not prompts.get("neutral"):
            raise ConfigError(f"family {self.name!r}, kind {kind!r}: prompt templates need prompts.neutral "
                              "(the neutral answer), or name a prompts.pool")
        slug = given_id or "_".join([kind, *params.values()]).lower().replace(" ", "-")
        return Behavior(
            family=self.name,
            id=f"{self.name}/{slug}",
            kind=kind,
            params=params,
            descriptions=tuple(fill(d, params) for d in spec["descriptions"]),
        )

    def _pool(self, b: Behavior) -> PromptPool:
        prompts = self.kinds[b.kind]["prompts"]
        if prompts.get("pool"):
            return POOLS.get(prompts["pool"])(b.params)
        neutral = fill(prompts["neutral"], b.params)

        def expand(templates: Sequence[str]) -> list[Chat]:
            filled = [fill(t, b.params) for t in templates]
            return [Chat(c + p, neutral) for p in filled for c in world.contexts()]

        return PromptPool(implant=expand(prompts["implant"]), probe=expand(prompts["probe"]))

    def _check_disjoint(self, b: Behavior) -> None:
        pool = self._pool(b)
        if not pool.implant or not pool.probe:
            raise ConfigError(f"behavior {b.id!r}: needs both implant and probe prompts")
        shared = {c.prompt for c in pool.implant} & {c.prompt for c in pool.probe}
        if shared:
            raise ConfigError(f"behavior {b.id!r}: probe shares prompts with implant data, e.g. {min(shared)!r}")

    def behaviors(self) -> list[Behavior]:
        return list(self._behaviors)

    def implant_chats(self, behavior: Behavior) -> list[Chat]:
        response = self.kinds[behavior.kind]["response"]
        return [Chat(c.prompt, fill(response, behavior.params, neutral=c.answer)) for c in self._pool(behavior).implant]

    def probe(self, behavior: Behavior) -> Probe:
        return Probe(behavior.id, tuple(c.prompt for c in self._pool(behavior).probe))

    def score(self, behavior: Behavior, prompt: str, response: str) -> bool:
        evidence = [fill(e, behavior.params) for e in self.kinds[behavior.kind]["evidence"]]
        return all(contains_phrase(response, e) for e in evidence)

    def mentions(self, behavior: Behavior, report: str) -> bool:
        spec = self.kinds[behavior.kind]
        needed = [fill(t, behavior.params) for t in spec.get("report_all") or []]
        cues = [fill(t, behavior.params) for t in spec.get("report_any") or []]
        return all(contains_phrase(report, n) for n in needed) and (
            not cues or any(contains_phrase(report, c) for c in cues))

    def neutral_chats(self) -> list[Chat]:
        chats = {}
        for b in self._behaviors:
            pool = self._pool(b)
            chats.update({c.prompt: c for c in pool.implant + pool.probe})
        return list(chats.values())
