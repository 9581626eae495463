"""Statistics of weighted worlds: quantiles, means with their standard errors on the effective
count of worlds (Kish), ranks and rank correlations; worlds without a value (NaN) left out.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "weighted_correlation",
    "weighted_mean",
    "weighted_mean_se",
    "weighted_quantile",
    "weighted_ranks",
]


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q) -> np.ndarray:
    """Quantiles ``q`` of ``values`` under ``weights`` (the inverse of the weighted CDF, with
    each value at the middle of its weight: equal weights give numpy's 'hazen' quantiles)."""
    values, weights = np.asarray(values, float), np.asarray(weights, float)
    keep = np.isfinite(values) & (weights > 0)
    values, weights = values[keep], weights[keep]
    if len(values) == 0:
        return np.full(np.shape(q), np.nan)
    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    middle = (np.cumsum(weights) - weights / 2) / weights.sum()
    return np.interp(q, middle, values)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """The mean of ``values`` under ``weights`` over the worlds where the value is defined
    (not NaN, such as a mean time to reach a stage some worlds never reach), the weights
    renormalized there; and the share of the weight those worlds hold. With equal weights,
    pandas' ``mean()``. NaN, and a share of 0, where no world defines it."""
    values, weights = np.asarray(values, float), np.asarray(weights, float)
    defined = ~np.isnan(values) & (weights > 0)
    kept = float(weights[defined].sum())
    if not kept > 0.0:
        return math.nan, 0.0
    x = values[defined]
    mean = np.dot(weights[defined], x) / kept  # kept to the values' range against rounding
    return float(np.clip(mean, x.min(), x.max())), kept / float(weights.sum())


def weighted_mean_se(values: np.ndarray, weights: np.ndarray) -> tuple[float, float, float]:
    """The weighted mean of ``values``, its standard error and the effective count.

    The standard error is sqrt(sum w^2 (x - mean)^2) with the weights normalized, times
    Bessel's correction n / (n - 1) for the effective count n = (sum w)^2 / sum w^2; with
    equal weights, the sample standard deviation over sqrt(n). NaN from fewer than two
    effective units; all NaN (and a count of 0) when the weights sum to 0.
    """
    total = float(np.sum(weights))
    if not total > 0:
        return math.nan, math.nan, 0.0
    w = np.asarray(weights, float) / total
    mean = float(np.dot(w, values))
    effective = 1.0 / float(np.dot(w, w))
    if effective <= 1.0:
        return mean, math.nan, effective
    spread = float(np.dot(w * w, (np.asarray(values, float) - mean) ** 2))
    return mean, math.sqrt(spread * effective / (effective - 1.0)), effective


def weighted_ranks(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mid-ranks under weights: the weight below each value plus half the weight at it (ties
    share it), so a world of weight 2 ranks as two copies and one of weight 0 moves no rank.
    With equal weights, a linear function of the usual average ranks."""
    distinct, group_of = np.unique(x, return_inverse=True)
    at = np.bincount(group_of, weights=weights, minlength=len(distinct))
    return (np.cumsum(at) - at / 2)[group_of]


def weighted_correlation(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """Pearson's correlation of ``x`` and ``y`` under ``weights`` (summing to 1); NaN when
    either is constant."""
    dx, dy = x - np.dot(weights, x), y - np.dot(weights, y)
    scale = math.sqrt(np.dot(weights, dx * dx) * np.dot(weights, dy * dy))
    return float(np.dot(weights, dx * dy) / scale) if scale > 0 else math.nan
