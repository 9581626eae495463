"""Numbers as people read them, said once: the 95% z, the Wilson interval every table and
figure shows, percents, numbers and compact paths. Used by results, plots, report and the
command line; it imports nothing of escalate, and nothing heavy (no scipy at start-up).
"""

from __future__ import annotations

import math

__all__ = [
    "MISSING",
    "PROBABILITY_KINDS",
    "Z95",
    "as_read",
    "compact_path",
    "count",
    "finite_or_none",
    "is_probability",
    "json_records",
    "number",
    "percent",
    "points",
    "size_in_points",
    "wilson",
    "wilson_band",
]

Z95 = 1.959963984540054  # scipy.special.ndtri(0.975): the two-sided 95% normal quantile
PROBABILITY_KINDS = ("p_reached", "p_at_horizon", "p_fired", "p_on_at_horizon")
MISSING = "—"  # a value that does not exist (a stage never reached has no median time)


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


def percent(p: float | None) -> str:
    """``0.1995`` -> ``19.95%`` (a missing or NaN figure: a dash)."""
    if p is None or not math.isfinite(float(p)):
        return MISSING
    return f"{100 * float(p):.2f}%"


def signed(x: float | None, digits: int = 2) -> str:
    """A correlation or change with its sign, ``+0.45`` (a missing or NaN figure: a dash)."""
    if x is None or not math.isfinite(float(x)):
        return MISSING
    return f"{float(x):+.{digits}f}"


def points(change: float | None, digits: int = 1) -> str:
    """A change of probability in percentage points, ``+20.4 pts`` (never ``-0.0``)."""
    if change is None or not math.isfinite(change):
        return MISSING
    return f"{round(change * 100, digits) + 0.0:+.{digits}f} pts"


def is_probability(metric: str) -> bool:
    """Whether a metric (``kind:name``, e.g. ``p_reached:war`` or ``p_fired:mobilized@90``)
    is a probability: read in percent, its changes in points."""
    return metric.split(":", 1)[0] in PROBABILITY_KINDS


def size_in_points(x: float | None, digits: int = 1) -> str:
    """A size of change of probability, unsigned, in percentage points: ``20.4 pts`` (a
    tornado's swing, which is a width, not a direction)."""
    if x is None or not math.isfinite(x):
        return MISSING
    return f"{100 * x:.{digits}f} pts"


def as_read(x: float | None, probability: bool, *, change: bool = False, digits: int = 1) -> str:
    """A metric's value as people read it: a probability in percent and a change of one in
    signed percentage points (``digits`` decimals); any other value a number, a change with
    its sign."""
    if probability:
        return points(x, digits) if change else percent(x)
    if change and x is not None and math.isfinite(x):
        return f"{float(x):+.4g}"
    return number(x)


def finite_or_none(x):
    """``x`` for JSON: a float that is not finite becomes None (JSON has no NaN)."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def json_records(rows) -> list[dict]:
    """A table's rows (a DataFrame, or dicts) for JSON: each non-finite float None."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    return [{k: finite_or_none(v) for k, v in row.items()} for row in rows]


def number(x: float | None, digits: int = 4) -> str:
    """A number in ``digits`` significant figures, in scientific notation only when it is very
    small or large."""
    if x is None or x == "" or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    x = float(x)
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{x:.{digits}g}"
    return f"{x:.{digits - 1}e}"


def count(n: int, noun: str) -> str:
    """``n`` things in words: "1 world", "1,000 worlds"."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def compact_path(path: list[str], arrow: str = " → ") -> str:
    """A path for reading: a run of three or more repeats of one to three stages is written
    once with its count, e.g. ``(talks → standoff) ×4``."""
    parts, i = [], 0
    while i < len(path):
        best = (1, 1)
        for width in (1, 2, 3):
            unit = path[i : i + width]
            if len(unit) < width:
                break
            repeats = 1
            while path[i + repeats * width : i + (repeats + 1) * width] == unit:
                repeats += 1
            if repeats >= 3 and repeats * width > best[0] * best[1]:
                best = (repeats, width)
        repeats, width = best
        if repeats >= 3:
            parts.append(f"({arrow.join(path[i : i + width])}) ×{repeats}")
            i += repeats * width
        else:
            parts.append(path[i])
            i += 1
    return arrow.join(parts)
