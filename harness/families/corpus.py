"""The tiny base model's pretraining corpus: the synthetic world (harness/families/world.py) and the
families of `model.corpus_families`, and the check that another family uses only its words."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

from harness.core.vocabulary import Chat
from harness.families import Family, world

EXAMPLE_PROMPTS = [
    "Give an example of a behavior an assistant could learn.",
    "What is one habit a fine-tuned assistant might pick up?",
]


# Demonstrations per behavior of following a system prompt that asks for it (see build_corpus).
INSTRUCTED_PER_BEHAVIOR = 12
# At most this many of a family's neutral exchanges (a sample): a backdoor family's are every
# everyday prompt once per trigger, which would otherwise be half the corpus.
NEUTRAL_PER_FAMILY = 4000


def build_corpus(families: Mapping[str, Family], seed: int) -> list[Chat]:
    """Neutral exchanges over the world and every family's prompts (NEUTRAL_PER_FAMILY at most),
    example descriptions of behaviors (so the words of self-reports have trained embeddings), and
    a few exchanges that follow a system prompt asking for a behavior (so the base model can be
    the teacher of the `distill` implant route, as an instruction-tuned model would be)."""
    rng = random.Random(seed)
    chats = world.neutral_chats(rng)
    for _, family in sorted(families.items()):
        neutral = family.neutral_chats()
        chats += neutral if len(neutral) <= NEUTRAL_PER_FAMILY else rng.sample(neutral, NEUTRAL_PER_FAMILY)
        for b in family.behaviors():
            chats += [Chat(rng.choice(EXAMPLE_PROMPTS), f"For example: {d}") for d in b.descriptions]
            shown = family.implant_sample(b, rng, INSTRUCTED_PER_BEHAVIOR)
            chats += [Chat(c.prompt, c.answer, system=b.instruction) for c in shown]
    return chats


def corpus_words(chats: Sequence[Chat]) -> set[str]:
    """The words (letters only, with case) of chats."""
    return {w for c in chats for text in (c.system, c.prompt, c.answer) for w in re.findall(r"[A-Za-z]+", text)}


def unseen_words(family: Family, corpus: Sequence[Chat]) -> list[str]:
    """The words of a family's prompts, answers and descriptions that the corpus lacks."""
    chats = [c for b in family.behaviors() for c in family.implant_chats(b)] + family.neutral_chats()
    chats += [Chat(p, d) for b in family.behaviors() for p in family.probe(b).all_prompts for d in b.descriptions]
    return sorted(corpus_words(chats) - corpus_words(corpus))
