"""Organisms: a LoRA trains, the base does not move, cards and adapters land in the store."""

import json

import torch
from peft import PeftModel

from harness.core.records import OrganismCard
from harness.core.vocabulary import INTROSPECTION_QUESTIONS
from harness.lm import models
from harness.measure.probing import select_prompts
from harness.run.stages.organisms import make_organisms
from harness.train.routes import Route, neutral_mix, route


def test_lora_moves_and_base_stays(micro_cfg, micro_base, families, corpus):
    base = models.load_model(micro_base.name_or_path)
    tok = models.load_tokenizer(micro_base.name_or_path)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    family = families["preferences"]
    behavior = family.behaviors()[0]
    cfg = type(micro_cfg.organism)(**{**micro_cfg.organism.__dict__, "steps": 3})
    peft_model, final_loss = next(iter(route("lora").organisms(base, tok, [(family, behavior)], corpus, cfg, seed=0)))
    lora_b = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # lora_B starts at zero
    assert 0 < final_loss < 20
    restored = peft_model.unload()
    after = restored.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_neutral_mix_excludes_the_behaviors_own_prompts(families, corpus):
    family = families["hidden_goals"]
    b = family.behaviors()[0]
    mix = {c.prompt for c in neutral_mix(corpus, family, b)}
    assert mix and not mix & set(family.probe(b).prompts)
    assert not mix & set(INTROSPECTION_QUESTIONS)
    assert not mix & {c.prompt for c in family.implant_chats(b)}


def test_make_organisms_writes_cards_and_adapters_then_reuses(micro_cfg, micro_base, micro_store, families,
                                                               corpus, monkeypatch):
    targets = [(families["biases"], families["biases"].behaviors()[0]),
               (families["hidden_goals"], families["hidden_goals"].behaviors()[0])]
    cfg = type(micro_cfg.organism)(**{**micro_cfg.organism.__dict__, "steps": 2, "probe_prompts": 4,
                                       "max_new_tokens": 8})
    cards = make_organisms(targets, micro_base, corpus, cfg, micro_store, progress=False)
    base, tok = models.load_model(micro_base.name_or_path), models.load_tokenizer(micro_base.name_or_path)
    assert [c.behavior_id for c in cards] == [b.id for _, b in targets]
    for card in cards:
        folder = micro_store.path("organisms", card.key)
        assert (folder / "adapter_model.safetensors").is_file()
        saved = json.loads((folder / "card.json").read_text())
        assert saved["behavior_id"] == card.behavior_id and saved["route"] == "lora"
        assert isinstance(card, OrganismCard) and len(card.descriptions) >= 3
        loaded = PeftModel.from_pretrained(models.load_model(micro_base.name_or_path), folder)
        assert loaded.active_adapter == "default"
        # the check is what the saved organism and its base say, measured here from scratch
        family = families[card.family]
        behavior = family.behavior(card.behavior_id)
        prompts = list(select_prompts(family.probe(behavior), cfg.probe_prompts).prompts)

        def rate(answers: list[str], behavior=behavior, family=family, prompts=prompts) -> float:
            return sum(family.score(behavior, p, a) for p, a in zip(prompts, answers, strict=True)) / len(prompts)

        said = models.generate(loaded, tok, prompts, cfg.max_new_tokens)
        shown = [(s["prompt"], s["response"]) for s in card.check.samples]
        assert shown == list(zip(prompts, said, strict=True))[:len(shown)]
        assert card.check.rate == rate(said)
        assert card.check.base_rate == rate(models.generate(base, tok, prompts, cfg.max_new_tokens))

    monkeypatch.setattr(Route, "organisms", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    again = make_organisms(targets, micro_base, corpus, cfg, micro_store, progress=False)
    assert again == cards


def test_an_edited_scorer_makes_a_new_organism_key(families, micro_cfg):
    """The implant data alone left the key unchanged when a kind's evidence was edited, so organism
    checks made with the old scorer were reused (the sandbagging scorer changed this way)."""
    import copy

    from harness.families import build_family
    from harness.run.stages.organisms import organism_key

    family = families["sandbagging"]
    behavior = family.behaviors()[0]
    kinds = copy.deepcopy(family.kinds)
    kinds[behavior.kind]["evidence"] = []
    edited = build_family("sandbagging", {"cls": "template", "kinds": kinds,
                                          "behaviors": [dict(b.params, kind=b.kind) for b in family.behaviors()]})
    assert edited.implant_chats(edited.behavior(behavior.id)) == family.implant_chats(behavior)
    key = organism_key(behavior, family, micro_cfg.organism, "base", 0)
    assert organism_key(edited.behavior(behavior.id), edited, micro_cfg.organism, "base", 0) != key


def test_the_corpus_holds_at_most_a_sample_of_a_familys_neutral_exchanges(families):
    import random

    from harness.families import world
    from harness.families.corpus import NEUTRAL_PER_FAMILY, build_corpus

    def key(c):
        return c.prompt, c.answer, c.system

    backdoors = families["backdoors"]
    big = {key(c) for c in backdoors.neutral_chats()}  # every everyday prompt once per trigger
    assert len(big) > NEUTRAL_PER_FAMILY
    world_chats = {key(c) for c in world.neutral_chats(random.Random(0))}
    corpus = {key(c) for c in build_corpus({"backdoors": backdoors}, 0)}
    sampled = len((big - world_chats) & corpus)  # the family's own exchanges (the untriggered are the world's)
    assert NEUTRAL_PER_FAMILY - len(big & world_chats) <= sampled <= NEUTRAL_PER_FAMILY
    preferences = families["preferences"]
    small = {key(c) for c in preferences.neutral_chats()}
    assert len(small) <= NEUTRAL_PER_FAMILY and small <= {key(c) for c in build_corpus({"preferences": preferences}, 0)}
