"""Statistics of a study: mean, std, the 95% interval of a difference, and a plain verdict.

Method (stated on every table): each variant is trained with n seeds (the same seeds for
every variant, the same training and validation scenes). For a metric, a variant's
mean and sample standard deviation (n - 1) over its seeds; its difference from the full
recipe is mean(variant) - mean(full) with a 95% Welch t interval:

    se = sqrt(s_v^2 / n_v + s_f^2 / n_f),  df = se^4 / ((s_v^2/n_v)^2/(n_v-1) + (s_f^2/n_f)^2/(n_f-1))
    interval = diff -/+ t_{0.975, df} * se

(Welch, not paired by seed: a seed fixes the initial weights and the data order, but a
variant with other heads draws other weights, so seed pairs are not matched units.)
An effect is *resolved* when the interval excludes zero. The verdict compares its sign
with the paper's difference (VOC mAP at IoU 0.5, so it is compared with AP50):
"same direction as the paper", "opposite", or "within noise at this scale" (interval
holds zero). Fewer than 2 seeds on either side: no interval, verdict "one seed: no interval".

The t quantile is computed here (regularised incomplete beta, bisection): no SciPy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

CONFIDENCE = 0.95
METHOD = ("mean ± sample std over seeds; difference from the full recipe with a 95% Welch t interval "
          "(unpaired, Welch–Satterthwaite df); resolved when the interval excludes 0")


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation of n values (std None when n < 2)."""

    n: int
    mean: float | None
    std: float | None


@dataclass(frozen=True)
class Difference:
    """mean(variant) - mean(full) and its 95% Welch t interval (None when a side has < 2 values)."""

    diff: float | None
    low: float | None
    high: float | None
    df: float | None

    @property
    def resolved(self) -> bool:
        """The interval excludes zero."""
        return self.low is not None and (self.low > 0 or self.high < 0)


def summarize(values) -> Summary:
    """Mean and sample std (n - 1) of `values` (finite numbers)."""
    xs = [float(v) for v in values]
    if not xs:
        return Summary(0, None, None)
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return Summary(1, mean, None)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return Summary(len(xs), mean, math.sqrt(var))


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Numerical Recipes' betacf)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` (> 0, need not be whole) degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The `p` quantile (0.5 < p < 1) of Student's t with `df` degrees of freedom."""
    if not (0.5 < p < 1.0) or not df > 0:
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df > 0, got p={p}, df={df}")
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return 0.5 * (lo + hi)


def welch_difference(variant: Summary, full: Summary, confidence: float = CONFIDENCE) -> Difference:
    """mean(variant) - mean(full) with its Welch t interval (module docstring)."""
    if variant.mean is None or full.mean is None:
        return Difference(None, None, None, None)
    diff = variant.mean - full.mean
    if variant.std is None or full.std is None:
        return Difference(diff, None, None, None)
    a, b = variant.std ** 2 / variant.n, full.std ** 2 / full.n
    se = math.sqrt(a + b)
    if se == 0.0:
        return Difference(diff, diff, diff, math.inf)
    df = (a + b) ** 2 / (a * a / (variant.n - 1) + b * b / (full.n - 1))
    half = t_quantile(0.5 + confidence / 2.0, df) * se
    return Difference(diff, diff - half, diff + half, df)


def verdict(d: Difference, paper_diff: float | None) -> str:
    """A plain verdict on a difference (module docstring)."""
    if d.diff is None:
        return "no result yet"
    if d.low is None:
        return "one seed: no interval"
    if not d.resolved:
        return "within noise at this scale"
    if paper_diff is None:
        return "resolved: higher than the full recipe" if d.diff > 0 else "resolved: lower than the full recipe"
    if paper_diff == 0:
        return "resolved; the paper saw no change"
    return "same direction as the paper" if (d.diff > 0) == (paper_diff > 0) else "opposite"
