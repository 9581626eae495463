"""What moves a metric across worlds: per parameter, the metric's mean over the worlds in the
lowest fifth of that parameter against the highest fifth (the swing, with its standard error),
Spearman's rank correlation, and whether the swing stands out from the noise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import t as t_dist

from escalate.analysis.weights import weighted_correlation, weighted_mean_se, weighted_ranks
from escalate.errors import EscalateError

__all__ = ["DRIVER_COLUMNS", "DRIVER_FRACTION", "MIN_DRIVER_WORLDS", "MIN_END_WORLDS", "drivers"]


# drivers compare the worlds in the lowest and the highest fifth of each parameter
DRIVER_FRACTION = 0.2


DRIVER_COLUMNS = ["low", "high", "swing", "swing_se", "rank_correlation", "clear"]


MIN_END_WORLDS = 5  # effective worlds at each end before a swing may be called clear


# fewer worlds than give MIN_END_WORLDS at each end: no table of drivers, a sentence says so
MIN_DRIVER_WORLDS = math.ceil(MIN_END_WORLDS / DRIVER_FRACTION)


def drivers(
    parameters: pd.DataFrame,
    values: np.ndarray,
    weights: np.ndarray | None = None,
    fraction: float = DRIVER_FRACTION,
) -> pd.DataFrame:
    """Which parameters move a metric across worlds, most first.

    For each parameter that varies: the weighted mean of ``values`` over the worlds that
    hold the lowest ``fraction`` of the weight by that parameter (``low``) and over those
    that hold the highest (``high``), and their difference ``swing``, ranked by ``|swing|``:
    what a reader sees, "war is 14% where X is low and 38% where it is high". Worlds that
    tie on a value share the fifth's edge equally (no row order decides), and a world on the
    edge counts with the part of its weight inside.

    Parameters
    ----------
    parameters : pandas.DataFrame
        One row per world, a column per parameter.
    values : numpy.ndarray
        The metric in each world; worlds where it is NaN (a time to reach never reached) are
        left out.
    weights : numpy.ndarray, optional
        The worlds' weights (default: equal).
    fraction : float
        The share of weight at each end, in (0, 0.5]; a fifth by default.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``parameter``: ``low``, ``high``, ``swing``; ``swing_se``, the swing's
        standard error from the spread of the worlds at each end; ``rank_correlation``,
        Spearman's (weighted mid-ranks: a world of weight 2 ranks as two copies); and
        ``clear``, whether the swing stands out from the noise: beyond the Welch t quantile at
        0.05 split over all parameters (Bonferroni), with at least ``MIN_END_WORLDS``
        effective worlds at each end.
    """
    if not 0.0 < fraction <= 0.5:
        raise EscalateError(f"fraction must be in (0, 0.5], got {fraction:g}")
    values = np.asarray(values, dtype=float)
    weights = np.full(len(values), 1.0) if weights is None else np.asarray(weights, float)
    known = np.isfinite(values) & (weights > 0)
    values, weights = values[known], weights[known]
    rows = {}
    if len(values):
        varied = [n for n in parameters if np.ptp(parameters[n].to_numpy(float)[known]) > 0]
        weights = weights / weights.sum()
        cutoff_level = 1.0 - 0.025 / max(len(varied), 1)  # two-sided 5%, over every parameter
        value_ranks = weighted_ranks(values, weights)
        for name in varied:
            x = parameters[name].to_numpy(float)[known]
            low_weights, high_weights = _end_weights(x, weights, fraction)
            mean_low, se_low, count_low = weighted_mean_se(values, low_weights)
            mean_high, se_high, count_high = weighted_mean_se(values, high_weights)
            swing_se = math.hypot(se_low, se_high)
            clear = False
            if min(count_low, count_high) >= MIN_END_WORLDS and swing_se > 0:
                # Welch-Satterthwaite degrees of freedom on the effective counts
                df = swing_se**4 / (se_low**4 / (count_low - 1.0) + se_high**4 / (count_high - 1.0))
                clear = abs(mean_high - mean_low) > t_dist.ppf(cutoff_level, df) * swing_se
            rows[name] = {
                "low": mean_low,
                "high": mean_high,
                "swing": mean_high - mean_low,
                "swing_se": swing_se,
                "rank_correlation": weighted_correlation(
                    weighted_ranks(x, weights), value_ranks, weights
                ),
                "clear": bool(clear),
            }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=DRIVER_COLUMNS)
    frame["clear"] = frame["clear"].astype(bool)
    frame.index.name = "parameter"
    return frame.iloc[np.argsort(-frame["swing"].abs().fillna(-1.0).to_numpy(), kind="stable")]


def _end_weights(x: np.ndarray, weights: np.ndarray, fraction: float):
    """Each world's weight inside the lowest and inside the highest ``fraction`` of the
    weight (summing to 1), ordered by ``x``: worlds of one value share their group's part."""
    distinct, group_of = np.unique(x, return_inverse=True)
    group = np.bincount(group_of, weights=weights, minlength=len(distinct))
    below = np.cumsum(group) - group
    above = 1.0 - np.cumsum(group)
    share_low = np.clip(fraction - below, 0.0, group) / group
    share_high = np.clip(fraction - above, 0.0, group) / group
    return weights * share_low[group_of], weights * share_high[group_of]
