"""Benchmark: probing 16 organisms three ways, side by side in one run.

  (a) fast probe, as the probe stage ran it before it stacked the adapters as slots (the real
      model's section of docs/benchmarks.md): one model, every adapter loaded once, one pass over
      every organism's prompts (organism after organism, `model.generation_batch_size` at once:
      a batch of one adapter runs with only it active, one that spans two with per-row adapters);
  (b) a loop that activates each adapter in turn with `set_adapter` (same batch size);
  (c) one `lm_eval` command per organism (the exported task), as a user would run it.

Prints wall time, generated tokens per second, the ratios b/a and c/a, whether the three give
the same behavior rates, and the machine's matmul throughput beside the model's achieved FLOP/s.
Writes everything to outputs/bench/probe_bench.json. Run: `make bench`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import zip_longest
from pathlib import Path

import torch
from figures import matmul_flops, write_figures
from peft import PeftModel

from harness.cli.compose import check
from harness.lm import models
from harness.measure.probing import behavior_rate, select_prompts
from harness.report.lm_eval_export import control_task, export, task_name
from harness.run.stage import Run, ensure
from harness.run.stages.base_model import BaseInput, BaseStage
from harness.run.stages.organisms import make_organisms
from harness.train.adapters import adapter_name

N_ORGANISMS = 16


def interleaved(families, n):
    """n behaviors taken in turn from each family, so every family is represented."""
    columns = [[(f, b) for b in f.behaviors()] for f in families.values()]
    return [t for row in zip_longest(*columns) for t in row if t][:n]


def count_tokens(tok, texts) -> int:
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)  # +1: the end token


def rates_from(responses, cards, prompts, families):
    out = {}
    for card in cards:
        family = families[card.family]
        behavior = family.behavior(card.behavior_id)
        out[card.behavior_id] = behavior_rate(family, behavior, prompts[card.behavior_id],
                                              responses[card.behavior_id]).rate
    return out


def main() -> int:
    cfg = check([])
    run = Run.of(cfg)
    store, families, corpus = run.store, run.families, run.corpus
    (base,) = ensure(BaseStage(), run, [BaseInput(cfg.model, corpus, cfg.seed)])
    targets = interleaved(families, N_ORGANISMS)
    cards = make_organisms(targets, base, corpus, cfg.organism, store, cfg.seed)
    prompts = {c.behavior_id: select_prompts(families[c.family].probe(families[c.family].behavior(c.behavior_id)),
                                             cfg.organism.probe_prompts) for c in cards}
    max_new = cfg.organism.max_new_tokens
    tok = models.load_tokenizer(base.name_or_path)
    model = PeftModel.from_pretrained(models.load_model(base.name_or_path), store.path("organisms", cards[0].key),
                                      adapter_name=adapter_name(cards[0]))
    for card in cards[1:]:
        model.load_adapter(store.path("organisms", card.key), adapter_name=adapter_name(card))
    model.eval()
    figures: dict = {"organisms": len(cards), "prompts": sum(len(p.all_prompts) for p in prompts.values()),
                     "max_new_tokens": max_new, "threads": torch.get_num_threads()}

    # (a) fast probe: all organisms in one batched pass
    start = time.perf_counter()
    rows = [(c, p) for c in cards for p in prompts[c.behavior_id].all_prompts]
    batch = cfg.model.generation_batch_size
    outputs = models.generate(model, tok, [p for _, p in rows], max_new, batch_size=batch,
                              adapter_names=[adapter_name(c) for c, _ in rows])
    fast_s = time.perf_counter() - start
    fast = {c.behavior_id: {} for c in cards}
    for (c, p), o in zip(rows, outputs, strict=True):
        fast[c.behavior_id][p] = o

    # (b) set_adapter loop
    start = time.perf_counter()
    loop = {}
    for card in cards:
        model.set_adapter(adapter_name(card))
        ps = prompts[card.behavior_id].all_prompts
        loop[card.behavior_id] = dict(zip(ps, models.generate(model, tok, ps, max_new, batch_size=batch), strict=True))
    loop_s = time.perf_counter() - start

    # (c) one lm_eval command per organism
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tasks"
        export(families, cfg.families, folder, cfg.organism.implant_rate)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        lm_rates = {}
        start = time.perf_counter()
        for card in cards:  # a behavior measured as a difference: its task's mean minus its control task's
            controlled = bool(prompts[card.behavior_id].control)
            tasks = [task_name(card.behavior_id)] + ([control_task(card.behavior_id)] if controlled else [])
            result_dir = Path(tmp) / "results" / tasks[0]
            cmd = [str(Path(sys.executable).with_name("lm_eval")), "--model", "hf", "--model_args",
                   f"pretrained={base.name_or_path},peft={store.path('organisms', card.key)}",
                   "--apply_chat_template", "--include_path", str(folder), "--tasks", ",".join(tasks),
                   "--device", "cpu", "--batch_size", "16", "--output_path", str(result_dir)]
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            result = json.loads(next(result_dir.rglob("results_*.json")).read_text())["results"]
            means = [result[t]["behavior_rate,none"] for t in tasks]
            lm_rates[card.behavior_id] = means[0] - (means[1] if len(means) > 1 else 0.0)
        lm_s = time.perf_counter() - start

    fast_rates, loop_rates = rates_from(fast, cards, prompts, families), rates_from(loop, cards, prompts, families)
    tokens = count_tokens(tok, outputs)
    n_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    hidden = model.config.hidden_size
    figures |= {
        "fast_probe_s": round(fast_s, 2), "set_adapter_loop_s": round(loop_s, 2),
        "lm_eval_per_organism_s": round(lm_s, 2),
        "loop_over_fast": round(loop_s / fast_s, 2), "lm_eval_over_fast": round(lm_s / fast_s, 2),
        "generated_tokens": tokens, "fast_tokens_per_s": round(tokens / fast_s, 1),
        "loop_tokens_per_s": round(count_tokens(tok, [o for r in loop.values() for o in r.values()]) / loop_s, 1),
        "rates_equal_fast_loop": fast_rates == loop_rates,
        "rates_equal_fast_lm_eval": all(abs(fast_rates[k] - lm_rates[k]) < 1e-9 for k in fast_rates),
        "responses_equal_fast_loop": fast == loop,
        "rates": {k: {"fast": fast_rates[k], "loop": loop_rates[k], "lm_eval": lm_rates[k]} for k in fast_rates},
        "model_params": n_params,
        "model_achieved_gflops": round(2 * n_params * tokens / fast_s / 1e9, 3),
        "matmul_gflops_model_shape": round(matmul_flops(64, hidden, 2 * hidden) / 1e9, 2),
        "matmul_gflops_1024": round(matmul_flops(1024, 1024, 1024, repeat=10) / 1e9, 2),
    }
    write_figures("probe_bench", figures, shown={k: v for k, v in figures.items() if k != "rates"})
    return 0 if figures["rates_equal_fast_loop"] and figures["rates_equal_fast_lm_eval"] else 1


if __name__ == "__main__":
    sys.exit(main())
