"""Worlds drawn from the ``uncertain`` distributions of a scenario's parameters: Latin
hypercube (``scipy.stats.qmc.LatinHypercube``) or plain random points on the unit cube, mapped
through each parameter's inverse distribution function; each world's seed; worlds files read
back and checked against the scenario, and the worlds a weighing step starts from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import qmc

from escalate.errors import EscalateError, suggest
from escalate.scenario import Scenario

__all__ = [
    "SAMPLINGS",
    "draw_worlds",
    "inside_support",
    "read_worlds",
    "to_values",
    "uncertain_parameters",
    "world_seed",
    "worlds_to_weigh",
]


SAMPLINGS = ("lhs", "random")


# keep draws off the distributions' edges, where a ppf can return a bound (beta at 0)
_EDGE = 1e-12


def uncertain_parameters(model: Scenario) -> list[str]:
    """Names of the parameters with an ``uncertain`` distribution, in file order."""
    return [name for name, p in model.parameters.items() if p.uncertain is not None]


def inside_support(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """``x`` kept strictly inside the support (low, high) of its distribution: a value on a
    bound (a gamma draw that rounds to 0, a beta's to 1) has no finite unconstrained value
    and, as a rate or a chance, breaks the model. Moves it by one floating-point step."""
    return np.clip(x, np.nextafter(low, np.inf), np.nextafter(high, -np.inf))


def to_values(model: Scenario, names: list[str], unit: np.ndarray) -> pd.DataFrame:
    """Map points of the unit cube (rows) to parameter values through each inverse CDF,
    strictly inside each distribution's support."""
    unit = np.clip(np.asarray(unit, dtype=float), _EDGE, 1 - _EDGE)
    columns = {}
    for i, name in enumerate(names):
        dist = model.parameters[name].uncertain
        frozen = dist.scipy(dist.numbers())
        columns[name] = inside_support(frozen.ppf(unit[:, i]), *frozen.support())
    return pd.DataFrame(columns)


def draw_worlds(model: Scenario, worlds: int, seed: int, *, sampling: str = "lhs") -> pd.DataFrame:
    """Draw ``worlds`` parameter sets (one row each) from the uncertain distributions.

    Parameters
    ----------
    model : Scenario
    worlds : int
    seed : int
    sampling : {"lhs", "random"}
        Latin hypercube (default: every parameter's range evenly covered) or plain random.

    Returns
    -------
    pandas.DataFrame
        One column per uncertain parameter.
    """
    names = uncertain_parameters(model)
    if not names:
        raise EscalateError(
            f"{model.file}: no parameter has an `uncertain` distribution: "
            "nothing to draw worlds from"
        )
    if worlds < 2:
        raise EscalateError(f"worlds must be at least 2, got {worlds}", parameter="worlds")
    if sampling not in SAMPLINGS:
        raise EscalateError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31,)))
    if sampling == "lhs":
        unit = qmc.LatinHypercube(d=len(names), rng=rng).random(worlds)
    else:
        unit = rng.random((worlds, len(names)))
    return to_values(model, names, unit)


def world_seed(seed: int, world: int) -> int:
    """The trajectory seed of one world (its own stream, fixed by the run's seed)."""
    return int(np.random.SeedSequence([seed, world]).generate_state(1, np.uint64)[0] >> 1)


def worlds_to_weigh(
    model: Scenario,
    worlds: int | None,
    worlds_from: pd.DataFrame | str | Path | None,
    seed: int,
    overrides: dict[str, float],
) -> tuple[pd.DataFrame, np.ndarray, str | None]:
    """The worlds a forecasting command works on: drawn from the ``uncertain`` parameters
    not fixed by ``overrides`` (equal weights), or read from a worlds file or frame (its
    weights, its fixed parameters dropped). Returns the worlds (a column per parameter), their
    weights (summing to 1) and the file they came from (None when drawn or given as a frame)."""
    if worlds is not None and worlds_from is not None:
        raise EscalateError.about("{worlds} and {worlds_from}: give one of them")
    source = None
    if worlds_from is not None:
        if not isinstance(worlds_from, pd.DataFrame):
            source = str(worlds_from)
            worlds_from = read_worlds(worlds_from, model)
        names = [n for n in worlds_from.columns if n != "weight" and n not in overrides]
        weights = worlds_from["weight"].to_numpy(float)
        return worlds_from[names].reset_index(drop=True), weights / weights.sum(), source
    names = [n for n in uncertain_parameters(model) if n not in overrides]
    frame = draw_worlds(model, worlds, seed)[names]
    return frame, np.full(len(frame), 1.0 / len(frame)), None


def read_worlds(path, model: Scenario | None) -> pd.DataFrame:
    """A worlds file (``worlds.parquet``, as calibrate writes it): a column per parameter of
    ``model`` and ``weight``; the weights are returned normalized to sum to 1. Without a
    ``model``, only the file's form is checked (columns of numbers, the weights).

    Raises
    ------
    EscalateError
        Naming the file and the column: not readable as Parquet, no ``weight`` column, a column
        that names no parameter, a value that is not finite or outside its parameter's domain
        (with its row), a negative weight, no world.
    """
    from pathlib import Path

    path = Path(path)
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise EscalateError(f"{path}: no such file") from None
    except Exception as exc:  # pyarrow's errors have no common base worth naming
        raise EscalateError(f"{path}: not a worlds file (Parquet): {exc}") from None
    if "weight" not in frame.columns:
        raise EscalateError(f"{path}: no `weight` column (a worlds file has one per world)")
    for column in frame.columns:
        if model is not None and column != "weight" and column not in model.parameters:
            raise EscalateError(
                f"{path}: column {column!r} names no parameter of scenario {model.scenario!r}"
                f"{suggest(str(column), model.parameters)}"
            )
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
        if not np.all(np.isfinite(values)):
            raise EscalateError(f"{path}: column {column!r} has values that are not numbers")
    if len(frame) == 0:
        raise EscalateError(f"{path}: no world")
    weights = frame["weight"].to_numpy(float)
    if (weights < 0).any() or weights.sum() <= 0:
        raise EscalateError(f"{path}: column 'weight' must be non-negative, not all zero")
    frame = frame.astype(float).reset_index(drop=True)
    from escalate.errors import format_path
    from escalate.scenario.rules import value_problems

    for column in frame.columns.drop("weight") if model is not None else []:
        for row in (frame[column].idxmin(), frame[column].idxmax()):  # domains are intervals
            value = frame.at[row, column]
            for where, message in value_problems(model, model.point_values({column: value})):
                raise EscalateError(
                    f"{path}: column {column!r}, row {row}: {format_path(where)} {message}"
                )
    frame["weight"] = weights / weights.sum()
    return frame
