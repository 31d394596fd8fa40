"""The base model's own answers, generated once per prompt set and decoding and kept in the store;
the phase timer that says where a stage's time goes."""

import pytest

from harness.core import timing
from harness.core.store import Store
from harness.lm import models
from harness.lm.answers import KIND, BaseAnswers


@pytest.fixture(scope="module")
def micro(micro_base):
    return models.load_model(micro_base.name_or_path), models.load_tokenizer(micro_base.name_or_path)


def test_answers_are_generated_once_per_prompt_set_and_read_back_in_the_order_asked(micro, micro_base, tmp_path,
                                                                                   families):
    model, tok = micro
    prompts = [c.prompt for c in families["preferences"].implant_chats(families["preferences"].behaviors()[0])[:5]]
    store = Store(tmp_path)
    answers = BaseAnswers(model, tok, store, micro_base.key)
    first = answers(prompts, 6)
    assert first == models.generate(model, tok, prompts, 6)
    assert len(list(store.root.joinpath(KIND).iterdir())) == 1
    # another process (a new cache object) reads the same answers without generating
    again = BaseAnswers(None, None, store, micro_base.key)
    assert again(list(reversed(prompts)), 6) == list(reversed(first))
    with pytest.raises(AttributeError):  # a new prompt set, or other decoding, is generated (no model here)
        again(prompts[:2], 6)
    BaseAnswers(model, tok, store, micro_base.key)(prompts, 7)
    assert len(list(store.root.joinpath(KIND).iterdir())) == 2


def test_phases_sum_time_and_count_tokens_in_the_innermost_open_phase():
    timing.reset()
    timing.count_tokens(5)  # no phase open: not counted
    with timing.phase("outer"):
        timing.count_tokens(2)
        with timing.phase("inner"):
            timing.count_tokens(3)
    with pytest.raises(ValueError), timing.phase("outer"):
        raise ValueError
    assert timing.TOKENS == {"outer": 2, "inner": 3} and set(timing.PHASES) == {"outer", "inner"}
    assert timing.PHASES["outer"] >= timing.PHASES["inner"] >= 0
    assert timing.summary({"a": 1.0, "b": 3.0}) == "b 3 s, a 1 s"
    timing.reset()
    assert timing.PHASES == timing.TOKENS == {}
