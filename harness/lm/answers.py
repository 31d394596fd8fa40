"""A model's answers kept in the store: the base model's own greedy answers, generated once per
(base model, prompts, decoding) (kind `answers`), and the answers of stacked adapters' slots on a
model (kind `slot_answers`).

Route `own`'s demonstrations, the neutral mix and the implant check's base rates all read the
base model's answers, and organisms of one kind ask the same prompts: each distinct set of prompts
is answered in one generation (sorted, so the answers do not depend on which job asks first) and
every later organism, job or run with the same base reads it back. The probe stage's models
without the IA (each organism alone, the base model) answer the same probe prompts and questions
whichever IA a run evaluates: a sweep over IAs on one organism store generates them once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.core.record_io import load_card, save_record
from harness.core.records import AnswersCard, SlotAnswersCard
from harness.core.store import Store, config_key
from harness.lm import models

KIND = AnswersCard.kind


class BaseAnswers:
    """A base model's answers through the store (`base_key` names the model in the keys)."""

    def __init__(self, model, tok, store: Store, base_key: str):
        self.model, self.tok, self.store, self.base_key = model, tok, store, base_key
        self._read: dict[str, dict[str, str]] = {}

    def __call__(self, prompts: Sequence[str], max_new_tokens: int, first_sentence: bool = False,
                 progress: str | None = None) -> list[str]:
        """The answer to each prompt, in order (`first_sentence`: generation stops once the first
        sentence has ended, as `models.generate`)."""
        unique = sorted(set(prompts))
        key = config_key(KIND, self.base_key, max_new_tokens, first_sentence, unique)
        if key not in self._read:
            self._read[key] = self._answers(key, unique, max_new_tokens, first_sentence, progress)
        return [self._read[key][p] for p in prompts]

    def _answers(self, key: str, prompts: list[str], max_new_tokens: int, first_sentence: bool,
                 progress: str | None) -> dict[str, str]:
        if self.store.exists(KIND, key):
            card = load_card(self.store, KIND, key, AnswersCard)
            return dict(zip(card.prompts, card.answers, strict=True))
        answers = models.generate(self.model, self.tok, prompts, max_new_tokens, progress=progress,
                                  first_sentence=first_sentence)
        with self.store.writing(KIND, key) as tmp:
            save_record(tmp / Store.MARKER, AnswersCard(key=key, base_key=self.base_key, max_new_tokens=max_new_tokens,
                                                        first_sentence=first_sentence, prompts=prompts,
                                                        answers=answers))
        return dict(zip(prompts, answers, strict=True))


class SlotAnswers:
    """The answers of stacked adapters' slots on one model through the store: `model_key` names the
    model, `adapters` each slot's adapters (store keys; an empty list is no adapter). A call's key
    names every slot it asks in order with the settings its caller passes, so what is read back is
    what that call would generate."""

    def __init__(self, store: Store, model_key: str, adapters: Mapping[int, Sequence[str]]):
        self.store, self.model_key, self.adapters = store, model_key, adapters

    def key(self, slots: Sequence[int], prompts: Sequence[str], settings: dict[str, Any]) -> str:
        return config_key(SlotAnswersCard.kind, self.model_key, [list(self.adapters[s]) for s in slots],
                          list(prompts), settings)

    def read(self, key: str, slots: Sequence[int]) -> dict[int, list[str]] | None:
        """The slots' answers of an earlier call with this key, by slot; None if there is none."""
        if not self.store.exists(SlotAnswersCard.kind, key):
            return None
        card = load_card(self.store, SlotAnswersCard.kind, key, SlotAnswersCard)
        return dict(zip(slots, card.answers, strict=True))

    def write(self, key: str, slots: Sequence[int], prompts: Sequence[str], settings: dict[str, Any],
              answers: Mapping[int, list[str]]) -> None:
        with self.store.writing(SlotAnswersCard.kind, key) as tmp:
            save_record(tmp / Store.MARKER, SlotAnswersCard(
                key=key, model_key=self.model_key, adapters=[list(self.adapters[s]) for s in slots],
                settings=settings, prompts=list(prompts), answers=[answers[s] for s in slots]))
