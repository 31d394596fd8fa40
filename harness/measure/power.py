"""What a comparison over organisms could have found, and which of many comparisons survive being
made at once. Pure functions.

Power is the paired t-test's (the usual planning approximation for the paired differences that
`harness compare` tests with sign flips): a true mean difference `d` between two conditions, with
paired differences of standard deviation `sd` over `n` organisms, is found at two-sided level
`alpha` with probability P(|T| > t_crit), T noncentral t with n - 1 degrees of freedom and
noncentrality d * sqrt(n) / sd (integrated with scipy). Corrections: Holm's step-down (family-wise
error) and Benjamini-Hochberg's step-up (false discovery rate, scipy.stats.false_discovery_control).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import integrate, optimize, stats

ALPHA = 0.05
POWER = 0.8
MAX_ORGANISMS = 100_000
"""The most organisms `organisms_needed` searches up to (beyond: None, "more than any world")."""


def power(difference: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """The probability that a two-sided paired t-test at level `alpha` finds a true mean difference
    `difference` with n organisms whose paired differences have standard deviation `sd`."""
    if n < 2:
        return math.nan
    if sd == 0:
        return 1.0 if difference else alpha
    df, nc = n - 1, abs(difference) * math.sqrt(n) / sd
    t = stats.t.ppf(1 - alpha / 2, df)
    # T = (Z + nc) / S with S = sqrt(chi2(df) / df): integrated over S (scipy's nct returns NaN for
    # few degrees of freedom and a large noncentrality)
    def rejected(s: float) -> float:
        return (stats.norm.cdf(-t * s - nc) + stats.norm.sf(t * s - nc)) * stats.chi.pdf(s * math.sqrt(df), df) \
            * math.sqrt(df)

    return min(1.0, float(integrate.quad(rejected, 0, math.inf, limit=200)[0]))


def min_detectable_effect(sd: float, n: int, alpha: float = ALPHA, target: float = POWER) -> float:
    """The smallest true mean difference found with probability `target` (NaN below two organisms;
    0 when every paired difference is the same)."""
    if n < 2:
        return math.nan
    if sd == 0:
        return 0.0
    high = sd / math.sqrt(n)
    while power(high, sd, n, alpha) < target:  # power grows with the difference: bracket the root
        high *= 2
    return float(optimize.brentq(lambda d: power(d, sd, n, alpha) - target, 0.0, high, xtol=1e-9))


def organisms_needed(difference: float, sd: float, alpha: float = ALPHA, target: float = POWER) -> int | None:
    """The fewest organisms with which a true mean difference `difference` (paired differences of
    standard deviation `sd`) is found with probability `target`; None for no difference, or when
    more than MAX_ORGANISMS would be needed."""
    if not difference or math.isnan(difference) or math.isnan(sd):
        return None
    if sd == 0:
        return 2
    if power(difference, sd, MAX_ORGANISMS, alpha) < target:
        return None
    low, high = 2, MAX_ORGANISMS  # power grows with n: the first n that reaches the target
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if power(difference, sd, mid, alpha) < target else (low, mid)
    return low


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error over the given tests), in input order;
    NaN stays NaN and is not counted."""
    ranked = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m, out, running = len(ranked), [math.nan] * len(p_values), 0.0
    for k, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (m - k) * p))
        out[i] = running
    return out


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), in input order; NaN stays NaN
    and is not counted."""
    kept = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    out = [math.nan] * len(p_values)
    if kept:
        for i, q in zip(kept, stats.false_discovery_control([p_values[i] for i in kept]), strict=True):
            out[i] = float(q)
    return out


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg}
"""p-value corrections by name (`harness compare --correction`)."""


def sample_sd(values: Sequence[float]) -> float:
    """The sample standard deviation (n - 1); NaN below two values."""
    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def clustered_mean(clusters: Sequence[Sequence[float]]) -> tuple[float, float]:
    """The mean of every value of every cluster (e.g. each seed's per-organism differences) and its
    cluster-robust standard error, sqrt(G / (G - 1) * sum_g (sum_i (x_gi - mean))^2) / N over G
    clusters and N values: the spread between clusters counts, as organisms of one seed share its
    split and training. NaN error below two clusters."""
    values = [v for c in clusters for v in c]
    g, n = sum(1 for c in clusters if c), len(values)
    if not n:
        return math.nan, math.nan
    mean = sum(values) / n
    if g < 2:
        return mean, math.nan
    spread = sum(sum(v - mean for v in c) ** 2 for c in clusters)
    return mean, math.sqrt(g / (g - 1) * spread) / n


def t_interval(mean: float, se: float, df: int, alpha: float = ALPHA) -> tuple[float, float, float]:
    """(low, high, two-sided p-value against 0) of a mean with standard error `se` on `df` degrees
    of freedom (Student t); NaN without an error."""
    if math.isnan(se) or df < 1:
        return math.nan, math.nan, math.nan
    half = stats.t.ppf(1 - alpha / 2, df) * se
    p = 1.0 if se == 0 and mean == 0 else 0.0 if se == 0 else float(2 * stats.t.sf(abs(mean) / se, df))
    return mean - half, mean + half, p


def clustered_mde(se: float, clusters: int, alpha: float = ALPHA, target: float = POWER) -> float:
    """The smallest true mean difference found with probability `target` by a t-test on a clustered
    mean with standard error `se` over `clusters` clusters (the normal-shift approximation with t
    quantiles: (t_{1-alpha/2} + t_{target}) * se on clusters - 1 degrees of freedom)."""
    if math.isnan(se) or clusters < 2:
        return math.nan
    df = clusters - 1
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(target, df)) * se)
