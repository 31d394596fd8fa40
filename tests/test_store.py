"""The artifact store: a folder at its final path is always complete."""

import os
import re

import pytest

from harness.core import store as store_module
from harness.core.store import Store, config_key


def test_config_key_is_stable_and_sensitive():
    assert config_key({"a": 1, "b": [2]}) == config_key({"b": [2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_failed_write_leaves_nothing(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError):
        with store.writing("organisms", "k1") as tmp:
            (tmp / "adapter.safetensors").write_text("half")
            raise RuntimeError("killed")
    assert not store.exists("organisms", "k1")
    assert list((tmp_path / "organisms").iterdir()) == []


def test_write_without_marker_is_refused(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError, match="card.json"):
        with store.writing("organisms", "k2") as tmp:
            (tmp / "adapter.safetensors").write_text("x")
    assert not store.path("organisms", "k2").exists()


def test_complete_write_and_stale_debris_cleanup(tmp_path):
    store = Store(tmp_path)
    host = store_module._host()
    debris = tmp_path / "organisms" / f"k3.tmp-{host}-999999999"  # a dead writer on this host
    live = tmp_path / "organisms" / f"k3.tmp-{host}-{os.getppid()}"  # a live one
    elsewhere = tmp_path / "organisms" / "k3.tmp-other-node-999999999"  # another node of a shared cache
    for folder in (debris, live, elsewhere):
        folder.mkdir(parents=True)
    with store.writing("organisms", "k3") as tmp:
        assert tmp.name == f"k3.tmp-{host}-{os.getpid()}"
        (tmp / "card.json").write_text("{}")
    assert store.exists("organisms", "k3")
    assert not debris.exists() and live.exists() and elsewhere.exists()


@pytest.mark.parametrize("edit,named", [
    (lambda c: c.update(descriptions="I love owls."), "OrganismCard.descriptions is a string, not list[str]"),
    (lambda c: c["check"].update(implanted="no"), "OrganismCard.check.implanted is a string, not bool"),
    (lambda c: c.update(seed=1.5), "OrganismCard.seed is a number, not int"),
    (lambda c: c.update(seed=True), "OrganismCard.seed is a boolean, not int"),
    (lambda c: c["check"].update(samples=[{"prompt": 3}]), "OrganismCard.check.samples[0].prompt is a number"),
    (lambda c: c.pop("behavior_id"), "OrganismCard lacks the field 'behavior_id'"),
    (lambda c: c.update(check=[]), "OrganismCard.check is a list, not an object"),
])
def test_a_card_of_the_wrong_shape_is_one_line_naming_the_field(edit, named):
    """A resealed card whose `descriptions` was a string or whose `implanted` was "no" was accepted."""
    from dataclasses import asdict

    from harness.core.record_io import BadRecord, from_dict
    from harness.core.records import ImplantCheck, OrganismCard

    check = ImplantCheck(rate=1.0, base_rate=0.0, strength=1.0, threshold=0.5, implanted=True, n_prompts=4,
                         samples=[{"prompt": "p", "response": "r"}])
    card = OrganismCard(key="k", behavior_id="f/b", family="f", kind="k", params={"a": "b"}, descriptions=["d"],
                        route="lora", base_key="b", base_name_or_path="b", training={}, seed=0, check=check,
                        final_loss=0.1, seconds=1.0)
    raw = asdict(card)
    assert from_dict(OrganismCard, raw) == card
    edit(raw)
    with pytest.raises(BadRecord, match=re.escape(named)):
        from_dict(OrganismCard, raw)
