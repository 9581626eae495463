"""Load a scenario: YAML with positions -> pydantic model -> cross-reference rules.

Every problem becomes an :class:`~escalate.errors.Issue` located at the key or value it is
about; all problems of a file are raised together as one :class:`ScenarioError`. Shape errors
(unknown keys, wrong types, missing keys) come first: the cross-reference rules need a file whose
shape is valid, so they are checked once the shape errors are fixed.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from escalate.errors import Issue, ScenarioError, suggest
from escalate.scenario._yaml import Document, parse_yaml, read_yaml
from escalate.scenario.model import DELAY_DISTRIBUTIONS, UNCERTAIN_DISTRIBUTIONS, Scenario
from escalate.scenario.rules import check

__all__ = ["load", "loads"]

_TOP_KEYS = list(Scenario.model_fields)


def load(path: str | Path) -> Scenario:
    """Read and validate the scenario file at ``path``.

    Parameters
    ----------
    path : str or Path
        A YAML scenario file (docs/language.md describes the language).

    Returns
    -------
    Scenario
        The validated scenario; ``.warnings`` holds located warnings (unreachable stages,
        unused parameters).

    Raises
    ------
    ScenarioError
        With every problem found, each located as ``FILE:LINE:COL: key.path: message``.
    """
    document = read_yaml(path)
    scenario = _validate(document)
    scenario._sha256 = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return scenario


def loads(text: str | bytes, file: str = "<string>") -> Scenario:
    """Validate a scenario given as YAML text (or UTF-8 bytes); ``file`` names it in messages."""
    scenario = _validate(parse_yaml(text, file))
    raw = text.encode() if isinstance(text, str) else text
    scenario._sha256 = hashlib.sha256(raw).hexdigest()
    return scenario


def _validate(doc: Document) -> Scenario:
    data = doc.data
    if data is None:
        raise ScenarioError(
            [doc.issue((), "the file is empty: a scenario is a mapping with keys " + _required())]
        )
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single value ({data!r:.40})"
        raise ScenarioError(
            [doc.issue((), f"expected a mapping with keys {_required()}, got {kind}")]
        )
    allowed: dict[int, list[str]] = {}
    try:
        scenario = Scenario.model_validate(data, context=allowed)
    except ValidationError as exc:
        issues = [_translate(e, doc, allowed) for e in exc.errors()]
        raise ScenarioError(issues + _beyond_shape_errors(doc, exc.errors())) from None
    scenario._file = doc.file
    scenario._document = doc
    issues = check(scenario, doc)
    if any(issue.severity == "error" for issue in issues):
        raise ScenarioError(issues)
    scenario._warnings = tuple(issues)
    return scenario


def _beyond_shape_errors(doc: Document, errors: list[dict]) -> list[Issue]:
    """The other errors of a file with shape errors, so that one run lists every error: the
    keys at fault are set aside (each error's own key in a mapping; where one cannot be, none
    is), the rest validated again and its cross-reference rules checked, and what that finds
    reported but near a key set aside (a transition whose only timing was set aside would
    otherwise be said to have none)."""
    import copy

    data = copy.deepcopy(doc.data)
    aside = []
    for error in errors:
        path, parent = _data_path(error["loc"], data)
        if not path or not isinstance(parent, dict) or path[-1] not in parent:
            return []  # a list item, or a key that is missing: nothing to set aside
        aside.append(path)
    for path in sorted(aside, key=len, reverse=True):
        node = data
        for part in path[:-1]:
            node = node[part]
        if isinstance(node, dict):
            node.pop(path[-1], None)

    def near(issue: Issue) -> bool:
        return any(
            issue.path[: len(path)] == path or path[: len(issue.path)] == issue.path
            for path in aside
        )

    allowed: dict[int, list[str]] = {}
    try:
        scenario = Scenario.model_validate(data, context=allowed)
    except ValidationError as exc:
        pruned = Document(doc.file, data, doc.value_marks, doc.key_marks)
        found = [_translate(e, pruned, allowed) for e in exc.errors()]
    else:
        scenario._file = doc.file
        found = [issue for issue in check(scenario, doc) if issue.severity == "error"]
    return [issue for issue in found if not near(issue)]


def _required() -> str:
    return "scenario, horizon, start, stages, transitions"


def _data_path(loc: tuple, data: Any) -> tuple[tuple, Any]:
    """Map a pydantic ``loc`` onto the data: (path, parent of the node at that path).

    Elements that are not in the data (union tags such as ``gamma`` or ``<per stage>``) are
    dropped; the last element is kept even when absent (a missing key).
    """
    path: list = []
    node, parent = data, None
    for k, element in enumerate(loc):
        in_mapping = isinstance(node, dict) and element in node
        in_list = isinstance(node, list) and isinstance(element, int) and 0 <= element < len(node)
        if in_mapping or in_list:
            path.append(element)
            parent, node = node, node[element]
        elif k == len(loc) - 1 and isinstance(element, str) and element[:1] not in "[<":
            path.append(element)
            parent, node = node, None
    return tuple(path), parent


def _translate(error: dict, doc: Document, allowed: dict[int, list[str]]) -> Issue:
    kind, loc = error["type"], error["loc"]
    path, parent = _data_path(loc, doc.data)
    at_key = loc[-1:] == ("[key]",)
    got = error.get("input")

    if kind == "extra_forbidden":
        key = path[-1]
        choices = allowed.get(id(parent), [])
        message = f"unknown key {key!r}{suggest(str(key), choices)}"
        if choices and not suggest(str(key), choices):
            message += f" (allowed here: {', '.join(choices)})"
        return doc.issue(path, message, at_key=True)
    if kind == "missing":
        return doc.issue(path, f"missing required key {path[-1]!r}")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        names = UNCERTAIN_DISTRIBUTIONS if path[:1] == ("parameters",) else DELAY_DISTRIBUTIONS
        if kind == "union_tag_not_found":
            return doc.issue(path, f"missing key 'dist': one of {', '.join(names)}")
        tag = str(error["ctx"]["tag"])
        return doc.issue(
            (*path, "dist"),
            f"{tag!r} is not a distribution allowed here{suggest(tag, names)} "
            f"(one of: {', '.join(names)})",
        )
    if kind == "string_pattern_mismatch":
        if path[-1:] == ("scenario",):
            rule = "use lowercase letters, digits, '-' and '_'"
        else:
            rule = "use letters, digits, '_' and '-', starting with a letter"
        return doc.issue(path, f"{got!r} is not a valid name: {rule}", at_key=at_key)
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", error["ctx"]["expected"])
        return doc.issue(
            path, f"expected one of {', '.join(choices)}, got {got!r}{suggest(str(got), choices)}"
        )
    if kind == "string_type":
        return doc.issue(path, f"expected text, got {_kind(got)}")
    if kind == "bool_type":
        return doc.issue(path, f"expected true or false, got {_kind(got)}")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return doc.issue(path, f"expected a mapping (key: value lines), got {_kind(got)}")
    if kind == "list_type":
        return doc.issue(path, f"expected a list, got {_kind(got)}")
    if kind == "too_short":
        return doc.issue(path, "must not be empty")
    if kind == "frozen_instance":  # pragma: no cover - cannot come from a file
        return doc.issue(path, error["msg"])
    return doc.issue(path, error["msg"][0].lower() + error["msg"][1:], at_key=at_key)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


# The JSON Schema lists every top-level key; keep the hint list in step with it.
assert set(_required().split(", ")) <= set(_TOP_KEYS)
