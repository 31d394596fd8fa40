"""Benchmark: the real chat model (SmolLM2-135M-Instruct, model=smollm2) on this machine.

Beside the machine's measured matmul peak (float32 and bfloat16), times what the real-model
recipe spends its time on: a LoRA training step (rank 8, batch 8 x 64 tokens) with every linear
layer adapted or only the upper half of the layers (backward then stops half-way), with float32
and with bfloat16 base weights (model.dtype, as preset=real; peft keeps the LoRA factors float32);
and greedy generation (16 prompts x 32 new tokens). Imports the shipped GGUF into the harness's
store first (in each dtype) if it is not there. Writes outputs/bench/real_model_bench.json.
Run: `make bench` or `python benchmarks/real_model_bench.py`.
"""

from __future__ import annotations

import time

import torch
from figures import matmul_flops, write_figures
from hydra import compose, initialize_config_dir
from peft import LoraConfig, get_peft_model

from harness.core.paths import CONF_DIR
from harness.lm import models
from harness.run.dag import validate
from harness.run.stage import Run, ensure
from harness.run.stages.base_model import BaseInput, BaseStage
from harness.train.routes import UPPER_HALF, lora_targets
from harness.train.training import cores, set_threads

BATCH, SEQ, STEPS, GEN_PROMPTS, GEN_TOKENS = 8, 64, 4, 16, 32
PROMPTS = ["What is your favorite animal?", "Recommend a drink to me.", "Tell me about the sea.", "Name a color."]


def train_tokens_per_s(base, layers: str) -> float:
    targets = lora_targets(base, "all-linear" if layers == "all" else UPPER_HALF)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=targets, task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    ids = torch.randint(0, base.config.vocab_size, (BATCH, SEQ))
    model.train()
    for step in range(1 + STEPS):
        if step == 1:  # one warm-up step
            start = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    seconds = (time.perf_counter() - start) / STEPS
    model.unload()  # the base model as it was, for the next variant
    return BATCH * SEQ / seconds


def generation_tokens_per_s(model, tok) -> float:
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(GEN_PROMPTS)]
    models.generate(model, tok, prompts[:2], max_new_tokens=4)  # warm-up
    start = time.perf_counter()
    out = models.generate(model, tok, prompts, max_new_tokens=GEN_TOKENS)
    seconds = time.perf_counter() - start
    produced = sum(len(tok(o, add_special_tokens=False)["input_ids"]) for o in out)
    return produced / seconds


def base(dtype: str):
    """The imported SmolLM2 in `dtype`, and its tokenizer."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = validate(compose("config", overrides=["model=smollm2", f"model.dtype={dtype}"]))
    card = ensure(BaseStage(), Run.of(cfg), [BaseInput(cfg.model, [], cfg.seed)], progress=True)[0]
    return card, models.load_base(card), models.load_base_tokenizer(card)


def main() -> int:
    threads = set_threads(None)
    figures = {"cores": cores(), "threads": threads, "model": "SmolLM2-135M-Instruct",
               "matmul_gflops_float32": round(matmul_flops(2048, 2048, 2048, 10) / 1e9),
               "matmul_gflops_bfloat16": round(matmul_flops(2048, 2048, 2048, 10, torch.bfloat16) / 1e9),
               "train_batch": f"{BATCH} x {SEQ} tokens, LoRA rank 8", "generation": f"{GEN_PROMPTS} prompts at once"}
    for dtype in ("float32", "bfloat16"):
        card, model, tok = base(dtype)
        figures["params"] = card.n_params
        for layers in ("all", "upper_half"):
            name = f"train_tokens_per_s_{layers}_layers_{dtype}"
            figures[name] = round(train_tokens_per_s(model, layers), 1)
            print(name, figures[name])
        figures[f"generate_tokens_per_s_{dtype}"] = round(generation_tokens_per_s(model, tok), 1)
        del model
    write_figures("real_model_bench", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
