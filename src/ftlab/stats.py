"""Intervals for comparing strategies over seeds: the mean with its 95 % confidence
interval, and paired differences (same seeds), whose interval covering zero means "not
distinguishable at this budget".

Student's t, because a comparison has few seeds (3 by default), where the normal quantile
would give intervals a third too narrow. The two-sided 95 % quantiles are tabulated (no
SciPy); between tabulated degrees of freedom the next smaller one is used, which errs wide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
       17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021,
       60: 2.000, 120: 1.980}
"""Two-sided 95 % quantiles of Student's t by degrees of freedom."""
Z95 = 1.960


@dataclass(frozen=True)
class Interval:
    """A mean and the half-width of its 95 % confidence interval (None from one value)."""

    mean: float
    half_width: float | None
    n: int

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width

    def covers(self, value: float) -> bool:
        """Whether `value` lies inside the interval (always, when there is none)."""
        return self.half_width is None or abs(value - self.mean) <= self.half_width

    def format(self, digits: int = 1) -> str:
        if self.half_width is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def t95(degrees: int) -> float:
    """The two-sided 95 % quantile of Student's t with `degrees` degrees of freedom."""
    if degrees < 1:
        raise ValueError("a t quantile needs at least one degree of freedom")
    if degrees > max(T95):
        return Z95
    return T95[max(d for d in T95 if d <= degrees)]


def mean_interval(values: Sequence[float]) -> Interval:
    """The mean of `values` with its 95 % t interval."""
    if not values:
        raise ValueError("no values to average")
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return Interval(mean, None, n)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return Interval(mean, t95(n - 1) * math.sqrt(variance / n), n)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float]) -> Interval:
    """Mean of a - b over the seeds both have, with its 95 % t interval: the seed's share of
    the noise (split and initialisation) cancels, so gaps show with fewer seeds."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("the two strategies share no seed")
    return mean_interval([a[s] - b[s] for s in seeds])
