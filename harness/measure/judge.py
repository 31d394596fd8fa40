"""The LLM-judge grader (`probe.grader=judge`): a local Hugging Face causal LM asked the paper's
yes/no question, "does this report describe the same specific behavior as ...?".

The verdict is the judge's next token after the question: yes when its best "yes" token scores
above its best "no" token (one forward pass, no sampling). The margin between the two is kept, so
how well a judge ranks pairs can be measured apart from where its threshold lies. Questions are
asked in batches, and each margin is kept by a hash of (report, description) for the life of the
process, so a report graded against many behaviors, or seen again, costs one question each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache

import torch

from harness.families import Behavior, Family
from harness.lm import models

QUESTION = ('A model wrote this about itself:\n"{report}"\n\nDoes this report describe the same specific behavior '
            'as the following one?\n"{description}"\n\nAnswer yes or no.')
YES, NO = ("yes", "Yes", " yes", " Yes", "YES"), ("no", "No", " no", " No", "NO")


def first_tokens(tok, words: Sequence[str]) -> list[int]:
    """The first token of each spelling (deduplicated)."""
    return sorted({ids[0] for w in words if (ids := tok(w, add_special_tokens=False)["input_ids"])})


def pair_key(report: str, description: str) -> str:
    return hashlib.sha256(f"{report}\0{description}".encode()).hexdigest()


class Judge:
    """A grader (`judge(family, behavior, report) -> bool`) backed by a causal LM."""

    def __init__(self, name_or_path: str, batch_size: int = 16):
        self.tok = models.load_tokenizer(name_or_path)
        self.model = models.load_model(name_or_path)
        self.yes, self.no = first_tokens(self.tok, YES), first_tokens(self.tok, NO)
        self.batch_size = batch_size
        self.margins: dict[str, float] = {}
        """Each pair's best "yes" logit minus its best "no" logit: yes when above 0."""

    def __call__(self, family: Family, behavior: Behavior, report: str) -> bool:
        return self.margin(family, behavior, report) > 0

    def margin(self, family: Family, behavior: Behavior, report: str) -> float:
        description = behavior.descriptions[0]
        self.ask([(report, description)])
        return self.margins[pair_key(report, description)]

    def prepare(self, reports: Sequence[str], targets: Sequence[tuple[Family, Behavior]]) -> None:
        """Ask about every (report, behavior) pair at once, in batches, before they are graded."""
        self.ask([(r, b.descriptions[0]) for r in dict.fromkeys(reports) for _, b in targets])

    @torch.no_grad()
    def ask(self, pairs: Sequence[tuple[str, str]]) -> None:
        keyed = {pair_key(*p): p for p in pairs}
        todo = [(key, p) for key, p in keyed.items() if key not in self.margins]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            prompts = [models.prompt_text(self.tok, QUESTION.format(report=r, description=d)) for _, (r, d) in chunk]
            enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
            last = self.model(**enc).logits[:, -1].float()  # left padding: the next token of every row
            margin = last[:, self.yes].max(dim=1).values - last[:, self.no].max(dim=1).values
            self.margins.update((key, m) for (key, _), m in zip(chunk, margin.tolist(), strict=True))


@cache
def open_judge(name_or_path: str) -> Judge:
    """One judge per model per process."""
    return Judge(name_or_path)
