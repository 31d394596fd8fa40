"""`harness cache`: what the artifact store holds, whether it is intact, and what a config needs.

ls: every artifact with what it is (behavior and route, IA, probe chunk, the base model's answers,
the probed models' answers), size and date;
verify: every artifact's seal (see harness/core/store.py); rm: remove named artifacts, so the next
run rebuilds them; gc: remove what a (complete) run of the given config does not use.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.core.errors import ConfigError
from harness.core.records import AnswersCard, SlotAnswersCard
from harness.core.store import Store, read_card

if TYPE_CHECKING:
    from harness.run.stage import Run


@dataclass(frozen=True)
class Entry:
    kind: str
    key: str
    what: str
    bytes: int
    date: str


def describe(store: Store, kind: str, key: str) -> Entry:
    """One artifact as `ls` shows it (read without verifying: ls must work on a damaged store)."""
    folder = store.path(kind, key)
    try:
        card = read_card(folder / Store.MARKER)
    except (OSError, ValueError):
        card = {}
    card = card if isinstance(card, dict) else {}
    if kind == "organisms":
        what = f"{card.get('behavior_id', '?')} ({card.get('route', '?')})"
    elif kind == "ia":
        what = f"IA on {len(card.get('organisms', []))} organisms, {card.get('config', {}).get('steps', '?')} steps"
    elif kind == "base":
        what = f"{card.get('kind', '?')} base, {card.get('n_params', 0):,} params"
    elif kind == AnswersCard.kind:
        what = f"the base model's answers to {len(card.get('prompts', []))} prompts"
    elif kind == SlotAnswersCard.kind:
        what = f"{len(card.get('adapters', []))} probed models' answers to {len(card.get('prompts', []))} prompts"
    else:
        what = kind
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    date = time.strftime("%Y-%m-%d %H:%M", time.localtime((folder / Store.MARKER).stat().st_mtime))
    return Entry(kind, key, what, size, date)


def needed(run: Run) -> set[tuple[str, str]]:
    """(kind, key) of every artifact a run of this config uses; ConfigError unless they all exist
    (then nothing it needs can be mistaken for garbage)."""
    from harness.run import dag

    def incomplete(stage, absent: int) -> str:
        return (f"cache gc: {absent} {stage.name} artifacts of this config are not built yet; run it first "
                "(gc keeps only what a complete run uses)")

    return {(stage.kind, stage.key(x)) for stage, xs in dag.walk(run, dag.stored(run, incomplete)) for x in xs}


def parse_artifacts(names: Iterable[str], store: Store) -> list[tuple[str, str]]:
    """`kind/key` names, each a sealed artifact of the store whose card names that key
    (ConfigError otherwise, before anything is removed), each once."""
    from harness.run.dag import DAG

    kinds = {stage.kind for stage in DAG} | {AnswersCard.kind, SlotAnswersCard.kind}
    out = []
    for name in names:
        kind, _, key = name.partition("/")
        if kind not in kinds or not store.owns(kind, key):
            raise ConfigError(f"cache rm: {name!r} is not a sealed artifact of {store.root} (write kind/key, "
                              "as `harness cache ls` shows them); nothing removed")
        out.append((kind, key))
    return list(dict.fromkeys(out))


def remove(store: Store, artifacts: Iterable[tuple[str, str]]) -> int:
    """Remove artifacts; returns how many."""
    artifacts = list(artifacts)
    for kind, key in artifacts:
        store.remove(kind, key)
    return len(artifacts)
