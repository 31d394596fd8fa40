"""Paired comparison of two runs (two IAs, two recipes) on the organisms both scored: per organism
the difference of a metric, pooled and per family, with a paired bootstrap interval over
organisms and a sign-flip permutation p-value. Pure functions over report rows."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from harness.core.errors import ConfigError
from harness.core.records import ReportRow
from harness.measure.metrics import REPORT_VALUES, bootstrap_mean, organism_means

EXACT_UP_TO = 16
"""Organisms up to which the permutation test enumerates every sign flip (2^16); above, it draws."""
PERMUTATIONS = 20000


@dataclass(frozen=True)
class PairedDifference:
    """B minus A on the organisms both scored: the means, the mean of the per-organism differences
    with its paired bootstrap 95% interval, and the two-sided sign-flip permutation p-value."""

    family: str
    n: int
    a: float
    b: float
    difference: float
    low: float
    high: float
    p: float


def organism_values(reports: Sequence[ReportRow], metric: str, condition: str,
                    route: str) -> dict[str, tuple[str, float]]:
    """Per organism of `route` (its behavior id): (family, its mean of `metric` over its reports
    under `condition`); organisms without a report that counts are left out."""
    rows = [r for r in reports if r.condition == condition and r.route == route]
    family = {r.model: r.family for r in rows}
    return {o: (family[o], v) for o, v in organism_means(rows, REPORT_VALUES[metric]).items()}


def sign_flip_p(diffs: Sequence[float], draws: int = PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided p-value of the mean difference under random signs (the organisms' differences are
    symmetric about 0 when A and B do equally well): exact up to EXACT_UP_TO organisms."""
    n = len(diffs)
    observed = abs(sum(diffs)) - 1e-12
    if n <= EXACT_UP_TO:
        flips = itertools.product((1, -1), repeat=n)
        extreme = sum(abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) >= observed for signs in flips)
        return extreme / 2**n
    rng = random.Random(seed)
    extreme = sum(abs(sum(d if rng.random() < 0.5 else -d for d in diffs)) >= observed for _ in range(draws))
    return (extreme + 1) / (draws + 1)


def paired(a: dict[str, tuple[str, float]], b: dict[str, tuple[str, float]], family: str = "all") -> PairedDifference:
    """B minus A on the organisms in both (of `family`, or all)."""
    shared = [o for o in a if o in b and (family == "all" or a[o][0] == family)]
    if not shared:
        return PairedDifference(family, 0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    diffs = [b[o][1] - a[o][1] for o in shared]
    e = bootstrap_mean(diffs)
    return PairedDifference(family, len(shared), sum(a[o][1] for o in shared) / len(shared),
                            sum(b[o][1] for o in shared) / len(shared), e.value, e.low, e.high, sign_flip_p(diffs))


def compare(a: Sequence[ReportRow], b: Sequence[ReportRow], metric: str = "verbalization", condition: str = "ia",
            route: str = "lora") -> list[PairedDifference]:
    """Pooled, then per family (in order): B minus A on the organisms both runs scored; ConfigError
    when they share none."""
    if metric not in REPORT_VALUES:
        raise ConfigError(f"--metric must be one of {', '.join(REPORT_VALUES)}, got {metric!r}")
    va, vb = (organism_values(rows, metric, condition, route) for rows in (a, b))
    if not set(va) & set(vb):
        routes = [",".join(sorted({r.route for r in rows if r.model != "base"})) or "none" for rows in (a, b)]
        raise ConfigError(f"the two runs share no organism scored under {condition} ({route}): nothing to pair "
                          f"({len(va)} and {len(vb)} organisms; their routes: {routes[0]} and {routes[1]}, "
                          "--route picks one)")
    families = sorted({va[o][0] for o in va if o in vb})
    return [paired(va, vb)] + [paired(va, vb, f) for f in families]
