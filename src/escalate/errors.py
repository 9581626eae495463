"""The one exception type users see, and the located messages it carries.

Every problem with a scenario (or with a command's arguments that name something in it) is an
:class:`Issue` with a location. Problems are collected, then raised once as a
:class:`ScenarioError`; the command line renders them as ``FILE:LINE:COL: key.path: message``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EscalateError", "Issue", "ScenarioError", "format_path"]


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
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        kind = "warning: " if self.severity == "warning" else ""
        return f"{where}: {format_path(self.path)}: {kind}{self.message}"


class EscalateError(Exception):
    """Base of every error escalate raises on purpose (bad input, bad arguments)."""


class ScenarioError(EscalateError):
    """A scenario file is invalid; ``issues`` lists every problem found, in file order."""

    def __reduce__(self):  # picklable, so a Dask task can raise it
        return type(self), (self.issues,)

    def __init__(self, issues: list[Issue]):
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.column))
        super().__init__("\n".join(str(issue) for issue in self.issues))
