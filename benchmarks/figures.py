"""What the benchmarks share: where their figures go, and the machine's matmul throughput."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

OUT = Path("outputs/bench")


def matmul_flops(m: int, k: int, n: int, repeat: int = 50, dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of a [m, k] @ [k, n] matmul (float32 unless `dtype`) on this machine (after one warm-up)."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * m * k * n * repeat / (time.perf_counter() - start)


def write_figures(name: str, figures: dict, shown: dict | None = None) -> Path:
    """Write `outputs/bench/<name>.json`, print the figures (or `shown`) and where they went."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures if shown is None else shown, indent=2))
    print(f"written to {path}")
    return path
