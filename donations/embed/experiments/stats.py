"""The statistics of an A/B test of the ask: a fixed-horizon test, worked out in one place.

The unit is the impression (the embed's counters count views, never readers):
a variant's conversion rate is its gifts divided by the times it was shown.

* **Planned sample** per variant, for a two-sided two-proportion z-test:
  ``n = (z(1-a/2) * sqrt(2 p (1-p)) + z(1-b) * sqrt(p1 (1-p1) + p2 (1-p2)))^2 / (p2-p1)^2``
  with ``p1`` the baseline rate, ``p2 = p1 * (1 + mde)`` (the minimum
  detectable effect, relative), ``p`` their mean, ``a`` alpha and ``1-b`` the
  power. With more than one challenger, alpha is split between them
  (Bonferroni), so each comparison with control runs at ``a / challengers``.
* **Conversion rate** intervals are Wilson score intervals.
* **Revenue per impression** intervals use the normal approximation: every
  impression is a value (0, or the gift's amount), the mean is revenue /
  impressions, its standard error ``s / sqrt(n)`` with ``s`` the sample
  standard deviation over all impressions.
* **No winner before the planned sample**: until every variant still served has
  been shown that many times, the verdict is "not yet". After, a challenger
  wins if a pooled two-proportion z-test against control is significant at the
  (split) alpha and its rate is higher; control wins if every challenger is
  significantly lower.
* **Guardrail**: once a challenger and control have each been shown at least
  the guardrail's minimum, the challenger is stopped when the upper end of its
  Wilson interval is below control's rate times ``1 - margin``: the data say,
  with the test's confidence, that it converts more than the margin worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()


def z_for(alpha: float) -> float:
    """The two-sided critical value: 1.959964 for alpha 0.05."""
    return _NORMAL.inv_cdf(1 - alpha / 2)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson_interval(successes: int, trials: int, z: float) -> Interval | None:
    """The Wilson score interval of ``successes / trials`` (None without trials)."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(
    total: int, total_of_squares: int, trials: int, z: float
) -> tuple[float, Interval] | None:
    """Mean per trial and its normal-approximation interval, from sums over the non-zero values.

    ``total`` and ``total_of_squares`` are the sum and sum of squares of the
    gifts (in minor units); the other ``trials`` minus gifts impressions are 0.
    """
    if trials <= 0:
        return None
    mean = total / trials
    if trials == 1:
        return mean, Interval(mean, mean)
    variance = max(0.0, (total_of_squares - trials * mean * mean) / (trials - 1))
    half = z * math.sqrt(variance / trials)
    return mean, Interval(max(0.0, mean - half), mean + half)


def planned_sample_size(baseline: float, mde: float, alpha: float, power: float) -> int:
    """Impressions per variant to detect a relative lift of ``mde`` over ``baseline``."""
    if not (0 < baseline < 1 and mde > 0 and 0 < alpha < 1 and 0 < power < 1):
        raise ValueError("baseline, alpha and power must be between 0 and 1, mde above 0")
    p1, p2 = baseline, baseline * (1 + mde)
    if p2 >= 1:
        raise ValueError("baseline times (1 + mde) must stay below 1")
    mean = (p1 + p2) / 2
    z_alpha = z_for(alpha)
    z_power = _NORMAL.inv_cdf(power)
    root = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_power * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil(root * root / ((p2 - p1) ** 2))


def split_alpha(alpha: float, challengers: int) -> float:
    """Bonferroni: each comparison with control gets an equal share of alpha."""
    return alpha / max(1, challengers)


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled z-test for ``x2/n2`` against ``x1/n1``."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x2 / n2 - x1 / n1) / se
    return 2 * (1 - _NORMAL.cdf(abs(z)))


def guardrail_breached(
    *,
    control: tuple[int, int],
    challenger: tuple[int, int],
    margin: float,
    minimum: int,
    z: float,
) -> bool:
    """True when the challenger converts more than ``margin`` (relative) below control.

    ``control`` and ``challenger`` are (conversions, impressions). Only once both
    have at least ``minimum`` impressions, and only when the challenger's Wilson
    upper bound is below ``control rate * (1 - margin)``.
    """
    (xc, nc), (xv, nv) = control, challenger
    if nc < max(1, minimum) or nv < max(1, minimum):
        return False
    interval = wilson_interval(xv, nv, z)
    assert interval is not None
    return interval.high < (xc / nc) * (1 - margin)
