"""Power, the minimum detectable effect and multiple-comparison corrections, against values computed
by hand and by G*Power's paired t-test (dz 0.5, 0.8, 0.2 at 80% power, 5% two-sided: 34, 15, 199
pairs; 34 pairs give power 0.8078)."""

import math

import pytest
from scipy import stats

from harness.measure import power


def test_the_paired_t_tests_power_is_g_powers():
    assert power.power(0.5, 1.0, 34) == pytest.approx(0.80778, abs=1e-4)
    assert [power.organisms_needed(d, 1.0) for d in (0.5, 0.8, 0.2)] == [34, 15, 199]
    assert power.power(0.5, 1.0, 33) < 0.8 <= power.power(0.5, 1.0, 34)  # the first n that reaches 80%


def test_power_is_the_noncentral_t_where_scipy_computes_it():
    t = stats.t.ppf(0.975, 9)
    nc = 0.7 * math.sqrt(10)
    assert power.power(0.7, 1.0, 10) == pytest.approx(stats.nct.sf(t, 9, nc) + stats.nct.cdf(-t, 9, nc), rel=1e-6)
    assert power.power(0.0, 1.0, 10) == pytest.approx(0.05)  # no difference: found at the test's level


def test_the_minimum_detectable_effect_has_the_target_power():
    for sd, n in [(0.3, 8), (1.0, 2), (0.5, 24), (1.0, 1000)]:
        mde = power.min_detectable_effect(sd, n)
        assert power.power(mde, sd, n) == pytest.approx(0.8, abs=1e-6)
    # many organisms: the normal approximation (z_0.975 + z_0.8) sd / sqrt(n)
    assert power.min_detectable_effect(1.0, 1000) == pytest.approx(2.80159 / math.sqrt(1000), rel=2e-3)
    assert power.min_detectable_effect(0.0, 8) == 0.0 and math.isnan(power.min_detectable_effect(1.0, 1))
    assert power.min_detectable_effect(0.3, 16) < power.min_detectable_effect(0.3, 8)


def test_no_difference_needs_no_number_of_organisms():
    assert power.organisms_needed(0.0, 1.0) is None
    assert power.organisms_needed(1e-4, 1.0) is None  # more than any world holds
    assert power.organisms_needed(0.3, 0.0) == 2


def test_holm_and_benjamini_hochberg_by_hand():
    ps = [0.01, 0.04, 0.03, 0.5, math.nan]
    # Holm: sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1, kept non-decreasing
    assert power.holm(ps)[:4] == pytest.approx([0.04, 0.09, 0.09, 0.5])
    # BH: 0.01*4/1, 0.03*4/2, 0.04*4/3, 0.5*4/4, kept non-increasing from the top
    assert power.benjamini_hochberg(ps)[:4] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert math.isnan(power.holm(ps)[4]) and math.isnan(power.benjamini_hochberg(ps)[4])
    assert power.holm([0.2, 0.9]) == pytest.approx([0.4, 0.9]) and power.holm([]) == []


def test_the_clustered_mean_and_its_error_by_hand():
    # three seeds' differences: the mean of all 6, and the error from each seed's summed deviation
    clusters = [[0.5, 0.3], [0.1, 0.1], [0.2, 0.0]]
    mean, se = power.clustered_mean(clusters)
    assert mean == pytest.approx(1.2 / 6)
    sums = [sum(v - 0.2 for v in c) for c in clusters]  # 0.4, -0.2, -0.2
    assert se == pytest.approx(math.sqrt(3 / 2 * sum(s * s for s in sums)) / 6)
    low, high, p = power.t_interval(mean, se, 2)
    assert (low, high) == pytest.approx((mean - stats.t.ppf(0.975, 2) * se, mean + stats.t.ppf(0.975, 2) * se))
    assert p == pytest.approx(2 * stats.t.sf(mean / se, 2))
    # the spread between seeds counts: the same values in one cluster give no error
    assert math.isnan(power.clustered_mean([[0.5, 0.3, 0.1, 0.1, 0.2, 0.0]])[1])
    assert power.clustered_mde(se, 3) == pytest.approx((stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) * se)
