"""Fuzzing the loader: whatever the input, the only exception is ScenarioError.

Random text and bytes, random YAML documents built from the language's own words, and random
mutations of the shipped scenarios (on the data and on the text). A file that loads must also
resolve, with finite positive rates.
"""

from __future__ import annotations

import math
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalate.errors import ScenarioError
from escalate.scenario import loads
from escalate.scenario.resolve import resolve

from .conftest import SCENARIOS

EXAMPLES = int(os.environ.get("ESCALATE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run; ESCALATE_FUZZ_EXAMPLES explores more
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

WORDS = (
    "scenario title description time_unit horizon start parameters stages triggers transitions "
    "label terminal initial onset from to rate mean chance within after when requires source "
    "value uncertain dist low high min mode max a b median p90 sd shape scale at "
    "exponential fixed uniform gamma weibull lognormal triangular pert beta day week "
    "s1 s2 s3 t1 t2 p1"
).split()
SHIPPED = [path.read_text(encoding="utf-8") for path in SCENARIOS]


def load_outcome(source: str | bytes) -> None:
    """Load ``source``; it must either load and resolve, or raise ScenarioError."""
    try:
        scenario = loads(source, "fuzz.yaml")
    except ScenarioError as error:
        assert error.issues
        for issue in error.issues:
            assert issue.file == "fuzz.yaml" and issue.line >= 0 and str(issue)
        return
    resolved = resolve(scenario)
    for transition in resolved.transitions:
        assert transition.rate is None or (math.isfinite(transition.rate) and transition.rate > 0)
    for trigger in resolved.triggers:
        assert 0 <= trigger.initial <= 1
        assert all(math.isfinite(r) and r > 0 for r in trigger.onset_rates.values())


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=8),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(WORDS), inner, max_size=5),
    ),
    max_leaves=40,
)


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text):
    load_outcome(text)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data):
    load_outcome(data)


@FUZZ
@given(documents)
def test_random_documents(document):
    load_outcome(yaml.safe_dump(document, allow_unicode=True))


def _nodes(data, path=()):
    yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _nodes(value, (*path, i))


@pytest.mark.slow
@FUZZ
@given(st.sampled_from(range(len(SHIPPED))), st.data())
def test_mutated_shipped_scenarios(which, data):
    document = yaml.safe_load(SHIPPED[which])
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _nodes(document) if p]
        path = data.draw(st.sampled_from(paths))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["delete", "replace", "rename", "number"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = data.draw(documents)
        elif action == "rename" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(WORDS))] = parent.pop(path[-1])
        elif action == "number":
            parent[path[-1]] = data.draw(
                st.sampled_from([0, -1, 1, 1.0 - 1e-16, 1e-300, 1e300, math.inf, math.nan])
            )
    load_outcome(yaml.safe_dump(document, allow_unicode=True))


@FUZZ
@given(st.sampled_from(range(len(SHIPPED))), st.data())
def test_text_mutations_of_shipped_scenarios(which, data):
    lines = SHIPPED[which].splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "duplicate", "insert", "indent"]))
        if action == "drop":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "insert":
            column = data.draw(st.integers(0, len(lines[i])))
            char = data.draw(st.sampled_from([*":-{}[]&*!|>'\"#\t ", "\x00", "\u2028"]))
            lines[i] = lines[i][:column] + char + lines[i][column:]
        else:
            lines[i] = "  " + lines[i]
        if not lines:
            break
    load_outcome("".join(lines))
