"""A GGUF file shipped in parts across packages (model=qwen05) is joined into the store once and
checked; a missing, partial or wrong install is refused in one line, leaving nothing behind."""

import hashlib
from dataclasses import replace

import pytest

from harness.core.errors import ConfigError
from harness.core.store import Store
from harness.lm import gguf


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A shipped model in three parts, each in a package of its own on sys.path."""
    parts = [b"GGUF" + bytes(range(256)) * 3, bytes(500), b"the end"]
    for i, data in enumerate(parts, 1):
        folder = tmp_path / "site" / f"fake_part{i}" / "data"
        folder.mkdir(parents=True)
        (folder.parent / "__init__.py").write_text("")
        (folder / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(parts)
    shipped = gguf.Shipped("fake.gguf", tuple((f"fake_part{i}", f"data/part{i:02d}.bin") for i in (1, 2, 3)),
                           "make install-fake", "a test", size=len(whole), sha256=hashlib.sha256(whole).hexdigest())
    monkeypatch.setitem(gguf.SHIPPED, "fake", shipped)
    return shipped, whole, tmp_path


def test_parts_are_joined_into_the_store_once(fake):
    shipped, whole, tmp_path = fake
    store = Store(tmp_path / "store")
    path = gguf.shipped_file("fake", store)
    assert path.read_bytes() == whole and path.parent.parent.name == "gguf"
    assert store.card("gguf", shipped.sha256[:16])["sha256"] == shipped.sha256
    mtime = path.stat().st_mtime_ns
    assert gguf.shipped_file("fake", store) == path and path.stat().st_mtime_ns == mtime  # not joined again
    assert gguf.declared_sha256(None, "fake") == shipped.sha256  # the base's key needs no join
    assert gguf.declared_sha256("/some/file.gguf", "fake") is None
    assert gguf.shipped_file("fake") != path  # without a store: the parts checked, nothing joined


def test_a_wrong_partial_or_missing_install_is_refused(fake, monkeypatch):
    shipped, whole, tmp_path = fake
    store = Store(tmp_path / "store")
    monkeypatch.setitem(gguf.SHIPPED, "fake", replace(shipped, sha256="0" * 64))
    with pytest.raises(ConfigError, match="are not fake.gguf .* reinstall them \\(make install-fake\\)"):
        gguf.shipped_file("fake", store)
    assert not list((tmp_path / "store" / "gguf").iterdir())  # no artifact, no half-written file
    monkeypatch.setitem(gguf.SHIPPED, "fake", shipped)
    (tmp_path / "site" / "fake_part2" / "data" / "part02.bin").write_bytes(bytes(499))
    with pytest.raises(ConfigError, match="hold .* bytes, not the .*\\(a partial or damaged install"):
        gguf.shipped_file("fake", store)
    monkeypatch.setitem(gguf.SHIPPED, "fake", replace(shipped, parts=(*shipped.parts, ("fake_part9", "x.bin"))))
    with pytest.raises(ConfigError, match="needs the package fake-part9 \\(make install-fake\\)"):
        gguf.shipped_file("fake", store)
    with pytest.raises(ConfigError, match="model.shipped=nope: not a shipped model"):
        gguf.shipped_file("nope")


def test_shipped_models_name_their_source_and_hash():
    qwen = gguf.SHIPPED["qwen05"]
    assert qwen.size == 491_400_064 and len(qwen.parts) == 6 and "Apache-2.0" in qwen.source
    assert qwen.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert not gguf.SHIPPED["smollm2"].joined and qwen.joined
