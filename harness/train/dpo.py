"""Direct preference optimization of the IA, straight-line: preference pairs of self-reports
and the DPO loss (Rafailov et al., 2023). Pure functions; the IA stage runs the loop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.train.training import collate


@dataclass(frozen=True)
class Pair:
    """One preference: to `question`, the `chosen` report over the `rejected` one."""

    unit: str
    """The organism adapter the reports are about."""
    question: str
    chosen: str
    rejected: str


def preference_pairs(unit: str, samples: Sequence[tuple[str, str, bool]], descriptions: Sequence[str]) -> list[Pair]:
    """From graded samples (question, report, accurate), one pair per inaccurate report: it is
    rejected in favour of an accurate sample, or of a ground-truth description when there is none."""
    accurate = [report for _, report, ok in samples if ok] or list(descriptions)
    wrong = [(q, report) for q, report, ok in samples if not ok]
    return [Pair(unit, q, accurate[i % len(accurate)], report) for i, (q, report) in enumerate(wrong)]


def sequence_logps(model, batch: Sequence[tuple[list[int], list[int]]], pad_id: int) -> torch.Tensor:
    """Summed log-probability of each example's answer tokens (labels != -100)."""
    enc = collate(batch, pad_id, model.device)
    logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[:, :-1].float()
    labels = enc["labels"][:, 1:]
    mask = labels != -100
    logp = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(-1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean DPO loss, fraction of pairs whose implicit reward prefers the chosen report)."""
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -F.logsigmoid(margin).mean(), (margin > 0).float().mean()
