"""One ``Result`` type for Monte Carlo and exact runs: statistics, tables, JSON, run folders.

Every Monte Carlo probability carries its standard error and a 95% Wilson interval; quantiles
of the time to reach a stage carry a 95% interval from the order statistics (distribution-free:
the ranks ``n p -/+ 1.96 sqrt(n p (1 - p))``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from escalate.engine.compile import QUANTILE_BINS, TIME_BITS, CompiledScenario
from escalate.engine.folder import write_folder
from escalate.engine.metrics import TRIGGER_METRICS, check_within_horizon, parse_metric
from escalate.engine.numbers import Z95, wilson
from escalate.scenario.model import date_of, days_per, headline_stage, time_of, when

if TYPE_CHECKING:
    import pandas as pd

    from escalate.engine.exact import ExactSolution  # scipy: imported only where solve runs
    from escalate.engine.simulate import Tally

__all__ = ["Result", "StageStats", "dates_of"]

QUANTILES = (0.1, 0.5, 0.9)
TOP_PATHS = 20


def _proportion(successes: int, n: int) -> tuple[float, float, list[float]]:
    p = successes / n
    return p, math.sqrt(p * (1 - p) / n), wilson(successes, n)


def _quantile(hist: np.ndarray, width: float, fraction: float) -> float:
    """The ``fraction`` quantile of entries binned as: [exactly 0, (0, w], (w, 2w], ...]."""
    total = hist.sum()
    rank = min(max(fraction, 0.0), 1.0) * total
    cumulative = np.cumsum(hist)
    b = int(np.searchsorted(cumulative, rank, side="left"))
    b = min(b, len(hist) - 1)
    if b == 0:
        return 0.0
    before = cumulative[b - 1]
    inside = (rank - before) / hist[b] if hist[b] else 0.0
    return float((b - 1 + inside) * width)


@dataclass
class StageStats:
    """Figures of one stage (None where a figure is not available)."""

    p_reached: float
    p_reached_se: float
    p_reached_ci: list[float]
    p_at_horizon: float
    p_at_horizon_se: float
    p_at_horizon_ci: list[float]
    time_in: float
    time_in_se: float
    time_to_reach: dict[str, Any]


@dataclass
class Result:
    """What a run (``method="monte-carlo"``) or a solve (``method="exact"``) found.

    Attributes
    ----------
    stages, triggers : dict
        Figures per stage and per trigger, keyed by name, in the scenario's order.
    curves : pandas.DataFrame
        Long format: ``t``, ``stage``, ``curve`` (``reached`` or ``occupancy``), ``value``.
    paths : list of dict
        The most frequent sequences of visited stages: ``path``, ``p``, ``p_se``.
    """

    scenario: str
    method: str
    trajectories: int | None
    seed: int | None
    horizon: float
    time_unit: str
    labels: dict[str, str]
    stages: dict[str, StageStats]
    triggers: dict[str, dict[str, Any]]
    paths: list[dict[str, Any]]
    # (grid, stage names, reached (S, G), occupancy (S, G)): `curves` is built from it on first
    # use, so that printing a summary never imports pandas
    curve_arrays: tuple = field(repr=False)
    manifest: dict[str, Any] = field(default_factory=dict)
    start_date: str | None = None  # ISO date of t = 0: outputs give dates beside times

    def date(self, time: float | None) -> str | None:
        """The ISO date in which ``time`` falls (None without a start_date)."""
        day = date_of(time, self.start_date, self.time_unit)
        return None if day is None else day.isoformat()

    def time_of(self, point) -> float:
        """A time point (number or ``YYYY-MM-DD``) as a time; ValueError if it cannot be."""
        return time_of(point, self.start_date, self.time_unit)

    @cached_property
    def curves(self) -> pd.DataFrame:
        """Long format: ``t``, ``stage``, ``curve`` (``reached`` or ``occupancy``), ``value``;
        with a ``start_date``, a ``date`` column after ``t`` (the day in which t falls)."""
        frame = _curves(*self.curve_arrays)
        if self.start_date is not None:
            frame.insert(
                1, "date", dates_of(frame["t"].to_numpy(), self.start_date, self.time_unit)
            )
        return frame

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def from_tally(
        cls,
        tally: Tally,
        compiled: CompiledScenario,
        *,
        seed: int,
        labels: dict[str, str] | None = None,
    ) -> Result:
        """Statistics of a Monte Carlo tally."""
        n = tally.n
        quantum = compiled.horizon / 2.0**TIME_BITS
        width = compiled.horizon / QUANTILE_BINS
        stages = {}
        for i, name in enumerate(compiled.stage_names):
            reached = int(tally.reached[i])
            p, se, ci = _proportion(reached, n)
            h, h_se, h_ci = _proportion(int(tally.at_horizon[i]), n)
            mean_in = tally.time_in[i] * quantum / n
            var_in = max(tally.time_in_sq[i] / n - mean_in**2, 0.0)
            stages[name] = StageStats(
                p_reached=p,
                p_reached_se=se,
                p_reached_ci=ci,
                p_at_horizon=h,
                p_at_horizon_se=h_se,
                p_at_horizon_ci=h_ci,
                time_in=mean_in,
                time_in_se=math.sqrt(var_in / n),
                time_to_reach=_tally_time_to_reach(tally, i, quantum, width),
            )
        triggers = {}
        for k, name in enumerate(compiled.trigger_names):
            p, se, ci = _proportion(int(tally.fired[k]), n)
            h, h_se, h_ci = _proportion(int(tally.on_at_horizon[k]), n)
            mean_on = tally.time_on[k] * quantum / n
            var_on = max(tally.time_on_sq[k] / n - mean_on**2, 0.0)
            triggers[name] = {
                "p_fired": p,
                "p_fired_se": se,
                "p_fired_ci": ci,
                "p_on_at_horizon": h,
                "p_on_at_horizon_se": h_se,
                "p_on_at_horizon_ci": h_ci,
                "time_on": mean_on,
                "time_on_se": math.sqrt(var_on / n),
            }
        reached = np.cumsum(tally.reach_hist, axis=1) / n
        occupancy = np.cumsum(tally.occupancy_diff[:, :-1], axis=1) / n
        return cls(
            scenario=compiled.name,
            method="monte-carlo",
            trajectories=n,
            seed=seed,
            horizon=compiled.horizon,
            time_unit=compiled.time_unit,
            labels=labels or {},
            stages=stages,
            triggers=triggers,
            paths=_paths(tally, compiled),
            curve_arrays=(compiled.grid, compiled.stage_names, reached, occupancy),
            start_date=compiled.start_date,
        )

    @classmethod
    def from_exact(
        cls,
        solution: ExactSolution,
        compiled: CompiledScenario,
        *,
        labels: dict[str, str] | None = None,
    ) -> Result:
        """The exact figures, in the same shape (standard errors 0, no paths)."""
        stages = {}
        for i, name in enumerate(compiled.stage_names):
            p = float(solution.reached[i, -1])
            h = float(solution.occupancy[i, -1])
            ttr: dict[str, Any] = dict(solution.time_to_reach[i])
            ttr["mean_se"] = None if ttr["mean"] is None else 0.0
            for q in QUANTILES:
                key = f"p{round(q * 100)}"
                ttr[f"{key}_ci"] = None if ttr[key] is None else [ttr[key], ttr[key]]
            stages[name] = StageStats(
                p_reached=p,
                p_reached_se=0.0,
                p_reached_ci=[p, p],
                p_at_horizon=h,
                p_at_horizon_se=0.0,
                p_at_horizon_ci=[h, h],
                time_in=float(solution.time_in[i]),
                time_in_se=0.0,
                time_to_reach=ttr,
            )
        triggers = {
            name: {
                "p_fired": float(solution.p_fired[k]),
                "p_fired_se": 0.0,
                "p_fired_ci": [float(solution.p_fired[k])] * 2,
                "p_on_at_horizon": float(solution.p_on_at_horizon[k]),
                "p_on_at_horizon_se": 0.0,
                "p_on_at_horizon_ci": [float(solution.p_on_at_horizon[k])] * 2,
                "time_on": float(solution.time_on[k]),
                "time_on_se": 0.0,
            }
            for k, name in enumerate(compiled.trigger_names)
        }
        return cls(
            scenario=compiled.name,
            method="exact",
            trajectories=None,
            seed=None,
            horizon=compiled.horizon,
            time_unit=compiled.time_unit,
            labels=labels or {},
            stages=stages,
            triggers=triggers,
            paths=[],
            curve_arrays=(
                compiled.grid,
                compiled.stage_names,
                solution.reached,
                solution.occupancy,
            ),
            start_date=compiled.start_date,
        )

    # --- reading ---------------------------------------------------------------------------

    def summary(self) -> pd.DataFrame:
        """One row per stage: probabilities with errors, time in stage, time-to-reach quantiles."""
        import pandas as pd

        rows = []
        for name, s in self.stages.items():
            ttr = s.time_to_reach
            rows.append(
                {
                    "stage": name,
                    "label": self.labels.get(name, name),
                    "p_reached": s.p_reached,
                    "p_reached_se": s.p_reached_se,
                    "p_reached_lo": s.p_reached_ci[0],
                    "p_reached_hi": s.p_reached_ci[1],
                    "p_at_horizon": s.p_at_horizon,
                    "p_at_horizon_se": s.p_at_horizon_se,
                    "time_in": s.time_in,
                    "time_in_se": s.time_in_se,
                    "time_to_reach_mean": ttr["mean"],
                    "time_to_reach_p10": ttr["p10"],
                    "time_to_reach_p50": ttr["p50"],
                    "time_to_reach_p90": ttr["p90"],
                }
            )
            if self.start_date is not None:
                for key in ("mean", "p10", "p50", "p90"):
                    rows[-1][f"time_to_reach_{key}_date"] = self.date(ttr[key])
        return pd.DataFrame(rows).set_index("stage")

    def headline(self) -> dict[str, Any]:
        """The answer first: the headline stage (the first war, else the last stage), its
        probability of being reached by the horizon with the 95% interval, its median time
        to reach (and date), and, with a start_date, P(reached) by each Dec 31 before the
        horizon."""
        names = list(self.stages)
        stage = names[headline_stage(names, [self.labels.get(n, n) for n in names])]
        s = self.stages[stage]
        median = s.time_to_reach.get("p50")
        answer = {
            "stage": stage,
            "label": self.labels.get(stage, stage),
            "p_reached": s.p_reached,
            "p_reached_ci": list(s.p_reached_ci),
            "median_time": median,
            "median_date": self.date(median),
            "by_date": {},
        }
        if self.start_date is not None:
            first = date_of(0.0, self.start_date, self.time_unit)
            last = date_of(self.horizon, self.start_date, self.time_unit)
            # from the curve arrays, as metric() reads the curves frame: no pandas at start-up
            grid, stage_names, reached = self.curve_arrays[:3]
            row = reached[list(stage_names).index(stage)]
            for year in range(first.year, last.year):
                day = f"{year}-12-31"
                upto = np.searchsorted(grid, self.time_of(day) + 1e-9, side="right")
                answer["by_date"][day] = float(row[upto - 1]) if upto else 0.0
        return answer

    def headline_text(self, interval: str = "95% interval") -> str:
        """The headline as a sentence: what the user asked, answered (``interval`` names the
        Monte Carlo interval, e.g. for a run pooled over worlds)."""
        h = self.headline()
        lo, hi = h["p_reached_ci"]
        by = when(self.horizon, self.start_date, self.time_unit)
        exact = self.method == "exact"
        text = f"P({h['label']} by {by}) = {h['p_reached']:.1%}" + (
            " (exact)" if exact else f" ({interval} {lo:.1%} to {hi:.1%})"
        )
        if h["median_time"] is not None:
            median = h["median_date"] or f"{self.time_unit} {h['median_time']:.0f}"
            text += f"; half of the trajectories that reach it do so by {median}"
        if h["by_date"]:
            text += "; by " + ", ".join(f"{d}: {p:.1%}" for d, p in h["by_date"].items())
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable summary (docs/semantics.md; exact: without paths)."""
        summary = {
            "scenario": self.scenario,
            "method": self.method,
            "trajectories": self.trajectories,
            "seed": self.seed,
            "horizon": self.horizon,
            "time_unit": self.time_unit,
            "stages": {
                name: {"label": self.labels.get(name, name), **vars(s)}
                for name, s in self.stages.items()
            },
            "triggers": {
                name: {"label": self.labels.get(name, name), **t}
                for name, t in self.triggers.items()
            },
            "paths": self.paths,
        }
        if self.method == "exact":
            del summary["paths"]
        if self.manifest.get("precision") is not None:
            reached = self.manifest["precision_reached"]
            summary["precision"] = {
                "metric": self.manifest["metric"],
                "target": self.manifest["precision"],
                "reached": reached,
                "met": bool(reached <= self.manifest["precision"]),
            }
        summary["headline"] = {**self.headline(), "text": self.headline_text()}
        if self.start_date is not None:
            summary["start_date"] = self.start_date
            summary["horizon_date"] = self.date(self.horizon)
            for stage in summary["stages"].values():
                ttr = stage["time_to_reach"] = dict(stage["time_to_reach"])
                for key in ("mean", *(f"p{round(q * 100)}" for q in QUANTILES)):
                    ttr[f"{key}_date"] = self.date(ttr.get(key))
        return summary

    def to_json(self, indent: int | None = 2) -> str:
        """The summary as JSON text (NaN never appears: missing figures are null)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def metric(self, name: str) -> tuple[float, float]:
        """The value and standard error of a metric such as ``p_reached:war@365``."""
        kind, target, detail, at = parse_metric(name, self)
        if kind in TRIGGER_METRICS:
            t = self.triggers[target]
            return t[kind], t[f"{kind}_se"]
        s = self.stages[target]
        if kind == "p_reached" and at is None:
            return s.p_reached, s.p_reached_se
        if kind == "p_reached":
            check_within_horizon(name, at, self.horizon, self.start_date, self.time_unit)
            curve = self.curves[(self.curves.stage == target) & (self.curves.curve == "reached")]
            before = curve[curve.t <= at + 1e-9]
            p = float(before.value.iloc[-1]) if len(before) else 0.0
            n = self.trajectories or 0
            return p, (math.sqrt(p * (1 - p) / n) if n else 0.0)
        if kind == "p_at_horizon":
            return s.p_at_horizon, s.p_at_horizon_se
        if kind == "time_in":
            return s.time_in, s.time_in_se
        value = s.time_to_reach[detail]
        if value is None:
            return math.nan, math.nan
        if detail == "mean":
            return value, s.time_to_reach["mean_se"]
        lo, hi = s.time_to_reach[f"{detail}_ci"]
        return value, (hi - lo) / (2 * Z95)

    # --- writing ---------------------------------------------------------------------------

    def save(
        self,
        directory: str | Path,
        *,
        force: bool = False,
        figures: bool = True,
        model=None,
        exact: Result | None = None,
    ) -> Path:
        """Write the run folder: summary.json, stages.csv, curves.parquet, paths.csv,
        manifest.json and the figures.

        The folder is written whole or not at all: files go to a temporary folder beside it,
        renamed into place at the end. An existing folder is replaced only with ``force``.
        ``model`` (the Scenario) adds the stage graph; ``exact`` (the Result of ``solve`` for
        the same scenario, e.g. ``escalate.exact_overlay(model, result)``) is drawn over the
        simulated reach curves. Saving runs no engine.
        """

        def write(folder: Path) -> None:
            self.write_files(folder, figures=figures, model=model, exact=exact)

        return write_folder(Path(directory), write, force=force)

    def write_files(
        self,
        folder: Path,
        *,
        figures: bool = True,
        model=None,
        exact: Result | None = None,
        summary_json: str | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        """The run folder's files, written into ``folder`` as it is (see :meth:`save`, which
        makes the folder whole or not at all). ``summary_json`` and ``manifest`` replace the
        run's own: a worlds run writes its pooled run's tables under its own summary."""
        summary_json = self.to_json() if summary_json is None else summary_json
        (folder / "summary.json").write_text(summary_json + "\n", encoding="utf-8")
        self.summary().to_csv(folder / "stages.csv")
        self.curves.to_parquet(folder / "curves.parquet", index=False)
        self.paths_frame().to_csv(folder / "paths.csv", index=False)
        manifest = self.manifest if manifest is None else manifest
        (folder / "manifest.json").write_text(
            json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8"
        )
        if figures:
            from escalate.output import plots  # plots come after results in the data flow

            plots.save_run_figures(self, folder, model=model, exact=exact)

    def plot_reached(self, stages=None):
        """Figure: P(stage reached by t) with 95% bands (see :mod:`escalate.output.plots`)."""
        from escalate.output import plots

        return plots.reached(self, stages)

    def plot_occupancy(self):
        """Figure: where trajectories are over time, stacked (see :mod:`escalate.output.plots`)."""
        from escalate.output import plots

        return plots.occupancy(self)

    def paths_frame(self) -> pd.DataFrame:
        """The paths as a table: ``path`` (stages joined by ' > '), ``p``, ``p_se``."""
        import pandas as pd

        return pd.DataFrame(
            [
                {"path": " > ".join(p["path"]), "p": p["p"], "p_se": p.get("p_se", 0.0)}
                for p in self.paths
            ],
            columns=["path", "p", "p_se"],
        )


def _tally_time_to_reach(tally: Tally, i: int, quantum: float, width: float) -> dict[str, Any]:
    reached = int(tally.reached[i])
    keys = ("mean", "mean_se", *(f"p{round(q * 100)}" for q in QUANTILES))
    if reached == 0:
        out: dict[str, Any] = dict.fromkeys(keys)
        out.update({f"p{round(q * 100)}_ci": None for q in QUANTILES})
        return out
    mean = tally.entry_sum[i] * quantum / reached
    var = max(tally.entry_sq[i] / reached - mean**2, 0.0)
    out = {"mean": mean, "mean_se": math.sqrt(var / reached)}
    hist = tally.quantile_hist[i]
    for q in QUANTILES:
        spread = Z95 * math.sqrt(q * (1 - q) / reached)
        key = f"p{round(q * 100)}"
        out[key] = _quantile(hist, width, q)
        out[f"{key}_ci"] = [_quantile(hist, width, q - spread), _quantile(hist, width, q + spread)]
    return out


def dates_of(times: np.ndarray, start_date: str, time_unit: str) -> np.ndarray:
    """The days (``datetime64[D]``) in which ``times`` fall, as :func:`date_of` gives one."""
    days = np.floor(np.asarray(times, float) * days_per(time_unit) + 1e-9)
    return np.datetime64(start_date, "D") + days.astype("timedelta64[D]")


def _curves(grid: np.ndarray, stage_names, reached: np.ndarray, occupancy: np.ndarray):
    import pandas as pd

    frames = []
    for curve, values in (("reached", reached), ("occupancy", occupancy)):
        for i, name in enumerate(stage_names):
            frames.append(
                pd.DataFrame({"t": grid, "stage": name, "curve": curve, "value": values[i]})
            )
    frame = pd.concat(frames, ignore_index=True)
    frame["stage"] = pd.Categorical(frame["stage"], categories=list(stage_names))
    frame["curve"] = pd.Categorical(frame["curve"], categories=["reached", "occupancy"])
    return frame


def _paths(tally: Tally, compiled: CompiledScenario) -> list[dict[str, Any]]:
    """The ``TOP_PATHS`` most frequent paths (ties: in order of their stage names). Only paths
    as frequent as the ``TOP_PATHS``-th get names: a cyclic scenario has tens of thousands."""
    names = compiled.stage_names
    paths = tally.paths
    counts = paths.counts
    rows = np.arange(len(counts))
    if len(counts) > TOP_PATHS:
        least = np.partition(counts, len(counts) - TOP_PATHS)[len(counts) - TOP_PATHS]
        rows = np.flatnonzero(counts >= least)
    entries = []
    for row in rows:
        length = int(paths.lengths[row])
        path = [names[s] for s in paths.stages[row, : min(length, paths.stages.shape[1])]]
        if length > paths.stages.shape[1]:
            path.append("…")
        entries.append((int(counts[row]), path))
    entries.sort(key=lambda e: (-e[0], e[1]))
    out = []
    for count, path in entries[:TOP_PATHS]:
        p = count / tally.n
        out.append({"path": path, "p": p, "p_se": math.sqrt(p * (1 - p) / tally.n)})
    return out
