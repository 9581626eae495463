"""Numbers every later step shares: the 95% z, the Wilson interval of a proportion, floats
and records made safe for JSON, a count in words. It imports nothing of escalate and nothing
heavy (no scipy at start-up).
"""

from __future__ import annotations

import math

__all__ = [
    "Z95",
    "count",
    "finite_or_none",
    "json_records",
    "wilson",
    "wilson_band",
]

Z95 = 1.959963984540054  # scipy.special.ndtri(0.975): the two-sided 95% normal quantile


def wilson(successes: int, n: int) -> list[float]:
    """The 95% Wilson score interval of a binomial proportion ``successes / n``.

    Newcombe's (1998) form, as ``scipy.stats.binomtest(...).proportion_ci(method="wilson")``
    computes it, operation for operation (a test checks they agree bit for bit): no scipy
    import for one constant. ``[0, 1]`` when ``n`` is 0.
    """
    if n == 0:
        return [0.0, 1.0]
    k, n = int(successes), int(n)
    p = k / n
    z = Z95
    denom = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denom
    delta = z / denom * math.sqrt(4 * n * p * (1 - p) + z**2)
    return [0.0 if k == 0 else center - delta, 1.0 if k == n else center + delta]


def wilson_band(p, n: int):
    """Lower and upper 95% Wilson bounds for an array of proportions ``p`` of ``n`` trials
    each (the figures' bands: never zero-width at p = 0 or 1, unlike p ± 1.96 se)."""
    import numpy as np

    p = np.asarray(p, dtype=float)
    z = Z95
    denom = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denom
    delta = z / denom * np.sqrt(np.maximum(4 * n * p * (1 - p), 0.0) + z**2)
    return np.where(p <= 0, 0.0, center - delta), np.where(p >= 1, 1.0, center + delta)


def finite_or_none(x):
    """``x`` for JSON: a float that is not finite becomes None (JSON has no NaN)."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def json_records(rows) -> list[dict]:
    """A table's rows (a DataFrame, or dicts) for JSON: each non-finite float None."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    return [{k: finite_or_none(v) for k, v in row.items()} for row in rows]


def count(n: int, noun: str) -> str:
    """``n`` things in words: "1 world", "1,000 worlds"."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
