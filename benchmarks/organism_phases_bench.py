"""Benchmark: where a real-model organism's time goes (`preset=real`: SmolLM2-135M-Instruct, or `model=...`).

Makes organisms of every family of `preset=real` (2 a family unless `--per-family N`) into a fresh
store, as the organisms stage makes them (the base model's own answers, base rates, LoRA steps in
batches of `organism.batch_organisms`, implant checks, saving), and tables each phase's wall time
beside its FLOP floor: the tokens it ran forward (counted by the harness) times the FLOPs a token
costs (2 x parameters to read or generate one; 3 x parameters to train on one with LoRA on the upper
half, whose backward stops half-way), at the machine's measured matmul peak in the weights' dtype.
Organisms an hour are over the stage's whole time (the base model's import into the store is timed apart).
Writes outputs/bench/organism_phases_bench.json.

Run: `make bench`, or `python benchmarks/organism_phases_bench.py [--per-family N] [overrides...]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from figures import matmul_flops, write_figures
from hydra import compose, initialize_config_dir

from harness.core import timing
from harness.core.paths import CONF_DIR
from harness.lm.models import resolve_dtype
from harness.run.dag import validate
from harness.run.pipeline import base_name
from harness.run.stage import Run, ensure
from harness.run.stages.base_model import BaseInput, BaseStage
from harness.run.stages.organisms import OrganismsStage
from harness.train.training import cores, set_threads

FLOPS_PER_TOKEN = {"training": 3, "implant data": 2, "base rates": 2, "neutral mix": 2, "implant checks": 2}
"""FLOPs a token costs in each phase, in units of the model's parameters."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-family", type=int, default=2, help="organisms of each family (default 2)")
    parser.add_argument("overrides", nargs="*", help="more config overrides, e.g. organism.batch_organisms=4")
    args = parser.parse_args()
    threads = set_threads(None)
    with tempfile.TemporaryDirectory() as store, initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = validate(compose("config", overrides=["preset=real", f"max_behaviors_per_family={args.per_family}",
                                                    f"cache_dir={store}", "logger=none", *args.overrides]))
        dtype = resolve_dtype(cfg.model.dtype)
        peak = matmul_flops(2048, 2048, 2048, 10, getattr(torch, dtype))
        run = Run.of(cfg)
        start = time.perf_counter()
        base = ensure(BaseStage(), run, [BaseInput(cfg.model, [], cfg.seed)])
        imported = time.perf_counter() - start
        stage = OrganismsStage()
        start = time.perf_counter()
        cards = ensure(stage, run, stage.inputs(run, {"base": base}))
        seconds = time.perf_counter() - start
    params = base[0].n_params
    def floor(name: str) -> float:
        return round(timing.TOKENS.get(name, 0) * FLOPS_PER_TOKEN.get(name, 0) * params / peak, 1)

    phases = [{"phase": name, "seconds": round(s, 1), "share": round(s / seconds, 3),
               "tokens": timing.TOKENS.get(name, 0), "flop_floor_seconds": floor(name)}
              for name, s in sorted(timing.PHASES.items(), key=lambda kv: -kv[1])]
    figures = {"cores": cores(), "threads": threads, "model": base_name(base[0]), "params": params,
               "dtype": dtype, "matmul_gflops": round(peak / 1e9), "overrides": args.overrides,
               "batch_organisms": cfg.organism.batch_organisms, "organisms": len(cards),
               "implanted": sum(c.check.implanted for c in cards),
               "mean_strength": round(sum(c.check.strength for c in cards) / len(cards), 3),
               "strengths": {f"{c.behavior_id} ({c.route})": round(c.check.strength, 3) for c in cards},
               "base_import_seconds": round(imported, 1),
               "stage_seconds": round(seconds, 1), "seconds_per_organism": round(seconds / len(cards), 1),
               "organisms_per_hour": round(3600 * len(cards) / seconds), "phases": phases}
    print(f"{'phase':16s} {'seconds':>8s} {'share':>6s} {'tokens':>9s} {'FLOP floor s':>12s}")
    for p in phases:
        print(f"{p['phase']:16s} {p['seconds']:8.1f} {p['share']:6.1%} {p['tokens']:9d} "
              f"{p['flop_floor_seconds']:12.1f}")
    write_figures("organism_phases_bench", figures, {k: v for k, v in figures.items() if k != "phases"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
