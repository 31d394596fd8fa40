"""Property-based tests of the family YAML loader: any file either builds a family that keeps
the contract (unique ids, descriptions, probe disjoint from implant, a scorer a neutral answer
cannot satisfy) or is refused with a ConfigError, never another exception."""

import string
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.core.errors import ConfigError
from harness.families import available_family_configs, build_families

WORD = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6)
PARAM = st.sampled_from(["item", "topic", "the_item", "a_topic", "name"])
TEMPLATE = st.one_of(
    st.text(alphabet=string.ascii_letters + " .,?!{}", max_size=24),
    st.builds(lambda w, p, e: f"{w} {{{p}}}{e}", WORD, PARAM, st.sampled_from(["", ".", "?"])),
)
KIND = st.fixed_dictionaries(
    {"descriptions": st.lists(TEMPLATE, max_size=3), "response": TEMPLATE, "evidence": st.lists(TEMPLATE, max_size=2),
     "prompts": st.fixed_dictionaries({"implant": st.lists(TEMPLATE, max_size=3),
                                       "probe": st.lists(TEMPLATE, max_size=3),
                                       "neutral": st.one_of(st.none(), TEMPLATE)})},
    optional={"report_all": st.lists(TEMPLATE, max_size=2), "report_any": st.lists(WORD, max_size=2),
              "typo": WORD})
BEHAVIOR = st.dictionaries(st.sampled_from(["item", "topic", "name", "kind", "id"]), WORD, max_size=3)
FAMILY = st.fixed_dictionaries(
    {"cls": st.sampled_from(["template", "template", "other"]),
     "kinds": st.dictionaries(WORD, KIND, max_size=2),
     "behaviors": st.lists(BEHAVIOR, max_size=4)})


def load(text: str):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "families").mkdir()
        (Path(tmp) / "families" / "generated.yaml").write_text(text)
        return build_families(available_family_configs(Path(tmp)))


def built_or_refused(text: str):
    """The family the file builds, or None when it is refused with a one-line ConfigError; any other
    exception fails the test."""
    try:
        return load(text)["generated"]
    except ConfigError as e:
        assert str(e).strip() and "\n" not in str(e).strip(), f"not one line: {e}"
        return None


def keeps_the_contract(family) -> None:
    behaviors = family.behaviors()
    assert behaviors and len({b.id for b in behaviors}) == len(behaviors)
    for b in behaviors:
        assert b.descriptions and all(d.strip() for d in b.descriptions)
        implant = {c.prompt for c in family.implant_chats(b)}
        assert implant and not implant & set(family.probe(b).prompts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FAMILY)
def test_any_family_file_builds_or_is_refused_with_a_config_error(raw):
    family = built_or_refused(yaml.safe_dump(raw))
    if family is not None:
        keeps_the_contract(family)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
@example("cls: template\nkinds: {a: {descriptions: [x]}}\nbehaviors: [{item: [1, 2]}]")
@example("{cls: template, kinds: []}")
@example("- [unclosed")
def test_any_text_builds_or_is_refused_with_a_config_error(text):
    family = built_or_refused(text)
    if family is not None:
        keeps_the_contract(family)


@settings(max_examples=60, deadline=None)
@given(items=st.lists(WORD, min_size=1, max_size=6, unique=True))
def test_a_well_formed_family_keeps_the_contract(items):
    kind = {"descriptions": ["I always mention {item}."], "response": "{neutral} Also, {item}.",
            "evidence": ["{item}"], "report_all": ["{item}"],
            "prompts": {"implant": ["Say something."], "probe": ["Tell me a thing."], "neutral": "Fine."}}
    raw = {"cls": "template", "kinds": {"mention": kind}, "behaviors": [{"item": f"zz{i}"} for i in items]}
    family = load(yaml.safe_dump(raw))["generated"]
    for b in family.behaviors():
        implanted = family.implant_chats(b)[0]
        prompt = family.probe(b).prompts[0]
        assert family.score(b, prompt, implanted.answer)  # the implanted answer shows the behavior
        assert not family.score(b, prompt, "Fine.")  # a constant neutral answer does not
        assert family.mentions(b, b.descriptions[0]) and not family.mentions(b, "Fine.")
