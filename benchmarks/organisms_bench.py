"""Benchmark: organisms trained one at a time vs in batches, and the IA's training speed.

The same organisms (the first BATCH training behaviors of the default run, route `lora`, the
default steps) are made by the harness's own stage code into fresh stores, once per
`organism.batch_organisms` value of --sizes (1: one organism at a time, as before batching).
Times include verification and saving. The implant rates of the smallest and largest batch are
compared organism by organism. Then the IA trains IA_STEPS steps on the largest batch's
organisms (all rows of a step in one forward pass) and its tokens/s is set against the
machine's measured matmul peak.

Uses the default base model of the artifact cache (pretrained first if missing: minutes).
Writes outputs/bench/organisms_bench.json. Run: `make bench` or
`python benchmarks/organisms_bench.py [--batch 32] [--sizes 1,8,32]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from figures import matmul_flops, write_figures
from hydra import compose, initialize_config_dir

from harness.core.paths import CONF_DIR
from harness.core.store import Store
from harness.core.vocabulary import question_split
from harness.lm import models
from harness.run.dag import validate
from harness.run.stage import Run, ensure
from harness.run.stages.base_model import BaseInput, BaseStage
from harness.run.stages.ia import UnderIA, train_ia, training_units, unit_groups
from harness.run.stages.organisms import make_organisms
from harness.train.training import cores, set_threads

IA_STEPS = 30


def matmul_peak_gflops() -> float:
    """fp32 matmul throughput of this machine: the best of a few shapes like the tiny model's."""
    return max(matmul_flops(2048, size, size, repeat=20) for size in (256, 512, 1024)) / 1e9


def make(run: Run, base, batch: int, store: Store) -> tuple[float, list]:
    """(organisms per second, cards): the bench's organisms made into `store`, `batch` at a time."""
    start = time.perf_counter()
    cards = make_organisms(run.targets, base, run.corpus, replace(run.cfg.organism, batch_organisms=batch), store,
                           run.cfg.seed)
    return len(cards) / (time.perf_counter() - start), cards


def ia_speed(run: Run, base, cards, store: Store, peak: float) -> dict:
    """The IA's training speed on `cards`: steps/s, tokens/s (real tokens, padding excluded)
    and the model FLOP/s they imply (about 4 FLOPs per weight of the base's linear layers per
    token: forward, and backward through the frozen weights) as a fraction of the matmul peak."""
    under = UnderIA.load(base, cards, store)
    tok = models.load_tokenizer(base.name_or_path)
    linear = sum(m.weight.numel() for m in under.model.modules() if isinstance(m, torch.nn.Linear))
    cfg = replace(run.cfg.ia, steps=IA_STEPS, warmup_steps=1)
    units = training_units(cards, question_split(cfg.train_templates)[0], cfg)
    lengths = [len(models.encode_chat(tok, c)[0]) for chats in units.values() for c in chats]
    tokens_per_step = cfg.organisms_per_step * cfg.examples_per_organism * sum(lengths) / len(lengths)
    start = time.perf_counter()
    train_ia(under, tok, units, cfg, run.cfg.seed, progress=False, groups=unit_groups(cards, cfg))
    steps_per_s = IA_STEPS / (time.perf_counter() - start)
    gflops = 4 * linear * tokens_per_step * steps_per_s / 1e9
    return {"ia_steps_per_s": round(steps_per_s, 2), "ia_tokens_per_s": round(tokens_per_step * steps_per_s),
            "ia_model_gflops": round(gflops, 1), "ia_fraction_of_matmul_peak": round(gflops / peak, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32, help="organisms in the bench (default 32)")
    parser.add_argument("--sizes", default="1,8,32", help="batch_organisms values to time (default 1,8,32)")
    args = parser.parse_args()
    sizes = sorted({min(int(v), args.batch) for v in args.sizes.split(",")})
    set_threads(None)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = validate(compose("config"))
    run = Run.of(cfg)
    (base,) = ensure(BaseStage(), run, [BaseInput(cfg.model, run.corpus, cfg.seed)])
    run.targets = [t for t in run.targets if t[1].id in set(run.split.train)][: args.batch]
    print(f"{len(run.targets)} organisms, {cfg.organism.steps} steps each, batch_organisms {sizes}, {cores()} cores")
    peak = matmul_peak_gflops()
    speed, cards = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in sizes:
            speed[k], cards[k] = make(run, base, k, Store(Path(tmp) / str(k)))
        ia = ia_speed(run, base, cards[sizes[-1]], Store(Path(tmp) / str(sizes[-1])), peak)
    rates = [(a.check.rate, b.check.rate) for a, b in zip(cards[sizes[0]], cards[sizes[-1]], strict=True)]
    figures = {
        "cores": cores(), "organisms": len(run.targets), "steps": cfg.organism.steps, "batch_size": sizes[-1],
        "organisms_per_s_sequential": round(speed[sizes[0]], 4),
        "organisms_per_s_batched": round(speed[sizes[-1]], 4),
        "speedup": round(speed[sizes[-1]] / speed[sizes[0]], 2),
        "organisms_per_s_by_batch": {k: round(v, 4) for k, v in speed.items()},
        "implanted_sequential": sum(c.check.implanted for c in cards[sizes[0]]),
        "implanted_batched": sum(c.check.implanted for c in cards[sizes[-1]]),
        "mean_abs_rate_difference": round(sum(abs(a - b) for a, b in rates) / len(rates), 4),
        "max_abs_rate_difference": round(max(abs(a - b) for a, b in rates), 4),
        "matmul_peak_gflops": round(peak, 1),
        **ia,
    }
    write_figures("organisms_bench", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
