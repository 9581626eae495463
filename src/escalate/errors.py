"""The one exception type users see, and the located messages it carries.

Every problem with a scenario (or with a command's arguments that name something in it) is an
:class:`Issue` with a location. Problems are collected, then raised once as a
:class:`ScenarioError`; the command line renders them as ``FILE:LINE:COL: key.path: message``.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["EscalateError", "Issue", "ScenarioError", "format_path", "suggest"]


def suggest(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when a choice is close to ``word`` (by spelling, else the
    choices that contain it whole: 'war' -> 'full_scale_war' or 'protracted_war', at most
    three), else ``""``."""
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close and len(word) >= 3:
        close = [c for c in choices if word in c][:3]
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def format_path(path: tuple[str | int, ...]) -> str:
    """Render a key path as ``transitions[2].when.venezuela_mobilizes``.

    An empty path (the document itself) renders as ``(document)``.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(document)"


@dataclass(frozen=True)
class Issue:
    """One located problem (or warning) in a scenario file.

    ``line`` and ``column`` count from 1; both are 0 when the problem has no place in the text
    (the file cannot be read at all).
    """

    file: str
    line: int
    column: int
    path: tuple[str | int, ...]
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        kind = "warning: " if self.severity == "warning" else ""
        if not self.line and not self.path:  # the file as a whole: it cannot be read
            return f"{self.file}: {kind}{self.message}"
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {format_path(self.path)}: {kind}{self.message}"


class EscalateError(Exception):
    """Base of every error escalate raises on purpose (bad input, bad arguments).

    A message about an argument names its Python parameter (``seed must be a non-negative
    integer, got -1``), and ``parameter`` holds that name (None when the message is about no
    parameter). The command line shows its flag in the same place instead (``--seed must
    be ...``) through :meth:`naming`: the library never speaks in flags.

    Parameters
    ----------
    message : str
    parameter : str, optional
        The parameter the message is about; the message starts with its name.
    """

    def __init__(self, message: str, *, parameter: str | None = None):
        if parameter is not None and not message.startswith(parameter):
            raise ValueError(f"{message!r} does not start with the parameter {parameter!r}")
        super().__init__(message)
        self.parameter = parameter
        # the message cut where it names parameters: text at the even places, names at the odd
        self._parts = (
            (message,) if parameter is None else ("", parameter, message[len(parameter) :])
        )

    @classmethod
    def about(cls, template: str, *values: Any) -> EscalateError:
        """An error whose message names parameters in several places.

        ``{name}`` fields of ``template`` are parameter names; positional fields (``{}``,
        ``{!r}``, ``{:g}``) format ``values``, as :meth:`str.format` does::

            EscalateError.about("{precision} must be positive, got {:g}", precision)
        """
        formatter = string.Formatter()
        parts, auto = [""], iter(range(len(values)))
        for literal, field, spec, conversion in formatter.parse(template):
            parts[-1] += literal
            if field is None:
                continue
            if field.isidentifier():
                parts += [field, ""]
                continue
            value = formatter.convert_field(values[int(field or next(auto))], conversion)
            parts[-1] += formatter.format_field(value, spec or "")
        return cls._of(parts)

    @classmethod
    def _of(cls, parts: list[str] | tuple[str, ...]) -> EscalateError:
        error = cls("".join(parts))
        error._parts = tuple(parts)
        error.parameter = parts[1] if len(parts) > 1 else None
        return error

    def naming(self, names: Mapping[str, str]) -> str:
        """The message with each parameter named as ``names`` maps it (e.g. to a flag); a
        parameter ``names`` lacks keeps its own name."""
        return "".join(
            names.get(part, part) if i % 2 else part for i, part in enumerate(self._parts)
        )

    def within(self, context: str) -> EscalateError:
        """This error as a caller reports it: ``context`` (``"world 3: "``), then the same
        message, naming the same parameters."""
        return EscalateError._of((context + self._parts[0], *self._parts[1:]))


class ScenarioError(EscalateError):
    """A scenario file is invalid; ``issues`` lists every problem found, in file order."""

    def __reduce__(self):  # picklable, so a Dask task can raise it
        return type(self), (self.issues,)

    def __init__(self, issues: list[Issue]):
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.column))
        super().__init__("\n".join(str(issue) for issue in self.issues))
