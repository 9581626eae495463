"""The scenario language as pydantic models: the shape of a valid file, and its JSON Schema.

These models check structure (keys, types, forms). Rules that relate one part of a file to
another (names that exist, ranges of the parameters a number names, the graph) live in
``rules.py``; numbers are turned into rates and distributions in ``resolve.py``.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from escalate.errors import Issue

__all__ = [
    "DELAY_DISTRIBUTIONS",
    "EFFECT_KEYWORDS",
    "NAME_PATTERN",
    "UNCERTAIN_DISTRIBUTIONS",
    "Distribution",
    "Effect",
    "Interval",
    "OnsetAt",
    "OnsetTiming",
    "Parameter",
    "Scenario",
    "Stage",
    "TimePoint",
    "Timing",
    "Transition",
    "Trigger",
    "date_of",
    "parse_date",
    "time_of",
]

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
SCENARIO_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
_NAME = re.compile(NAME_PATTERN)


# --- numbers -------------------------------------------------------------------------------


def _finite_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number", "expected a number, got {got}", {"got": _show(value)})
    if not math.isfinite(value):
        raise PydanticCustomError("finite", "expected a finite number, got {got}", {"got": value})
    return float(value)


def _number_or_name(value: Any) -> float | str:
    if isinstance(value, str):
        if _NAME.match(value):
            return value
        raise PydanticCustomError(
            "number_or_name",
            "expected a number or a parameter name, got {got}",
            {"got": _show(value)},
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "number_or_name",
            "expected a number or a parameter name, got {got}",
            {"got": _show(value)},
        )
    return _finite_number(value)


_DATE_LIKE = re.compile(r"^[0-9]{4}-")
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def parse_date(text: str) -> date:
    """A ``YYYY-MM-DD`` date; ValueError with a short reason for anything else."""
    if not _ISO_DATE.match(text):
        raise ValueError(f"{text!r} is not a date: write YYYY-MM-DD (e.g. 2026-06-30)")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date ({exc})") from None


def days_per(time_unit: str) -> float:
    """Days in one time unit where dates apply (day or week)."""
    return 7.0 if time_unit == "week" else 1.0


def headline_stage(names: list[str], labels: list[str]) -> int:
    """The stage headline figures follow: the first whose key or label names a war, else the
    last stage (the top of the ladder, as scenarios list their stages)."""
    for i, (name, label) in enumerate(zip(names, labels, strict=True)):
        words = f"{name} {label}".lower().replace("_", " ").replace("-", " ").split()
        if "war" in words:
            return i
    return len(names) - 1


def time_of(point: float | date | str, start_date: date | str | None, time_unit: str) -> float:
    """A time point (a number, or a date ``YYYY-MM-DD``) as a number of ``time_unit`` since
    ``start_date``. Raises ValueError with the reason when it is neither, or when a date
    cannot be used: no start_date, month or year units, a date before start_date."""
    if isinstance(point, str):
        if not looks_like_date(point):
            try:
                return float(point)
            except ValueError:
                raise ValueError(f"{point!r} is neither a number nor a date YYYY-MM-DD") from None
        point = parse_date(point)
    if not isinstance(point, date):
        return float(point)
    if start_date is None:
        raise ValueError(f"the date {point} needs start_date (the date of t = 0) in the scenario")
    if isinstance(start_date, str):
        start_date = parse_date(start_date)
    if time_unit not in ("day", "week"):
        raise ValueError(
            f"a date needs time_unit day or week, not {time_unit} "
            "(months and years are not a fixed number of days)"
        )
    days = (point - start_date).days
    if days < 0:
        raise ValueError(f"the date {point} is before start_date {start_date}")
    return days / days_per(time_unit)


def date_of(time: float | None, start_date: date | str | None, time_unit: str) -> date | None:
    """The calendar date in which a time falls (None without ``start_date``)."""
    if start_date is None or time is None or not math.isfinite(time):
        return None
    if isinstance(start_date, str):
        start_date = parse_date(start_date)
    days = time * days_per(time_unit)
    return date.fromordinal(start_date.toordinal() + math.floor(days + 1e-9))


def when(time: float, start_date: date | str | None, time_unit: str) -> str:
    """A time as a reader wants it: its ISO date with ``start_date``, else ``day 38``."""
    day = date_of(time, start_date, time_unit)
    return day.isoformat() if day is not None else f"{time_unit} {time:g}"


def looks_like_date(value: Any) -> bool:
    return isinstance(value, str) and bool(_DATE_LIKE.match(value))


def _date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError(
            "date", "expected a date YYYY-MM-DD, got {got}", {"got": _show(value)}
        )
    try:
        return parse_date(value)
    except ValueError as exc:
        raise PydanticCustomError("date", str(exc)) from None


def _time_point(value: Any) -> float | date:
    if looks_like_date(value) or isinstance(value, date):
        return _date(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "time_point",
            "expected a number or a date YYYY-MM-DD, got {got}",
            {"got": _show(value)},
        )
    return _finite_number(value)


def _time_point_or_name(value: Any) -> float | str | date:
    if looks_like_date(value) or isinstance(value, date):
        return _date(value)
    return _number_or_name(value)


EFFECT_KEYWORDS = ("on", "off")


def _effect(value: Any) -> float | str:
    if isinstance(value, str) and value in EFFECT_KEYWORDS:
        return value
    try:
        return _number_or_name(value)
    except PydanticCustomError:
        raise PydanticCustomError(
            "effect",
            "an effect is on, off, or a probability (a number or a parameter name), got {got}",
            {"got": _show(value)},
        ) from None


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


def _stats():
    """scipy.stats, imported on first use (it costs half a second at start-up)."""
    from scipy import stats

    return stats


Real = Annotated[float, PlainValidator(_finite_number), WithJsonSchema({"type": "number"})]
"""A literal finite number."""

Number = Annotated[
    float | str,
    PlainValidator(_number_or_name),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string", "pattern": NAME_PATTERN}]}),
]
"""A finite number, or the name of a parameter whose value it takes."""

Name = Annotated[str, Field(pattern=NAME_PATTERN)]

_DATE_SCHEMA = {"type": "string", "format": "date"}


def _written(value: Any) -> Any:
    """A time point as the file writes it: a date as YYYY-MM-DD, a number or name as is."""
    return value.isoformat() if isinstance(value, date) else value


_AS_WRITTEN = PlainSerializer(_written)
Date = Annotated[date, PlainValidator(_date), _AS_WRITTEN, WithJsonSchema(_DATE_SCHEMA)]
"""A calendar date, ``YYYY-MM-DD``."""

TimePoint = Annotated[
    float | date,
    PlainValidator(_time_point),
    _AS_WRITTEN,
    WithJsonSchema({"anyOf": [{"type": "number"}, _DATE_SCHEMA]}),
]
"""A time: a number in the scenario's unit, or a date (with ``start_date``)."""

TimePointOrName = Annotated[
    float | str | date,
    PlainValidator(_time_point_or_name),
    _AS_WRITTEN,
    WithJsonSchema(
        {"anyOf": [{"type": "number"}, {"type": "string", "pattern": NAME_PATTERN}, _DATE_SCHEMA]}
    ),
]
"""A time, or the name of a parameter whose value it takes."""

Effect = Annotated[
    float | str,
    PlainValidator(_effect),
    WithJsonSchema(
        {
            "anyOf": [
                {"enum": list(EFFECT_KEYWORDS)},
                {"type": "number", "minimum": 0, "maximum": 1},
                {"type": "string", "pattern": NAME_PATTERN},
            ]
        }
    ),
]
"""What a transition does to a trigger: ``on``, ``off``, or switch it on with a probability."""


class Interval:
    """A range of real numbers with open or closed ends (supports and allowed domains)."""

    def __init__(self, low: float, high: float, low_closed: bool = True, high_closed: bool = True):
        self.low, self.high = low, high
        self.low_closed, self.high_closed = low_closed, high_closed

    def contains(self, other: Interval) -> bool:
        """Whether ``other`` lies inside this interval."""
        low_ok = other.low > self.low or (
            other.low == self.low and (self.low_closed or not other.low_closed)
        )
        high_ok = other.high < self.high or (
            other.high == self.high and (self.high_closed or not other.high_closed)
        )
        return low_ok and high_ok

    def __contains__(self, value: float) -> bool:
        return self.contains(Interval(value, value))

    def __str__(self) -> str:
        left = "[" if self.low_closed else "("
        right = "]" if self.high_closed else ")"
        return f"{left}{_fmt(self.low)}, {_fmt(self.high)}{right}"


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"


POSITIVE = Interval(0.0, math.inf, False, False)
NON_NEGATIVE = Interval(0.0, math.inf, True, False)
PROBABILITY = Interval(0.0, 1.0)
OPEN_PROBABILITY = Interval(0.0, 1.0, False, False)


# --- the base model ------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_null_and_note_keys(cls, data: Any, info: ValidationInfo) -> Any:
        # A key written with nothing after it (`invasion:`) means "all defaults".
        if data is None:
            data = {}
        # The loader passes a context in which it notes each mapping's allowed keys, so an
        # unknown key can be answered with the closest known one.
        if isinstance(info.context, dict) and isinstance(data, dict):
            info.context[id(data)] = [f.alias or name for name, f in cls.model_fields.items()]
        return data


# --- distributions ---------------------------------------------------------------------------


class Distribution(_Model):
    """A probability distribution given by a few named numbers (``dist`` names which)."""

    domains: ClassVar[dict[str, Interval]] = {}

    def raw(self) -> dict[str, float | str]:
        """The distribution's numbers as written (numbers or parameter names)."""
        return {k: v for k, v in self if k != "dist"}

    def numbers(self, values: dict[str, float] | None = None) -> dict[str, float]:
        """The distribution's numbers, parameter names replaced by their ``values``."""
        return {k: values[v] if isinstance(v, str) else v for k, v in self.raw().items()}

    def problems(self, p: dict[str, float]) -> list[tuple[str, str]]:
        """(key, message) for each number outside its domain or inconsistent with the others."""
        found = [
            (key, f"must be in {domain}, got {_fmt(p[key])}")
            for key, domain in self.domains.items()
            if p[key] not in domain
        ]
        return found or self._consistency(p)

    def _consistency(self, p: dict[str, float]) -> list[tuple[str, str]]:
        return []

    def support(self, p: dict[str, float]) -> Interval:
        """The range of values the distribution can take (almost surely)."""
        return POSITIVE

    def scipy(self, p: dict[str, float]) -> Any:
        """The equivalent frozen ``scipy.stats`` distribution."""
        raise NotImplementedError

    def expected(self, p: dict[str, float]) -> float:
        """The distribution's mean."""
        return float(self.scipy(p).mean())

    def describe(self) -> str:
        """Short text such as ``gamma(mean=40, sd=15)``."""
        args = ", ".join(
            f"{k}={v if isinstance(v, str) else _fmt(v)}" for k, v in self if k != "dist"
        )
        return f"{self.dist}({args})"  # type: ignore[attr-defined]


class Exponential(Distribution):
    """Exponential with the given mean (hazard 1/mean)."""

    dist: Literal["exponential"]
    mean: Number
    domains: ClassVar = {"mean": POSITIVE}

    def scipy(self, p):
        return _stats().expon(scale=p["mean"])


class Fixed(Distribution):
    """Always exactly ``value``."""

    dist: Literal["fixed"]
    value: Number
    domains: ClassVar = {"value": POSITIVE}

    def support(self, p):
        return Interval(p["value"], p["value"])

    def scipy(self, p):
        return _stats().uniform(loc=p["value"], scale=0.0)

    def expected(self, p):
        return p["value"]


class Uniform(Distribution):
    """Uniform between ``low`` and ``high``."""

    dist: Literal["uniform"]
    low: Number
    high: Number
    domains: ClassVar = {"low": NON_NEGATIVE, "high": POSITIVE}

    def _consistency(self, p):
        return [("high", "must be greater than low")] if p["high"] <= p["low"] else []

    def support(self, p):
        return Interval(p["low"], p["high"])

    def scipy(self, p):
        return _stats().uniform(loc=p["low"], scale=p["high"] - p["low"])


class Triangular(Distribution):
    """Triangular on [min, max] with its peak at ``mode``."""

    dist: Literal["triangular"]
    min: Number
    mode: Number
    max: Number
    domains: ClassVar = {}

    def _consistency(self, p):
        if p["max"] <= p["min"]:
            return [("max", "must be greater than min")]
        if not p["min"] <= p["mode"] <= p["max"]:
            return [("mode", "must lie between min and max")]
        return []

    def support(self, p):
        return Interval(p["min"], p["max"])

    def scipy(self, p):
        width = p["max"] - p["min"]
        return _stats().triang(c=(p["mode"] - p["min"]) / width, loc=p["min"], scale=width)


class Pert(Triangular):
    """PERT: a beta on [min, max] with mode ``mode`` and the classic weight 4 on the mode."""

    dist: Literal["pert"]  # type: ignore[assignment]

    def scipy(self, p):
        width = p["max"] - p["min"]
        a = 1 + 4 * (p["mode"] - p["min"]) / width
        b = 1 + 4 * (p["max"] - p["mode"]) / width
        return _stats().beta(a, b, loc=p["min"], scale=width)


class Beta(Distribution):
    """Beta(a, b) on (0, 1)."""

    dist: Literal["beta"]
    a: Number
    b: Number
    domains: ClassVar = {"a": POSITIVE, "b": POSITIVE}

    def support(self, p):
        return OPEN_PROBABILITY

    def scipy(self, p):
        return _stats().beta(p["a"], p["b"])


class Gamma(Distribution):
    """Gamma with the given mean and standard deviation."""

    dist: Literal["gamma"]
    mean: Number
    sd: Number
    domains: ClassVar = {"mean": POSITIVE, "sd": POSITIVE}

    def scipy(self, p):
        return _stats().gamma(a=(p["mean"] / p["sd"]) ** 2, scale=p["sd"] ** 2 / p["mean"])


class Weibull(Distribution):
    """Weibull with the given shape and scale."""

    dist: Literal["weibull"]
    shape: Number
    scale: Number
    domains: ClassVar = {"shape": POSITIVE, "scale": POSITIVE}

    def scipy(self, p):
        return _stats().weibull_min(p["shape"], scale=p["scale"])


Z90 = 1.2815515655446004  # standard normal 90% quantile


class LogNormal(Distribution):
    """Log-normal given by its median and its 90% quantile."""

    dist: Literal["lognormal"]
    median: Number
    p90: Number
    domains: ClassVar = {"median": POSITIVE, "p90": POSITIVE}

    def _consistency(self, p):
        return [("p90", "must be greater than median")] if p["p90"] <= p["median"] else []

    def scipy(self, p):
        return _stats().lognorm(s=math.log(p["p90"] / p["median"]) / Z90, scale=p["median"])


def _by_dist(*classes: type[Distribution]) -> Any:
    return Annotated[
        classes[0] if len(classes) == 1 else _union(classes), Field(discriminator="dist")
    ]


def _union(classes):
    union = classes[0]
    for cls in classes[1:]:
        union = union | cls
    return union


DelayDistribution = _by_dist(Exponential, Fixed, Uniform, Gamma, Weibull, LogNormal)
UncertainDistribution = _by_dist(Uniform, Triangular, Pert, Beta, LogNormal, Gamma)
DELAY_DISTRIBUTIONS = ("exponential", "fixed", "uniform", "gamma", "weibull", "lognormal")
UNCERTAIN_DISTRIBUTIONS = ("uniform", "triangular", "pert", "beta", "lognormal", "gamma")


# --- the language ------------------------------------------------------------------------------


class Parameter(_Model):
    """A named number that timings, ratios and probabilities may refer to by name."""

    value: Real
    """The point value, used unless a run overrides it (`--set`) or draws worlds."""
    uncertain: UncertainDistribution | None = None
    """The distribution of plausible values, for worlds and sensitivity analysis."""
    source: str | None = None
    """Provenance: the claim this number encodes."""


def _also_null(schema: dict[str, Any]) -> None:
    schema["type"] = ["object", "null"]


class Stage(_Model):
    """A stage of the crisis."""

    model_config = ConfigDict(json_schema_extra=_also_null)

    label: str | None = None
    """Display name (default: the stage's key)."""
    terminal: bool = False
    """A terminal stage ends the trajectory: nothing happens after entering it."""


class Timing(_Model):
    """How long until something happens: exactly one of the timing forms."""

    rate: Number | None = None
    """Exponential timing with this hazard per time unit."""
    mean: Number | None = None
    """Exponential timing with this mean."""
    chance: Number | None = None
    """Exponential timing with P(T <= within) = chance (needs `within`)."""
    within: Number | None = None
    """The time span of `chance`."""
    after: DelayDistribution | None = None
    """A latent time drawn from a distribution (not memoryless unless exponential)."""

    def forms(self) -> list[str]:
        """The timing forms given (`chance` and `within` count as one form, `chance`)."""
        given = [k for k in ("rate", "mean", "chance", "after") if getattr(self, k) is not None]
        if self.within is not None and self.chance is None:
            given.append("within")
        return given

    def describe(self) -> str:
        """The timing as written, e.g. ``mean seizure_mean`` or ``gamma(mean=40, sd=15)``."""

        def text(x):
            return x if isinstance(x, str) else _fmt(x)

        if self.rate is not None:
            return f"rate {text(self.rate)}"
        if self.mean is not None:
            return f"mean {text(self.mean)}"
        if self.chance is not None:
            return f"chance {text(self.chance)} within {text(self.within)}"
        if self.after is not None:
            return self.after.describe()
        return "none"


class OnsetTiming(Timing):
    """An exponential timing for a trigger's onset or offset."""

    when: dict[Name, Number] = Field(default_factory=dict)
    """Hazard ratio while each named other trigger is on; 0 blocks."""


class OnsetAt(_Model):
    """A trigger that switches on at a fixed time, whatever the stage."""

    at: TimePointOrName
    """The time it switches on (a number, a parameter name, or a date)."""


def _onset_form(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return "<at>" if isinstance(value, OnsetAt) else "<every stage>"
    if not isinstance(value, dict):
        return None
    if "at" in value and not isinstance(value["at"], dict):
        return "<at>"
    if set(value) & _TIMING_KEYS:
        return "<every stage>"
    if value and all(isinstance(v, dict | BaseModel) or v is None for v in value.values()):
        return "<per stage>"
    return "<every stage>"


_TIMING_KEYS = {"rate", "mean", "chance", "within", "after", "when"}


def _offset_form(value: Any) -> str | None:
    form = _onset_form(value)
    return None if form == "<at>" else form


Onset = Annotated[
    Annotated[OnsetAt, Tag("<at>")]
    | Annotated[OnsetTiming, Tag("<every stage>")]
    | Annotated[dict[Name, OnsetTiming], Tag("<per stage>")],
    Discriminator(
        _onset_form,
        custom_error_type="onset_form",
        custom_error_message=(
            "an onset is a mapping: {at: T}, one exponential timing such as {rate: R}, "
            "or a timing per stage such as {stage_name: {mean: M}}"
        ),
    ),
]


Offset = Annotated[
    Annotated[OnsetTiming, Tag("<every stage>")]
    | Annotated[dict[Name, OnsetTiming], Tag("<per stage>")],
    Discriminator(
        _offset_form,
        custom_error_type="offset_form",
        custom_error_message=(
            "an offset is a mapping: one exponential timing such as {mean: M}, "
            "or a timing per stage such as {stage_name: {mean: M}}"
        ),
    ),
]


class Trigger(_Model):
    """An event that switches on (and, with an offset, off) and changes transition speeds."""

    model_config = ConfigDict(json_schema_extra=_also_null)

    label: str | None = None
    """Display name (default: the trigger's key)."""
    initial: Number = 0.0
    """Probability that it is already on at t = 0."""
    onset: Onset | None = None
    """How it switches on: per stage, one timing for every non-terminal stage, or `at`."""
    offset: Offset | None = None
    """How it switches off again while on: per stage, or one timing for every stage."""


class Transition(Timing):
    """A possible move from one stage to another, with its timing."""

    from_: Name = Field(alias="from")
    """The stage it leaves."""
    to: Name
    """The stage it enters."""
    when: dict[Name, Number] = Field(default_factory=dict)
    """Hazard ratio (clock speed) while each named trigger is on; 0 blocks."""
    requires: list[Name] = Field(default_factory=list)
    """Triggers that must all be on for the transition to be possible."""
    effects: dict[Name, Effect] = Field(default_factory=dict)
    """Triggers this transition changes as it fires, in order: on, off, or a probability."""
    source: str | None = None
    """Provenance: the claim this transition encodes."""


def _start_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "<stage>"
    if isinstance(value, dict):
        return "<mapping>"
    return None


Start = Annotated[
    Annotated[Name, Tag("<stage>")] | Annotated[dict[Name, Real], Tag("<mapping>")],
    Discriminator(
        _start_form,
        custom_error_type="start_form",
        custom_error_message="start is a stage name, or a mapping of stage names to probabilities",
    ),
]


class Scenario(_Model):
    """A staged escalation scenario: stages, transitions between them, and triggers."""

    model_config = ConfigDict(title="escalate scenario")

    scenario: Annotated[str, Field(pattern=SCENARIO_ID_PATTERN)]
    """Identifier: lowercase letters, digits, '-' and '_'."""
    title: str | None = None
    """A human title."""
    description: str | None = None
    """Free text: what the scenario encodes and how to read it."""
    time_unit: Literal["day", "week", "month", "year"] = "day"
    """The unit of every time and rate in the file (a label only)."""
    start_date: Date | None = None
    """The calendar date of t = 0 (needs time_unit day or week); any time may then be a date."""
    horizon: TimePoint
    """Trajectories are followed for this long (or up to this date)."""
    start: Start
    """The starting stage, or a mapping stage -> probability summing to 1."""
    parameters: dict[Name, Parameter] = Field(default_factory=dict)
    """Named numbers that timings, ratios and probabilities may refer to."""
    stages: Annotated[dict[Name, Stage], Field(min_length=1)]
    """The stages, in display order."""
    triggers: dict[Name, Trigger] = Field(default_factory=dict)
    """Events that change transition speeds once they switch on."""
    transitions: Annotated[list[Transition], Field(min_length=1)]
    """The possible moves between stages."""

    _file: str = PrivateAttr(default="<string>")
    _sha256: str = PrivateAttr(default="")
    _warnings: tuple = PrivateAttr(default=())
    _document: Any = PrivateAttr(default=None)

    @property
    def file(self) -> str:
        """The file the scenario was read from."""
        return self._file

    @property
    def sha256(self) -> str:
        """SHA-256 of the file's bytes (for run manifests)."""
        return self._sha256

    @property
    def warnings(self) -> tuple:
        """Located warnings found at load time (unreachable stages, unused parameters...)."""
        return self._warnings

    def issue(self, path: tuple, message: str) -> Issue:
        """A located :class:`~escalate.errors.Issue` about ``path`` in this scenario's file."""
        if self._document is not None:
            return self._document.issue(path, message)
        return Issue(self.file, 0, 0, path, message)

    def label(self, name: str) -> str:
        """The display label of a stage or trigger."""
        item = self.stages.get(name) or self.triggers.get(name)
        return (item.label if item is not None and item.label else None) or name

    def time_of(self, point: float | date | str) -> float:
        """A time point as a number in the scenario's unit: a date becomes the days since
        ``start_date`` (divided by 7 in weeks). Raises ValueError with the reason when a date
        cannot be used here."""
        return time_of(point, self.start_date, self.time_unit)

    def date_of(self, time: float) -> date | None:
        """The calendar date in which a time falls (None without ``start_date``)."""
        return date_of(time, self.start_date, self.time_unit)

    @property
    def horizon_time(self) -> float:
        """The horizon as a number in the scenario's unit (a date horizon converted)."""
        try:
            return self.time_of(self.horizon)
        except ValueError:  # reported by the rules at load time
            return math.nan

    def when(self, time: float) -> str:
        """A time as a reader wants it (see :func:`when`)."""
        return when(time, self.start_date, self.time_unit)

    def headline_stage(self) -> int:
        """The stage headline figures follow (see :func:`headline_stage`)."""
        return headline_stage(list(self.stages), [self.label(n) for n in self.stages])

    def point_values(self, overrides: dict[str, float] | None = None) -> dict[str, float]:
        """Each parameter's point value, with ``overrides`` applied (names are not checked)."""
        values = {name: p.value for name, p in self.parameters.items()}
        values.update(overrides or {})
        return values

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of the scenario language, for editors and checkers."""
        schema = cls.model_json_schema(by_alias=True)
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
