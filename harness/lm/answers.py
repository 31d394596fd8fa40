"""The base model's own greedy answers, generated once per (base model, prompts, decoding) and
kept in the store (kind `answers`).

Route `own`'s demonstrations, the neutral mix and the implant check's base rates all read the
base model's answers, and organisms of one kind ask the same prompts: each distinct set of prompts
is answered in one generation (sorted, so the answers do not depend on which job asks first) and
every later organism, job or run with the same base reads it back.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.core.record_io import load_card, save_record
from harness.core.records import AnswersCard
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
