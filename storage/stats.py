"""How sure a criterion's number is: intervals, comparisons and verdicts from counts.

SQL returns counts (successes out of n, or the values at a few ranks); everything here is a pure
function of those counts, standard library only. Confidence is a two-sided level such as 0.95.

- Shares get a Wilson score interval (`wilson_interval`).
- Percentiles get a distribution-free interval between two order statistics: the ranks come from
  `percentile_rank_interval`, the values at those ranks from SQL.
- Two periods' shares are compared with the pooled two-proportion z-test; two percentiles differ
  when their intervals do not overlap.
- `judge` says met / missed / uncertain: uncertain when the target lies inside the interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from itertools import accumulate
from statistics import NormalDist
from typing import Literal

Direction = Literal[">=", "<=", ">", "<"]
Judgement = Literal["met", "missed", "uncertain"]

EXACT_MAX_N = 1000
NORMAL_MIN_VARIANCE = 25.0
"""Up to n = EXACT_MAX_N the order-statistic interval uses the exact binomial distribution; above
it, the normal approximation with continuity correction (O(1) per rank instead of O(n) big-integer
steps; its ranks are the exact ones or one off). Except while n·q·(1-q) < NORMAL_MIN_VARIANCE
(p99.9 below 25,000 values): there the binomial is too skewed for the normal curve (95% intervals
covered as little as 94%), and the exact sum stays cheap because it only needs the few dozen ranks
next to the end where the mass is."""

_STANDARD = NormalDist()


@dataclass(frozen=True)
class Interval:
    """A closed interval [low, high]: a share's plausible values, or a percentile's (in ms).

    `above(x)` and `below(x)` are inclusive on purpose: they answer "does every plausible value
    satisfy `>= x`" (`<= x`), which is what meeting a target stated as `>= 0.92` means. So at an
    end, `contains(x)` and `above(x)` (or `below(x)`) are both true.
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low <= self.high:  # also refuses NaN
            raise ValueError(f"an interval needs low <= high, got [{self.low}, {self.high}]")

    def contains(self, x: float) -> bool:
        """low <= x <= high."""
        return self.low <= x <= self.high

    def above(self, x: float) -> bool:
        """The whole interval is at or above x: low >= x."""
        return self.low >= x

    def below(self, x: float) -> bool:
        """The whole interval is at or below x: high <= x."""
        return self.high <= x


@dataclass(frozen=True)
class Comparison:
    """Period 1 against period 2: p1 - p2, its z score and two-sided p-value."""

    difference: float
    z: float
    p_value: float
    significant: bool


def _z(confidence: float) -> float:
    """The two-sided critical value: 1.96 for 0.95."""
    _check_confidence(confidence)
    return _STANDARD.inv_cdf(1 - (1 - confidence) / 2)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")


def _check_count(successes: int, n: int) -> None:
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")


# ---------------------------------------------------------------------------------------------
# Shares


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval for the share successes / n.

    Wilson rather than the textbook normal (Wald) interval p ± z·sqrt(p(1-p)/n): Wald leaves
    [0, 1] near the extremes, collapses to a single point at 0 or n successes (40 of 40 would be
    "certainly 100%"), and covers far less often than it claims at small n or shares near 0 or 1,
    which is exactly where success criteria live (92%, 99%). Wilson inverts the score test instead,
    stays in [0, 1] and keeps close to its nominal coverage there. No data: [0, 1].
    """
    _check_count(successes, n)
    z = _z(confidence)
    if n == 0:
        return Interval(0.0, 1.0)
    p = successes / n
    z2_n = z * z / n
    center = (p + z2_n / 2) / (1 + z2_n)
    half = z / (1 + z2_n) * math.sqrt(p * (1 - p) / n + z2_n / (4 * n))
    # Exact ends at 0 and n successes, and p inside despite rounding when z is tiny.
    low = 0.0 if successes == 0 else min(p, max(0.0, center - half))
    high = 1.0 if successes == n else max(p, min(1.0, center + half))
    return Interval(low, high)


def two_proportion_test(s1: int, n1: int, s2: int, n2: int, confidence: float = 0.95) -> Comparison:
    """Is s1/n1 different from s2/n2 beyond noise? The pooled two-proportion z-test.

    Pooled because the question is "could both periods share one rate?": under that hypothesis
    the best estimate of the common rate is (s1 + s2) / (n1 + n2), and the standard error follows
    from it. Significant when the two-sided p-value is below 1 - confidence. An empty period, or
    a rate of exactly 0 or 1 in both, is no evidence of a difference.
    """
    _check_count(s1, n1)
    _check_count(s2, n2)
    _check_confidence(confidence)
    if n1 == 0 or n2 == 0:
        return Comparison(difference=0.0, z=0.0, p_value=1.0, significant=False)
    difference = s1 / n1 - s2 / n2
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return Comparison(difference=difference, z=0.0, p_value=1.0, significant=False)
    z = difference / se
    p_value = 2 * _STANDARD.cdf(-abs(z))
    return Comparison(
        difference=difference, z=z, p_value=p_value, significant=p_value < 1 - confidence
    )


# ---------------------------------------------------------------------------------------------
# Percentiles


def nearest_rank(n: int, q: float) -> int:
    """The 1-based rank of the q-quantile's point estimate among n sorted values: ceil(q·n), at
    least 1. Exact (q through its decimal string, so 0.07 · 100 is 7, not 8), like
    storage.criteria.nearest_rank, which takes a percentage."""
    if not 0 <= q <= 1:
        raise ValueError(f"q must be within [0, 1], got {q}")
    exact = Fraction(str(q))
    return max(1, -((-n * exact.numerator) // exact.denominator))


def percentile_rank_interval(n: int, q: float, confidence: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks (l, u) with P(X_(l) <= ξ_q <= X_(u)) >= confidence, or None if n is too small.

    Distribution-free: whatever the latencies' distribution, the number B of the n values below
    the true q-quantile ξ_q is Binomial(n, q), and [X_(l), X_(u)] misses ξ_q below with
    probability L(l) = P(B <= l - 1) and above with U(u) = P(B >= u). (Exactly so for continuous
    values; ties only raise the coverage.) So the interval costs one more SQL rank lookup, no
    assumption about the distribution.

    Equal-tailed, as symmetric in probability as the discreteness allows: with alpha = 1 -
    confidence, l is the highest rank with L(l) <= alpha/2 and u the lowest with U(u) <= alpha/2,
    so moving either end one rank inward would put more than alpha/2 on that side. When even the
    sample's extreme leaves more than alpha/2 on one side (small n, q near 0 or 1), that end is the
    extreme (rank 1 or n) and the other end gets the rest of alpha. None when even [X_(1), X_(n)]
    covers less than `confidence`.
    The ranks always include nearest_rank(n, q) (the binomial median lies within 1 of n·q).

    The binomial CDF is exact (math.comb) up to EXACT_MAX_N and whenever n·q·(1-q) is below
    NORMAL_MIN_VARIANCE; otherwise it is the normal approximation with continuity correction.
    """
    _check_confidence(confidence)
    if not 0 < q < 1:
        raise ValueError(f"q must be strictly between 0 and 1, got {q}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n == 0:
        return None
    exact = n <= EXACT_MAX_N or n * q * (1 - q) < NORMAL_MIN_VARIANCE
    return _ranks(n, q, confidence, _binomial_cdf(n, q) if exact else _normal_cdf(n, q))


def _ranks(
    n: int, q: float, confidence: float, cdf: Callable[[int], float]
) -> tuple[int, int] | None:
    alpha = 1 - confidence
    # Exact at any n: the normal approximation is poorest at the extremes, where None is decided.
    below_first = (1 - q) ** n  # L(1): even the smallest value is above ξ_q
    above_last = q**n  # U(n): even the largest value is below ξ_q
    if below_first + above_last > alpha:
        return None
    if below_first > alpha / 2:
        return 1, _upper_rank(n, cdf, alpha - below_first)
    if above_last > alpha / 2:
        return _lower_rank(n, cdf, alpha - above_last), n
    return _lower_rank(n, cdf, alpha / 2), _upper_rank(n, cdf, alpha / 2)


def significantly_different_percentiles(a: Interval, b: Interval) -> bool:
    """Two percentiles differ beyond noise when their intervals do not overlap (touching ends
    overlap). Conservative: for roughly normal estimates, two 95% intervals that just miss each
    other mean a difference at about the 0.5% level, so "different" is said only when it is clear.
    """
    return a.high < b.low or b.high < a.low


def _lower_rank(n: int, cdf: Callable[[int], float], budget: float) -> int:
    """The highest l in 1..n with L(l) = cdf(l - 1) <= budget (the caller knows l = 1 fits)."""
    lo, hi = 1, n  # cdf(lo - 1) <= budget throughout
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cdf(mid - 1) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _upper_rank(n: int, cdf: Callable[[int], float], budget: float) -> int:
    """The lowest u in 1..n with U(u) = 1 - cdf(u - 1) <= budget (the caller knows u = n fits)."""
    lo, hi = 1, n  # 1 - cdf(hi - 1) <= budget throughout
    while lo < hi:
        mid = (lo + hi) // 2
        if 1 - cdf(mid - 1) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _binomial_cdf(n: int, q: float) -> Callable[[int], float]:
    """P(B <= j) for B ~ Binomial(n, q), exact to float precision.

    Sums the probabilities from the nearer end (q <= 0.5) up to 12 standard deviations and 20
    values past the mean, beyond which the rest is far below float precision: at most n + 1
    terms for small n, a few dozen when n is large but q so close to 0 or 1 that the normal
    approximation is not used.
    """
    if q > 0.5:  # count from the other end: P(B <= j) = 1 - P(n - B <= n - j - 1)
        mirror = _binomial_cdf(n, 1 - q)
        return lambda j: 1 - mirror(n - j - 1)
    last = min(n, math.ceil(n * q + 12 * math.sqrt(n * q * (1 - q)) + 20))
    log_q, log_1q = math.log(q), math.log1p(-q)
    pmf: list[float] = []
    comb = 1  # math.comb(n, i), kept exact as i grows
    for i in range(last + 1):
        pmf.append(math.exp(math.log(comb) + i * log_q + (n - i) * log_1q))
        comb = comb * (n - i) // (i + 1)
    table = list(accumulate(pmf))
    return lambda j: 0.0 if j < 0 else min(1.0, table[min(j, last)])


def _normal_cdf(n: int, q: float) -> Callable[[int], float]:
    """P(B <= j) ≈ Φ((j + 0.5 - n·q) / sd): the normal approximation, continuity-corrected
    (B <= j is B < j + 1, and the half-way point is the fair cut for a discrete count)."""
    mean, sigma = n * q, math.sqrt(n * q * (1 - q))
    return lambda j: _STANDARD.cdf((j + 0.5 - mean) / sigma)


# ---------------------------------------------------------------------------------------------
# Verdicts


def judge(interval: Interval, target: float, direction: Direction) -> Judgement:
    """met when every value in the interval meets the target, missed when none does, uncertain
    when the target lies inside (some plausible values meet it, some do not).

    Ends follow the target's own comparison: for `>= 0.92`, an interval starting at exactly 0.92
    is met; for `> 0.92` it is uncertain.
    """
    low, high = interval.low, interval.high
    if direction == ">=":
        met, missed = low >= target, high < target
    elif direction == ">":
        met, missed = low > target, high <= target
    elif direction == "<=":
        met, missed = high <= target, low > target
    elif direction == "<":
        met, missed = high < target, low >= target
    else:
        raise ValueError(f"unknown direction {direction!r}")
    if met:
        return "met"
    if missed:
        return "missed"
    return "uncertain"
