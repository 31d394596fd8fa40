"""Paired comparison of two runs (two IAs, two recipes) on the organisms both scored: per organism
the difference of a metric, pooled and per family, with a paired bootstrap interval over
organisms, a sign-flip permutation p-value (the family rows' also corrected for being tested
together), and what the comparison could have found (harness/measure/power.py). Pure functions
over report rows."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from harness.core.errors import ConfigError
from harness.core.records import ReportRow
from harness.measure.metrics import REPORT_VALUES, bootstrap_mean, organism_means, shuffled_reports
from harness.measure.power import (
    CORRECTIONS,
    clustered_mde,
    clustered_mean,
    min_detectable_effect,
    organisms_needed,
    sample_sd,
    t_interval,
)

EXACT_UP_TO = 16
"""Organisms up to which the permutation test enumerates every sign flip (2^16); above, it draws."""
PERMUTATIONS = 20000


@dataclass(frozen=True)
class PairedDifference:
    """B minus A on the organisms both scored: the means, the mean of the per-organism differences
    with its paired bootstrap 95% interval, the two-sided sign-flip permutation p-value (and, for a
    family row, corrected over the family rows), the standard deviation of the differences, the
    minimum detectable effect (80% power, 5% two-sided) and the organisms the observed difference
    would need."""

    family: str
    n: int
    a: float
    b: float
    difference: float
    low: float
    high: float
    p: float
    sd: float = math.nan
    mde: float = math.nan
    needed: int | None = None
    p_adjusted: float = math.nan
    clusters: int = 1
    """Run pairs pooled (e.g. one per seed), each a cluster of its organisms' differences."""


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
    e, sd = bootstrap_mean(diffs), sample_sd(diffs)
    p = sign_flip_p(diffs)
    return PairedDifference(family, len(shared), sum(a[o][1] for o in shared) / len(shared),
                            sum(b[o][1] for o in shared) / len(shared), e.value, e.low, e.high, p, sd,
                            min_detectable_effect(sd, len(shared)), organisms_needed(e.value, sd))


def compare(a: Sequence[ReportRow], b: Sequence[ReportRow], metric: str = "verbalization", condition: str = "ia",
            route: str = "lora", correction: str = "holm") -> list[PairedDifference]:
    """Pooled, then per family (in order): B minus A on the organisms both runs scored, the family
    rows' p-values corrected together by `correction` (holm or bh; the pooled row has none);
    ConfigError when they share none."""
    va, vb = pair_values(a, b, metric, condition, route, correction)
    families = [paired(va, vb, f) for f in sorted({va[o][0] for o in va if o in vb})]
    return [paired(va, vb), *corrected(families, correction)]


def pair_values(a: Sequence[ReportRow], b: Sequence[ReportRow], metric: str, condition: str, route: str,
                correction: str) -> tuple[dict[str, tuple[str, float]], dict[str, tuple[str, float]]]:
    """Each run's organism values; ConfigError for an unknown metric or correction, or runs that
    share no organism."""
    if metric not in REPORT_VALUES:
        raise ConfigError(f"--metric must be one of {', '.join(REPORT_VALUES)}, got {metric!r}")
    if correction not in CORRECTIONS:
        raise ConfigError(f"--correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    va, vb = (organism_values(rows, metric, condition, route) for rows in (a, b))
    if not set(va) & set(vb):
        routes = [",".join(sorted({r.route for r in rows if r.model != "base"})) or "none" for rows in (a, b)]
        raise ConfigError(f"the two runs share no organism scored under {condition} ({route}): nothing to pair "
                          f"({len(va)} and {len(vb)} organisms; their routes: {routes[0]} and {routes[1]}, "
                          "--route picks one)")
    return va, vb


def corrected(families: list[PairedDifference], correction: str) -> list[PairedDifference]:
    adjusted = CORRECTIONS[correction]([r.p for r in families])
    return [replace(r, p_adjusted=q) for r, q in zip(families, adjusted, strict=True)]


def pooled_pairs(pairs: Sequence[tuple[dict[str, tuple[str, float]], dict[str, tuple[str, float]]]],
                 family: str = "all") -> PairedDifference:
    """B minus A over several run pairs (e.g. one per seed), each pair's organism differences a
    cluster: their mean with a cluster-robust t interval and p-value (pairs - 1 degrees of freedom)
    and the minimum detectable effect at that error."""
    clusters = [[b[o][1] - a[o][1] for o in a if o in b and (family == "all" or a[o][0] == family)] for a, b in pairs]
    shared = [(a[o][1], b[o][1]) for (a, b) in pairs for o in a if o in b and (family == "all" or a[o][0] == family)]
    g = sum(1 for c in clusters if c)
    if not shared:
        return PairedDifference(family, 0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, clusters=0)
    mean, se = clustered_mean(clusters)
    low, high, p = t_interval(mean, se, g - 1)
    return PairedDifference(family, len(shared), sum(x for x, _ in shared) / len(shared),
                            sum(y for _, y in shared) / len(shared), mean, low, high, p,
                            sample_sd([v for c in clusters for v in c]), clustered_mde(se, g), None, clusters=g)


def compare_pairs(pairs: Sequence[tuple[Sequence[ReportRow], Sequence[ReportRow]]], metric: str = "verbalization",
                  condition: str = "ia", route: str = "lora", correction: str = "holm") -> list[PairedDifference]:
    """`compare` over several run pairs (A1 B1, A2 B2, ...: two recipes at several seeds), pooled
    with each pair as a cluster (`pooled_pairs`); one pair is `compare` itself."""
    if len(pairs) == 1:
        return compare(*pairs[0], metric=metric, condition=condition, route=route, correction=correction)
    values = [pair_values(a, b, metric, condition, route, correction) for a, b in pairs]
    families = sorted({va[o][0] for va, vb in values for o in va if o in vb})
    return [pooled_pairs(values), *corrected([pooled_pairs(values, f) for f in families], correction)]


def against_baseline(reports: Sequence[ReportRow], baseline: str, route: str,
                     metric: str = "verbalization") -> PairedDifference:
    """One run's IA minus one of its baselines, pooled over the held-out organisms of `route` (the
    headline's comparison: what it could have found)."""
    rows = [*reports, *shuffled_reports(reports)]
    return paired(organism_values(rows, metric, baseline, route), organism_values(rows, metric, "ia", route))
