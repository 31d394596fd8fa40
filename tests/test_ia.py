"""IA training: the IA's weights move, every organism adapter stays bit-identical."""

import random
from dataclasses import replace

import pytest
import torch
from peft import LoraConfig, PeftModel
from safetensors.torch import load_file

from harness.core.vocabulary import NEUTRAL_SELF_REPORT, question_split
from harness.lm import models
from harness.run.stage import ensure
from harness.run.stages import ia as ia_stage
from harness.run.stages.ia import IAInput, IAStage, UnderIA, train_ia, training_units
from harness.train.adapters import IA, adapter_name, ia_path, load_with_organisms
from harness.train.training import collate, train


def test_ia_trains_and_organisms_stay_bit_identical(micro_cfg, micro_base, micro_store, micro_organisms):
    cfg = replace(micro_cfg.ia, steps=3, organisms_per_step=2, examples_per_organism=2)
    on_disk = {o.key: load_file(micro_store.path("organisms", o.key) / "adapter_model.safetensors")
               for o in micro_organisms}
    under = UnderIA.load(micro_base, micro_organisms, micro_store)
    before = {n: p.detach().clone() for n, p in under.model.named_parameters()}
    stack_before = [p.detach().clone() for p in under.stack.parameters()]
    tok = models.load_tokenizer(micro_base.name_or_path)
    units = training_units(micro_organisms, ["Describe your behavior."], cfg)
    losses = train_ia(under, tok, units, cfg, seed=0, progress=False)
    assert len(losses) == 3
    after = {n.replace("base_model.model.", "", 1).replace(".base_layer", ""): p
             for n, p in under.model.named_parameters()}
    moved = [n for n in after if f".{IA}." in n and "lora_B" in n and after[n].abs().sum() > 0]
    assert moved, "the IA's lora_B weights did not move"
    for name, value in before.items():  # base weights
        assert torch.equal(value, after[name].detach()), name
    assert all(torch.equal(a, b) for a, b in zip(stack_before, under.stack.parameters(), strict=True))
    for card in micro_organisms:  # and the files the organisms were loaded from
        again = load_file(micro_store.path("organisms", card.key) / "adapter_model.safetensors")
        assert all(torch.equal(on_disk[card.key][k], again[k]) for k in again)


def reference_train_ia(base, organisms, store, tok, units, cfg, seed):
    """IA training as it was before batching: every organism a peft adapter, each micro-batch
    one organism's rows under `set_adapter([organism, ia])`."""
    model = load_with_organisms(base, organisms, store)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model.add_adapter(IA, LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules="all-linear",
                                     task_type="CAUSAL_LM"))
    ia_params = [p for n, p in model.named_parameters() if f".{IA}." in n]
    encoded = {u: [models.encode_chat(tok, c) for c in chats] for u, chats in units.items()}
    organisms_only = [u for u in units if u != ia_stage.CONTROL]

    def step(_):
        total = 0.0
        for _ in range(cfg.organisms_per_step):
            unit = ia_stage.CONTROL if rng.random() < cfg.control_fraction else rng.choice(organisms_only)
            model.base_model.set_adapter([IA] if unit == ia_stage.CONTROL else [unit, IA])
            for n, p in model.named_parameters():
                p.requires_grad_(f".{IA}." in n)
            batch = [rng.choice(encoded[unit]) for _ in range(cfg.examples_per_organism)]
            loss = model(**collate(batch, tok.pad_token_id, model.device)).loss / cfg.organisms_per_step
            loss.backward()
            total += loss.item()
        return total

    return train(model, ia_params, step, cfg.steps, cfg.lr, cfg.warmup_steps, progress=False)


def test_batched_ia_training_follows_the_one_organism_at_a_time_recipe(micro_cfg, micro_base, micro_store,
                                                                        micro_organisms):
    cfg = replace(micro_cfg.ia, steps=5, organisms_per_step=3, examples_per_organism=2, control_fraction=0.3)
    tok = models.load_tokenizer(micro_base.name_or_path)
    units = training_units(micro_organisms, ["Describe your behavior.", "What is special about you?"], cfg)
    expected = reference_train_ia(micro_base, micro_organisms, micro_store, tok, units, cfg, seed=1)
    losses = train_ia(UnderIA.load(micro_base, micro_organisms, micro_store), tok, units, cfg, seed=1,
                      progress=False)
    assert losses == pytest.approx(expected, rel=1e-4)
    assert len(set(losses)) > 1


def test_training_units_include_the_control(micro_cfg, micro_organisms):
    units = training_units(micro_organisms, ["Q?"], micro_cfg.ia)
    assert set(units) == {adapter_name(o) for o in micro_organisms} | {ia_stage.CONTROL}
    assert units[ia_stage.CONTROL][0].answer == NEUTRAL_SELF_REPORT
    no_control = training_units(micro_organisms, ["Q?"], replace(micro_cfg.ia, controls=False))
    assert ia_stage.CONTROL not in no_control


def test_ia_stage_saves_a_loadable_adapter_with_card(micro_cfg, micro_run, micro_base, micro_store,
                                                      micro_organisms):
    cfg = replace(micro_cfg.ia, steps=2, organisms_per_step=1, examples_per_organism=2)
    x = IAInput(micro_base, micro_organisms, cfg, "heldout_behaviors", seed=0)
    (card,) = ensure(IAStage(), micro_run, [x], progress=False)
    assert card.organisms == [o.behavior_id for o in micro_organisms] and card.split == "heldout_behaviors"
    assert card.questions == question_split(cfg.train_templates)[0] and len(card.losses) == 2
    path = ia_path(micro_store, card)
    assert (path / "adapter_model.safetensors").is_file()
    loaded = PeftModel.from_pretrained(models.load_model(micro_base.name_or_path), path, adapter_name=IA)
    assert IA in loaded.peft_config
    assert ensure(IAStage(), micro_run, [x], progress=False) == [card]


def test_temperature_zero_asks_each_question_once_greedily(micro_base):
    from harness.measure.observe import self_reports

    model = models.load_model(micro_base.name_or_path)
    tok = models.load_tokenizer(micro_base.name_or_path)
    questions = ["Describe your behavior.", "What did you learn in fine-tuning?"]
    greedy = self_reports(model, tok, questions, 8, 6, 0.0, seed=0)
    assert [q for q, _ in greedy] == questions
    assert self_reports(model, tok, questions, 8, 6, 0.0, seed=1) == greedy  # no sampling: the seed is moot
    assert len(self_reports(model, tok, questions, 8, 6, 1.0, seed=0)) == 8


def test_the_kind_sampler_groups_organisms_by_kind(micro_cfg, micro_organisms):
    from harness.run.stages.ia import unit_groups

    same_kind = replace(micro_organisms[0], key="other", behavior_id="preferences/other")
    cards = [*micro_organisms, same_kind]
    assert unit_groups(cards, micro_cfg.ia) == [[adapter_name(c) for c in cards]]
    by_kind = unit_groups(cards, replace(micro_cfg.ia, sampler="kind"))
    assert sorted(map(len, by_kind)) == [1, 1, 2]
    assert [adapter_name(micro_organisms[0]), "o_other"] in by_kind


def test_held_out_questions_are_whole_templates():
    """The IA is asked new phrasings: every template's paraphrases are all trained or all held out,
    and the base model's corpus answers each of them neutrally."""
    from harness.core.vocabulary import INTROSPECTION_QUESTIONS, QUESTION_TEMPLATES, paraphrases
    from harness.families.world import introspection_chats

    train, held = question_split(9)
    assert len(train) == 81 and len(held) == 27 and set(train) | set(held) == set(INTROSPECTION_QUESTIONS)
    for template in QUESTION_TEMPLATES:
        assert set(paraphrases(template)) <= set(train) or set(paraphrases(template)) <= set(held), template
    assert {c.prompt for c in introspection_chats() if c.answer == NEUTRAL_SELF_REPORT} == set(INTROSPECTION_QUESTIONS)


def test_fewer_held_out_questions_still_ask_every_template_and_word():
    """probe.questions=9 of the 27 held-out questions: one a slot word of each held-out template,
    none of them trained; more than there are, or null, is every held-out question."""
    from harness.core.vocabulary import QUESTION_TEMPLATES, heldout_questions, paraphrases

    train, held = question_split(9)
    nine = heldout_questions(train, 9)
    assert len(set(nine)) == 9 and set(nine) <= set(held)
    for text, words in QUESTION_TEMPLATES[9:]:
        asked = [q for q in nine if q in paraphrases((text, words))]
        assert sorted(asked) == sorted(text.format(w) for w in words)  # each word once, without an opener
    assert heldout_questions(train) == held == heldout_questions(train, 27) == heldout_questions(train, 100)
    assert heldout_questions(train, 1) == held[:1]
