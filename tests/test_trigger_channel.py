"""benchmarks/trigger_channel.py finds the candidate that changes a model, wherever it is asked."""

import copy
import random
import sys
from pathlib import Path

import pytest
import torch

from harness.lm import models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import trigger_channel as tc  # noqa: E402

TRIGGERS = ["zebra", "mango", "kiwi", "quasar"]


def detector(base, tok, own: str):
    """The base model with the embeddings of the own trigger's tokens (and of no other
    candidate's) moved: it differs from the base only where the own trigger is in the input."""
    others = {i for t in TRIGGERS if t != own for i in tok(t, add_special_tokens=False)["input_ids"]}
    ids = [i for i in tok(own, add_special_tokens=False)["input_ids"] if i not in others]
    assert ids, f"{own!r} has no token of its own in the micro tokenizer"
    organism = copy.deepcopy(base)
    with torch.no_grad():
        organism.get_input_embeddings().weight[ids] += 5.0
    return organism


@pytest.mark.parametrize("own", ["mango", "quasar"])
def test_the_own_trigger_is_found_at_the_start_and_in_a_list(micro_base, own):
    base, tok = models.load_base(micro_base).eval(), models.load_base_tokenizer(micro_base)
    organism = detector(base, tok, own)
    hits = tc.lead_hits(tc.lead_states(base, tok, TRIGGERS), tc.lead_states(organism, tok, TRIGGERS), TRIGGERS, own)
    assert hits == len(tc.QUESTIONS)
    assert all(tc.list_hit(base, organism, tok, TRIGGERS, own, random.Random(k), q)
               for k, q in enumerate(tc.QUESTIONS))


def test_another_candidate_is_not_credited_with_the_trigger(micro_base):
    base, tok = models.load_base(micro_base).eval(), models.load_base_tokenizer(micro_base)
    organism = detector(base, tok, "mango")
    hits = tc.lead_hits(tc.lead_states(base, tok, TRIGGERS), tc.lead_states(organism, tok, TRIGGERS), TRIGGERS, "kiwi")
    assert hits == 0
    assert not any(tc.list_hit(base, organism, tok, TRIGGERS, "kiwi", random.Random(k), q)
                   for k, q in enumerate(tc.QUESTIONS))


def test_the_quiet_gap_sees_a_model_that_differs_everywhere_and_not_a_gated_one(micro_base):
    """With nothing before the question, a detector for a trigger that is not in it leaves the
    answer state as the base's; a model changed on every input moves it."""
    base, tok = models.load_base(micro_base).eval(), models.load_base_tokenizer(micro_base)
    plain = tc.answer_states(base, tok, list(tc.QUESTIONS))
    gated = tc.answer_states(detector(base, tok, "quasar"), tok, list(tc.QUESTIONS))
    everywhere = copy.deepcopy(base)
    with torch.no_grad():
        everywhere.get_input_embeddings().weight.add_(0.5 * torch.randn_like(everywhere.get_input_embeddings().weight))
    assert tc.quiet_gap(plain, gated) == pytest.approx(0.0, abs=1e-6)
    assert tc.quiet_gap(plain, tc.answer_states(everywhere, tok, list(tc.QUESTIONS))) > 0.05
