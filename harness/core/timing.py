"""Wall time and tokens by phase, summed over a process: where a stage spends its time (the
organisms stage prints it; `benchmarks/organism_phases_bench.py` tables it beside each phase's
FLOP floor)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

PHASES: dict[str, float] = {}
"""Seconds by phase name, summed since the process started or `reset()`."""
TOKENS: dict[str, int] = {}
"""Tokens a model ran forward (trained on, or read and generated) by phase name, likewise."""
_open: list[str] = []


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Add the wall time of the block to `PHASES[name]` (also when it fails); tokens counted
    inside it go to the innermost open phase."""
    start = time.perf_counter()
    _open.append(name)
    try:
        yield
    finally:
        _open.pop()
        PHASES[name] = PHASES.get(name, 0.0) + time.perf_counter() - start


def count_tokens(n: int) -> None:
    """Count `n` tokens a model ran forward for the innermost open phase (none open: not counted)."""
    if _open:
        TOKENS[_open[-1]] = TOKENS.get(_open[-1], 0) + n


def reset() -> None:
    PHASES.clear()
    TOKENS.clear()


def summary(phases: dict[str, float]) -> str:
    """`training 61 s, implant checks 12 s`: the phases, longest first."""
    return ", ".join(f"{name} {seconds:.0f} s" for name, seconds in sorted(phases.items(), key=lambda kv: -kv[1]))
