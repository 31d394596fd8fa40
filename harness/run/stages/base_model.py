"""Stage `base`: the base model M: any Hugging Face causal LM, a GGUF file imported once (the
real chat model that installs offline, SmolLM2-135M-Instruct), or the embedded tiny one.

The tiny model is built here from nothing: on the run's synthetic chat corpus (harness/families/corpus.py:
neutral answers over the world and the corpus families' vocabulary), a BPE tokenizer trained on it,
a small Llama pretrained on it. It is saved like any model and cached under a key of its config and corpus.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import LlamaForCausalLM

from harness.core import tracking
from harness.core.config import ModelConfig
from harness.core.errors import ConfigError
from harness.core.record_io import load_card, save_record
from harness.core.records import BaseModelCard
from harness.core.store import Store, config_key, write_text
from harness.core.vocabulary import Chat
from harness.lm import gguf, models
from harness.run.stage import Done, Run, Stage
from harness.train.training import step_on_batches, tail_mean, train

HF_LOADING = ("dtype", "device_map", "revision", "gradient_checkpointing", "generation_batch_size",
              "attn_implementation")
"""Model config fields that say how a Hugging Face model is loaded and run, not what a tiny base is."""


def base_key(cfg: ModelConfig, corpus: list[Chat], seed: int) -> str:
    if cfg.kind == "hf":  # what changes the loaded weights: the name, revision and dtype (as resolved here)
        loaded = (cfg.revision, models.resolve_dtype(cfg.dtype))
        return config_key("hf", cfg.name_or_path, *([] if loaded == (None, "float32") else loaded))
    if cfg.kind == "gguf":  # the file's content, wherever it lies, and the dtype it is imported in
        dtype = models.resolve_dtype(cfg.dtype)
        sha = gguf.declared_sha256(cfg.gguf_file, cfg.shipped) or gguf.sha256(gguf.gguf_path(cfg.gguf_file,
                                                                                               cfg.shipped))
        return config_key("gguf", sha, *([] if dtype == "float32" else [dtype]),
                          *([] if cfg.system_prompt is None else [{"system_prompt": cfg.system_prompt}]))
    # the corpus itself is in the key; how a Hugging Face model loads and generates does not make a tiny one
    recipe = {k: v for k, v in asdict(cfg).items() if k not in ("corpus_families", "system_prompt", *HF_LOADING)}
    return config_key("tiny", recipe, [(c.prompt, c.answer) for c in corpus], seed)


@dataclass(frozen=True)
class BaseInput:
    model: ModelConfig
    corpus: list[Chat]
    seed: int


class BaseStage(Stage[BaseInput, BaseModelCard]):
    """The base model: a Hugging Face model is used where it is (nothing to build); a GGUF file
    is dequantized once into the store; the tiny one is pretrained on the run's corpus and cached."""

    name = kind = "base"

    def inputs(self, run: Run, done: Done) -> list[BaseInput]:
        return [BaseInput(run.cfg.model, run.corpus, run.cfg.seed)]

    def key(self, x: BaseInput) -> str:
        return base_key(x.model, x.corpus, x.seed)

    def exists(self, store: Store, x: BaseInput) -> bool:
        return x.model.kind == "hf" or super().exists(store, x)

    def load(self, store: Store, x: BaseInput) -> BaseModelCard:
        if x.model.kind == "hf":
            assert x.model.name_or_path
            return BaseModelCard(key=self.key(x), kind="hf", name_or_path=x.model.name_or_path,
                                 config=asdict(x.model),
                                 fingerprint=models.fingerprint(x.model.name_or_path, x.model.revision) or "")
        path = store.path(self.kind, self.key(x))
        card = load_card(store, self.kind, self.key(x), BaseModelCard)
        if card.kind != x.model.kind or card.trust_remote_code:
            # the cache is data, never a source of permission: only the run's config may allow remote code
            raise ConfigError(f"base model {path}: its card asks for {card.kind!r} with trust_remote_code="
                              f"{card.trust_remote_code}, which the harness never writes for a "
                              f"{x.model.kind} base; the cache was altered (remove the folder to rebuild it)")
        card.name_or_path = str(path)  # where the store is now (it may have been moved or mounted elsewhere)
        if x.model.kind == "gguf":  # how it loads (dtype, device) is the run's, as for a Hugging Face model
            card.config = card.config | {k: getattr(x.model, k) for k in HF_LOADING}
        return card

    def summary(self, run: Run, done: Done) -> str:
        (base,) = done[self.name]
        accuracy = "" if base.answer_accuracy is None else f", answer accuracy {base.answer_accuracy}"
        return f"base model: {base.name_or_path} ({base.n_params:,} params{accuracy})"

    def track(self, wb, artifacts: Sequence[BaseModelCard]) -> None:
        tracking.log_record(wb, "base", artifacts[0])

    def build(self, run: Run, todo: list[BaseInput], progress: bool) -> None:
        for x in todo:
            key = self.key(x)
            with run.store.writing(self.kind, key) as tmp:
                if x.model.kind == "gguf":
                    card = import_base(x.model, tmp, progress, run.store)
                else:
                    card = pretrain_tiny(x.model, x.corpus, x.seed, tmp, progress)
                card.key = key
                card.name_or_path = str(run.store.path(self.kind, key))
                save_record(tmp / Store.MARKER, card)


def import_base(cfg: ModelConfig, out_dir: Path, progress: bool, store: Store) -> BaseModelCard:
    """The GGUF file dequantized into a safetensors model in the dtype it is loaded in (a shipped
    model's parts joined into the store first, and its model card written beside it)."""
    start = time.time()
    path = gguf.gguf_path(cfg.gguf_file, cfg.shipped, store)
    if progress:
        print(f"base: importing {path.name} ({path.stat().st_size / 2**20:.0f} MiB GGUF) into the store, once")
    n_params = gguf.import_gguf(path, out_dir, models.resolve_dtype(cfg.dtype), cfg.system_prompt)
    if cfg.gguf_file is None:
        write_text(out_dir / "README.md", gguf.model_card(cfg.shipped, path, n_params))
    return BaseModelCard(key="", kind="gguf", name_or_path=str(out_dir), config=asdict(cfg) | {"gguf_file": str(path)},
                         n_params=n_params, seconds=round(time.time() - start, 1),
                         fingerprint=models.fingerprint(out_dir) or "")


def pretrain_tiny(cfg: ModelConfig, corpus: list[Chat], seed: int, out_dir, progress: bool) -> BaseModelCard:
    start = time.time()
    torch.manual_seed(seed)
    tok = models.build_tokenizer([t for c in corpus for t in (c.system, c.prompt, c.answer) if t], cfg.vocab_size)
    model = LlamaForCausalLM(models.tiny_config(cfg, len(tok), tok.eos_token_id, tok.pad_token_id)).to(models.device())
    encoded = [models.encode_chat(tok, c, loss_on_prompt=True) for c in corpus]
    check_positions(cfg, corpus, [len(ids) for ids, _ in encoded])
    rng = random.Random(seed)
    step = step_on_batches(model, lambda _: rng.sample(encoded, cfg.batch_size), tok.pad_token_id)
    losses = train(model, model.parameters(), step, cfg.pretrain_steps, cfg.lr, cfg.warmup_steps,
                   desc="pretrain base", progress=progress, curve="base/loss")
    accuracy = answer_accuracy(model, tok, corpus, seed=seed)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return BaseModelCard(
        key="", kind="tiny", name_or_path=str(out_dir), config=asdict(cfg),
        n_params=sum(p.numel() for p in model.parameters()),
        pretrain_loss=tail_mean(losses) if losses else None,
        corpus_size=len(corpus), answer_accuracy=accuracy, seconds=round(time.time() - start, 1),
        fingerprint=models.fingerprint(out_dir) or "",
    )


def check_positions(cfg: ModelConfig, corpus: Sequence[Chat], lengths: Sequence[int]) -> None:
    """Refuse, before pretraining, a context shorter than the longest chat of the corpus."""
    longest = max(range(len(lengths)), key=lengths.__getitem__)
    if lengths[longest] > cfg.max_positions:
        raise ConfigError(f"model.max_positions={cfg.max_positions} is shorter than a corpus chat of "
                          f"{lengths[longest]} tokens ({corpus[longest].prompt[:40]!r}...): "
                          f"set model.max_positions>={lengths[longest]}")


def answer_accuracy(model, tok, chats: list[Chat], n: int = 128, seed: int = 0) -> float:
    """Fraction of sampled corpus prompts with one right answer that the greedy answer matches."""
    answers: dict[str, set[str]] = {}
    for c in chats:
        if not c.system:
            answers.setdefault(c.prompt, set()).add(c.answer)
    determined = [Chat(p, next(iter(a))) for p, a in sorted(answers.items()) if len(a) == 1]
    sample = random.Random(seed).sample(determined, min(n, len(determined)))
    answers = models.generate(model, tok, [c.prompt for c in sample], max_new_tokens=32)
    return sum(a == c.answer for a, c in zip(answers, sample, strict=True)) / len(sample)
