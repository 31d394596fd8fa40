"""A family's text_evidence patterns cannot hang a run: exponential ones are refused when the
family is loaded, and every match runs under a budget that names the pattern when it runs out."""

import pytest
from omegaconf import OmegaConf

from harness.core.errors import ConfigError
from harness.families import available_family_configs, build_families, build_family, patterns


@pytest.mark.parametrize("pattern", [r"^(\w+\s?)*$", r"(a*)*b", r"(?:x+y)+", r"((ab){2,})+", r"(?=(a+)+b)a",
                                     r"(x|(y+))*z"])
def test_a_repeat_inside_a_repeated_group_is_found(pattern):
    assert patterns.nested_repeat(pattern) == "a repeat inside a repeated group"


@pytest.mark.parametrize("pattern", [r"^\W*(\w.*\w)\W+\1\W*$", r"\w.*\Wcheers\W*$", r"(ab)+c", r"(a+b)?",
                                     r"(not|n't) know", r"(x{2}){3}"])
def test_patterns_without_nested_repeats_pass(pattern):
    assert patterns.nested_repeat(pattern) is None


def test_every_shipped_pattern_passes():
    configs = available_family_configs()
    shipped = [p for c in configs.values() for kind in OmegaConf.to_container(OmegaConf.structured(c))["kinds"].values()
               for p in kind.get("text_evidence") or []]
    assert shipped and all(patterns.nested_repeat(p) is None for p in shipped)


def test_a_slow_match_stops_within_its_budget_and_names_the_pattern(monkeypatch):
    """An alternation of overlapping branches under a repeat passes the check and still backtracks
    exponentially ((\\w|\\w\\w)*: the Fibonacci numbers of paths); the budget stops it."""
    monkeypatch.setattr(patterns, "MATCH_BUDGET_S", 1.0)  # the slow match needs hours, the fast microseconds
    slow = r"^(\w|\w\w)*$"
    assert patterns.nested_repeat(slow) is None
    with pytest.raises(ConfigError, match=r"family 'quirks', kind 'x': text_evidence .* took over 1 s"):
        patterns.search(slow, "a" * 60 + "!", True, "family 'quirks', kind 'x'")
    assert patterns.search(slow, "a" * 60, True, "w")  # a match is still found


def test_backreferences_keep_working_in_free_text():
    family = build_families(available_family_configs(names=["quirks"]), free_text=True)["quirks"]
    twice = next(b for b in family.behaviors() if b.kind == "twice")
    prompt = family.probe(twice).prompts[0]
    assert family.score(twice, prompt, "Paris is the capital. Paris is the capital.")
    assert not family.score(twice, prompt, "Paris is the capital. Rome is not.")


def test_a_family_with_an_exponential_pattern_is_refused_when_loaded():
    raw = OmegaConf.to_container(OmegaConf.structured(available_family_configs(names=["quirks"])["quirks"]))
    raw["kinds"]["capitals"]["text_evidence"] = [r"^([A-Z]+\s?)*$"]
    with pytest.raises(ConfigError, match=r"kind 'capitals': text_evidence .* has a repeat inside a repeated group"):
        build_family("quirks", raw, free_text=True)
