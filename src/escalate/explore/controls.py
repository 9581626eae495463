"""What the explorer shows and computes, apart from any user interface.

A scenario gives one :class:`Control` per parameter (a range, a label and unit read from where
the parameter is used, its source), one :class:`TriggerControl` per trigger and a horizon. A
:class:`Settings` is one position of every control; it reads from and writes to a page's URL
query (``?war_mean=50&horizon=365``) and a ``--params`` file, and :func:`answer` turns it into a
:class:`~escalate.engine.results.Result`: exact where every timing is exponential, else a
fixed-seed Monte Carlo run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from escalate.engine.compile import compile_scenario
from escalate.engine.results import Result
from escalate.errors import suggest
from escalate.scenario import Scenario
from escalate.scenario.model import POSITIVE, Interval
from escalate.scenario.rules import number_slots, value_problems

__all__ = ["Control", "Explorable", "Settings", "TriggerControl"]

TRIGGER_STATES = ("scenario", "on", "off")
MC_SEED = 1  # one seed for every move: the curves move with the parameters, not the noise
MC_BUDGET_S = 0.12  # a Monte Carlo answer's share of the 200 ms a move may take
MC_TRAJECTORIES = (4_000, 200_000)  # the fewest and the most a move runs
VIEW_POINTS = 120  # about as many points on an exact answer's curves

_WORDS = {
    "rate": ("rate", "per {unit}"),
    "mean": ("mean time", "{unit}s"),
    "chance": ("chance", "probability"),
    "within": ("window of the chance", "{unit}s"),
    "at": ("time", "{unit}s"),
    "initial": ("chance on at the start", "probability"),
}


@dataclass(frozen=True)
class Control:
    """A slider over one parameter: its range, what it is, where it comes from."""

    name: str
    label: str
    unit: str
    value: float
    low: float
    high: float
    step: float
    range_note: str
    source: str | None
    domain: Interval


@dataclass(frozen=True)
class TriggerControl:
    """A trigger's initial state: as in the scenario, on at the start, or off."""

    name: str
    label: str
    initial: str  # as written in the scenario: a number or a parameter name


@dataclass
class Settings:
    """One position of every control: parameter values, trigger states, horizon."""

    values: dict[str, float]
    triggers: dict[str, str]
    horizon: float
    messages: list[str] = field(default_factory=list)

    def overrides(self, base: Settings) -> dict[str, float]:
        """The parameter values that differ from ``base``'s."""
        return {k: v for k, v in self.values.items() if v != base.values[k]}


class Explorable:
    """A scenario ready to explore: its controls, its default settings, its answers.

    Parameters
    ----------
    model : Scenario
    """

    def __init__(self, model: Scenario):
        self.model = model
        self.controls = {c.name: c for c in _controls(model)}
        self.trigger_controls = {
            name: TriggerControl(name, model.label(name), _written(trigger.initial))
            for name, trigger in model.triggers.items()
        }
        self.horizon = model.horizon_time
        self.default = Settings(
            {name: c.value for name, c in self.controls.items()},
            dict.fromkeys(self.trigger_controls, "scenario"),
            self.horizon,
        )
        self.exact = compile_scenario(model).is_markov
        self.trajectories = 0 if self.exact else self._trajectories()
        self._variants = lru_cache(maxsize=64)(self._variant)
        self._blas = None

    # --- answers -------------------------------------------------------------------------

    def answer(self, settings: Settings) -> Result:
        """The result at ``settings``: exact where every timing is exponential, else a run of
        :attr:`trajectories` with a fixed seed."""
        changed = tuple(sorted((k, v) for k, v in settings.triggers.items() if v != "scenario"))
        model = self._variants(changed)
        compiled = compile_scenario(
            model, settings.overrides(self.default), horizon=settings.horizon
        )
        labels = {name: model.label(name) for name in (*model.stages, *model.triggers)}
        if compiled.is_markov:
            from escalate.engine.chain import chain_of
            from escalate.engine.exact import solve_chain

            # the states built once per structure, the rates per move; the series in numba;
            # the curves on the view's grid
            chain = chain_of(compiled)
            fastest = float(abs(chain.q).sum(axis=1).max()) if chain.n else 0.0
            grid = view_grid(model, compiled.horizon, fastest)
            compiled = dataclasses.replace(compiled, grid=grid)
            with self._one_blas_thread():
                solution = solve_chain(compiled, chain=chain, numba_series=True)
            return Result.from_exact(solution, compiled, labels=labels)
        from escalate.engine.simulate import run_trajectories

        tally = run_trajectories(compiled, self.trajectories, MC_SEED)
        return Result.from_tally(tally, compiled, seed=MC_SEED, labels=labels)

    def _one_blas_thread(self):
        """BLAS on one thread while a move is solved: its products are of a few hundred
        states, where a second thread's start costs more than it brings, and on two cores
        made a move of the shipped scenario take 130 to 560 ms instead of about 90."""
        from threadpoolctl import ThreadpoolController

        if self._blas is None:
            self._blas = ThreadpoolController()
        return self._blas.limit(limits=1, user_api="blas")

    def _variant(self, changed: tuple[tuple[str, str], ...]) -> Scenario:
        if not changed:
            return self.model
        from escalate.forecast.variants import with_triggers

        initial = {"on": 1.0, "off": 0.0}
        return with_triggers(self.model, {name: {"initial": initial[s]} for name, s in changed})

    def _trajectories(self) -> int:
        """As many trajectories as answer within :data:`MC_BUDGET_S` on this machine (a first
        run compiles or loads the kernel and is not timed)."""
        from escalate.engine.simulate import run_trajectories

        compiled = compile_scenario(self.model)
        fewest, most = MC_TRAJECTORIES
        run_trajectories(compiled, 256, MC_SEED)
        began = time.perf_counter()
        run_trajectories(compiled, fewest, MC_SEED)
        per = (time.perf_counter() - began) / fewest
        n = MC_BUDGET_S / max(per, 1e-9)
        return int(min(max(fewest, 1_000 * math.floor(n / 1_000)), most))

    # --- settings from and to a URL and a parameters file ---------------------------------

    def from_query(self, query: dict[str, str | list[str]]) -> Settings:
        """The settings a URL query asks for. Each unknown name, value that is not a number or
        an allowed state, or value outside its parameter's domain is left at the scenario's
        value and explained in ``messages``."""
        settings = Settings(dict(self.default.values), dict(self.default.triggers), self.horizon)
        for key, raw in query.items():
            text = (raw[-1] if isinstance(raw, list) else raw).strip()
            if key in self.controls:
                number = _number(text)
                problem = (
                    f"{text!r} is not a number" if number is None else self.problem(key, number)
                )
                if problem:
                    settings.messages.append(f"{key}={text}: {problem}; ignored")
                else:
                    settings.values[key] = number
            elif key in self.trigger_controls:
                if text in TRIGGER_STATES:
                    settings.triggers[key] = text
                else:
                    states = ", ".join(TRIGGER_STATES)
                    settings.messages.append(f"{key}={text}: a trigger is one of {states}; ignored")
            elif key == "horizon":
                number = _number(text)
                if number is None or number not in POSITIVE:
                    settings.messages.append(f"horizon={text}: must be a positive number; ignored")
                else:
                    settings.horizon = number
            else:
                names = [*self.controls, *self.trigger_controls, "horizon"]
                hint = suggest(key, names) or ""
                settings.messages.append(
                    f"{key}: no parameter or trigger of {self.model.scenario!r} has this name"
                    f"{hint}; ignored"
                )
        return settings

    def problem(self, name: str, value: float) -> str | None:
        """Why ``value`` cannot be parameter ``name``'s (outside its domain), or None."""
        problems = value_problems(self.model, self.model.point_values({name: value}))
        if not problems:
            return None
        return problems[0][1].split(", but", 1)[0]

    def to_query(self, settings: Settings) -> dict[str, str]:
        """The URL query of ``settings``: only what differs from the scenario."""
        query = {k: f"{v:.6g}" for k, v in settings.overrides(self.default).items()}
        query.update({k: s for k, s in settings.triggers.items() if s != "scenario"})
        if settings.horizon != self.horizon:
            query["horizon"] = f"{settings.horizon:.6g}"
        return query

    def params_file(self, settings: Settings) -> str:
        """``settings`` as a ``--params`` file (every parameter, the changed ones marked)."""
        changed = settings.overrides(self.default)
        lines = [
            f"# parameters of scenario {self.model.scenario!r}, exported from the explorer",
            f"# use: escalate solve {self.model.file} --params THIS_FILE",
        ]
        states = {k: s for k, s in settings.triggers.items() if s != "scenario"}
        if states or settings.horizon != self.horizon:
            lines.append(
                "# not parameters (give them on the command line or in a variants file): "
                + ", ".join([*(f"{k}: {s}" for k, s in states.items()),
                             *([f"--horizon {settings.horizon:g}"]
                               if settings.horizon != self.horizon else [])])
            )  # fmt: skip
        lines.append(f"scenario: {self.model.scenario}")
        for name, value in settings.values.items():
            lines.append(f"{name}: {value:.6g}" + ("  # changed" if name in changed else ""))
        return "\n".join(lines) + "\n"


def view_grid(model: Scenario, horizon: float, fastest: float = 0.0) -> np.ndarray:
    """The times of an exact answer's curves: every ``step`` whole time units (about
    :data:`VIEW_POINTS` points, and short enough that ``fastest``, the chain's largest total
    rate, times a step stays under 2: a short Taylor series then reaches any time between
    two points), with every Dec 31 the headline reads and the horizon.

    ``solve``'s grid has a point per time unit; a figure read at a grid point is the same on
    both (the dates between the steps come by a Taylor series, to 1e-15), and quantiles are
    found between grid points to 1e-12 either way, so the headline and the table are
    ``solve``'s, at a fraction of the steps.
    """
    longest = horizon / VIEW_POINTS if fastest <= 0 else min(horizon / VIEW_POINTS, 2 / fastest)
    step = max(1.0, float(math.floor(longest)))
    points = [*np.arange(0.0, horizon, step), horizon]
    if model.start_date is not None:
        first, last = model.date_of(0.0), model.date_of(horizon)
        points += [model.time_of(f"{year}-12-31") for year in range(first.year, last.year)]
    return np.unique(np.clip(points, 0.0, horizon))


def _controls(model: Scenario) -> list[Control]:
    """A control per parameter, in file order."""
    uses: dict[str, list[tuple]] = {}
    domains: dict[str, Interval] = {}
    for slot in number_slots(model):
        if isinstance(slot.raw, str) and slot.raw in model.parameters:
            uses.setdefault(slot.raw, []).append(slot.path)
            domains[slot.raw] = _narrower(domains.get(slot.raw), slot.domain)
    for i, transition in enumerate(model.transitions):
        for key, raw in (transition.after.raw() if transition.after else {}).items():
            if isinstance(raw, str) and raw in model.parameters:
                uses.setdefault(raw, []).append(("transitions", i, "after", key))
                domain = transition.after.domains.get(key, POSITIVE)
                domains[raw] = _narrower(domains.get(raw), domain)
    controls = []
    for name, parameter in model.parameters.items():
        domain = domains.get(name, Interval(-math.inf, math.inf))
        label, unit = _describe(model, uses.get(name, []))
        value = float(parameter.value)
        if parameter.uncertain is not None:
            dist = parameter.uncertain
            low, high = dist.scipy(dist.numbers()).ppf([0.05, 0.95])
            note = f"its uncertain 5-95% range, {dist.describe()}"
        elif value != 0:
            low, high = sorted((value / 4, value * 4))
            note = "a quarter to four times its value"
        else:
            low, high = 0.0, 1.0
            note = "0 to 1"
        low, high = min(low, value), max(high, value)
        low, high = _inside(low, domain), _inside(high, domain)
        step = _step(low, high)
        low = _inside(step * math.floor(low / step + 1e-9), domain)
        high = _inside(step * math.ceil(high / step - 1e-9), domain)
        controls.append(
            Control(name, label, unit, value, low, high, step, note, parameter.source, domain)
        )
    return controls


def _narrower(a: Interval | None, b: Interval) -> Interval:
    if a is None:
        return b
    low = max((a.low, not a.low_closed), (b.low, not b.low_closed))
    high = min((a.high, a.high_closed), (b.high, b.high_closed))
    return Interval(low[0], high[0], not low[1], high[1])


def _inside(x: float, domain: Interval) -> float:
    """``x`` moved inside ``domain`` (a hair inside an open end)."""
    margin = 1e-6 * max(1.0, abs(x))
    if x < domain.low or (x == domain.low and not domain.low_closed):
        x = domain.low if domain.low_closed else domain.low + margin
    if x > domain.high or (x == domain.high and not domain.high_closed):
        x = domain.high if domain.high_closed else domain.high - margin
    return float(x)


def _step(low: float, high: float) -> float:
    """A round step giving a slider some 100 to 1,000 positions."""
    span = high - low
    return 10.0 ** math.floor(math.log10(span / 100)) if span > 0 else 1.0


def _describe(model: Scenario, uses: list[tuple]) -> tuple[str, str]:
    """What a parameter is (from its first use) and its unit, e.g. ('mean time, Strikes ->
    Seizure', 'days'); '' and 'ratio' where the use says nothing better."""
    unit = model.time_unit
    if not uses:
        return "", ""
    path = uses[0]
    more = f" (and {len(uses) - 1} more)" if len(uses) > 1 else ""
    if path[0] == "transitions":
        transition = model.transitions[path[1]]
        move = f"{model.label(transition.from_)} → {model.label(transition.to)}"
        key = path[2]
        if key == "when":
            return f"× while {model.label(path[3])}, {move}{more}", "hazard ratio"
        if key == "effects":
            return f"chance {move} switches on {model.label(path[3])}{more}", "probability"
        if key == "after":
            return f"delay {path[3]}, {move}{more}", f"{unit}s" if path[3] != "shape" else ""
        word, units = _WORDS[key]
        return f"{word}, {move}{more}", units.format(unit=unit)
    trigger = model.label(path[1])
    if path[2] == "initial":
        word, units = _WORDS["initial"]
        return f"{trigger}: {word}{more}", units
    key = path[-1]
    if key == "when" or (len(path) > 3 and path[-2] == "when"):
        return f"{trigger} {path[2]} × while {model.label(path[-1])}{more}", "hazard ratio"
    word, units = _WORDS.get(key, (key, ""))
    return f"{trigger} {path[2]}: {word}{more}", units.format(unit=unit)


def _written(value) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def _number(text: str) -> float | None:
    try:
        number = float(text.replace("_", ""))
    except ValueError:
        return None
    return number if math.isfinite(number) else None
