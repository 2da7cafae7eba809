"""The A/B test's statistics against values worked out by hand (shown in the comments)."""

from __future__ import annotations

import math

import pytest

from donations.embed.experiments import stats

Z95 = 1.959964


def test_critical_values() -> None:
    assert stats.z_for(0.05) == pytest.approx(Z95, abs=1e-6)
    assert stats.z_for(0.025) == pytest.approx(2.241403, abs=1e-6)


def test_wilson_interval_by_hand() -> None:
    # 20 of 1000, z = 1.959964: z^2 = 3.841459, denominator 1 + z^2/n = 1.003841459,
    # centre (0.02 + 0.0019207) / 1.0038415 = 0.0218368,
    # half  z * sqrt(0.02 * 0.98 / 1000 + z^2 / 4e6) / 1.0038415 = 0.0088532.
    interval = stats.wilson_interval(20, 1000, Z95)
    assert interval is not None
    assert interval.low == pytest.approx(0.012984, abs=2e-6)
    assert interval.high == pytest.approx(0.030690, abs=2e-6)
    # 0 of 50: low is 0, high z^2/n / (1 + z^2/n) = 0.076830 / 1.076830 = 0.071348.
    none = stats.wilson_interval(0, 50, Z95)
    assert none is not None
    assert none.low == 0
    assert none.high == pytest.approx(0.071348, abs=2e-6)
    # 50 of 100 is symmetric around 0.5: half = 1.96 * sqrt(0.0025 + 0.000096) / 1.038415.
    half = stats.wilson_interval(50, 100, Z95)
    assert half is not None
    assert (half.low, half.high) == (
        pytest.approx(0.403832, abs=2e-6),
        pytest.approx(0.596168, abs=2e-6),
    )
    assert stats.wilson_interval(0, 0, Z95) is None


def test_planned_sample_size_by_hand() -> None:
    # 10 % baseline, +20 % (12 %), alpha 0.05, power 0.8: p = 0.11,
    # (1.959964 * sqrt(2 * 0.11 * 0.89) + 0.841621 * sqrt(0.09 + 0.1056))^2 / 0.02^2
    # = (0.867270 + 0.372222)^2 / 0.0004 = 3840.85 -> 3841 per variant.
    assert stats.planned_sample_size(0.10, 0.20, 0.05, 0.80) == 3841
    # 2 % baseline, +20 % (2.4 %): (1.959964 * 0.207442 + 0.841621 * 0.207422)^2 / 0.004^2
    # = 0.581150^2 / 0.000016 = 21108.4 -> 21109.
    assert stats.planned_sample_size(0.02, 0.20, 0.05, 0.80) == 21109
    # Two challengers split alpha: 0.025 each, z = 2.241403:
    # (2.241403 * 0.207442 + 0.174571)^2 / 0.000016 = 0.639529^2 / 0.000016 = 25562.3 -> 25563.
    assert stats.planned_sample_size(0.02, 0.20, stats.split_alpha(0.05, 2), 0.80) == 25563
    for bad in [
        (0, 0.2, 0.05, 0.8),
        (0.5, 1.0, 0.05, 0.8),
        (0.1, 0, 0.05, 0.8),
        (0.1, 0.2, 1, 0.8),
    ]:
        with pytest.raises(ValueError, match="must"):
            stats.planned_sample_size(*bad)


def test_revenue_per_impression_normal_approximation() -> None:
    # 1000 impressions, 10 gifts of 1000 cents: mean 10 cents,
    # s^2 = (10 * 1000^2 - 1000 * 10^2) / 999 = 9 900 000 / 999 = 9909.91,
    # half = 1.959964 * sqrt(9909.91 / 1000) = 1.959964 * 3.148001 = 6.169968.
    found = stats.mean_interval(10_000, 10 * 1000**2, 1000, Z95)
    assert found is not None
    mean, interval = found
    assert mean == 10
    assert interval.low == pytest.approx(10 - 6.169968, abs=1e-5)
    assert interval.high == pytest.approx(10 + 6.169968, abs=1e-5)
    assert stats.mean_interval(0, 0, 0, Z95) is None


def test_two_proportion_test_by_hand() -> None:
    # 100/5000 against 140/5000: pooled 0.024, se sqrt(0.024 * 0.976 * 2 / 5000) = 0.0030610,
    # z = 0.008 / 0.0030610 = 2.61354, two-sided p = 2 * (1 - Phi(2.61354)) = 0.008961.
    assert stats.two_proportion_p_value(100, 5000, 140, 5000) == pytest.approx(0.008961, abs=2e-5)
    assert stats.two_proportion_p_value(0, 0, 1, 10) == 1.0


def test_guardrail_by_hand() -> None:
    # Control 100/5000 = 2 %; a 20 % margin draws the line at 1.6 %.
    # z^2/n = 3.841459 / 5000 = 0.00076829, denominator 1.00076829.
    # 50/5000: centre 0.010384146 / 1.00076829 = 0.01037617,
    #   half 1.959964 * sqrt(0.01 * 0.99 / 5000 + z^2 / 1e8) / 1.00076829 = 0.00278240,
    #   high 0.013159 < 0.016 -> stop.
    # 70/5000: centre 0.014384146 / 1.00076829 = 0.01437310, half 0.00327668,
    #   high 0.017650 > 0.016 -> keep (worse, but not surely by more than the margin).
    def breached(x: int, n: int = 5000, minimum: int = 1000) -> bool:
        return stats.guardrail_breached(
            control=(100, 5000), challenger=(x, n), margin=0.2, minimum=minimum, z=Z95
        )

    high_50 = stats.wilson_interval(50, 5000, Z95)
    high_70 = stats.wilson_interval(70, 5000, Z95)
    assert high_50 is not None
    assert high_70 is not None
    assert high_50.high == pytest.approx(0.013159, abs=2e-6)
    assert high_70.high == pytest.approx(0.017650, abs=2e-6)
    assert breached(50)
    assert not breached(70)
    assert not breached(120)
    # Not before both have the minimum: 0 of 999 is still no reason to stop.
    assert not breached(0, n=999)
    assert not breached(50, minimum=5001)
    assert math.isclose(0.02 * (1 - 0.2), 0.016)
