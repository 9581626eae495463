"""Numbers as people read them, said once: percents, signed changes in points, numbers in
significant figures, compact paths, the dash of a value that does not exist. Used by the
figures, the report and the command line (the intervals behind them: ``engine.numbers``).
"""

from __future__ import annotations

import math

__all__ = [
    "MISSING",
    "as_read",
    "compact_path",
    "number",
    "percent",
    "points",
    "signed",
    "size_in_points",
]

MISSING = "—"  # a value that does not exist (a stage never reached has no median time)


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


def number(x: float | None, digits: int = 4) -> str:
    """A number in ``digits`` significant figures, in scientific notation only when it is very
    small or large."""
    if x is None or x == "" or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    x = float(x)
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{x:.{digits}g}"
    return f"{x:.{digits - 1}e}"


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
