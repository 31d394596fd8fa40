"""The artifact store: a folder at its final path is always complete."""

import pytest

from harness.store import Store, config_key


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
    debris = tmp_path / "organisms" / "k3.tmp-999999999"
    debris.mkdir(parents=True)
    with store.writing("organisms", "k3") as tmp:
        (tmp / "card.json").write_text("{}")
    assert store.exists("organisms", "k3")
    assert not debris.exists()
