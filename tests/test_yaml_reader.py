"""The YAML reader: YAML 1.2 scalars, keys as written, positions of keys and values."""

from __future__ import annotations

import math

import pytest

from escalate.errors import ScenarioError
from escalate.scenario._yaml import parse_yaml


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e6", 1e6),
        ("1_000_000", 1_000_000),
        ("0.25", 0.25),
        ("-3", -3),
        ("0x1f", 31),
        ("010", 10),  # YAML 1.1 would read octal 8
        (".inf", math.inf),
        ("true", True),
        ("False", False),
        ("yes", "yes"),  # YAML 1.1 would read True (the 'Norway problem')
        ("no", "no"),
        ("on", "on"),
        ("~", None),
        ("null", None),
        ("", None),
        ("2025-11-07", "2025-11-07"),  # no implicit timestamps
        ("'12'", "12"),
        ("1:30", "1:30"),  # no sexagesimal numbers
    ],
)
def test_scalars_follow_yaml_1_2(text, expected):
    assert parse_yaml(f"x: {text}\n").data == {"x": expected}


def test_keys_are_the_text_written():
    assert parse_yaml("no: 1\n3: 2\ntrue: 3\n").data == {"no": 1, "3": 2, "true": 3}


def test_positions_of_keys_and_values():
    doc = parse_yaml("a:\n  b: [1, 2]\n  c:\n    - {d: 5}\n")
    assert doc.key_marks[("a", "b")] == (2, 3)
    assert doc.value_marks[("a", "b")] == (2, 6)
    assert doc.value_marks[("a", "b", 1)] == (2, 10)
    assert doc.value_marks[("a", "c", 0, "d")] == (4, 11)
    assert doc.mark(("a", "c", 0, "missing")) == (4, 7)


def test_aliases_expand_within_limits():
    doc = parse_yaml("base: &w {t: 2}\nother: *w\n")
    assert doc.data["other"] == {"t": 2}


def test_duplicate_key_names_both_lines():
    with pytest.raises(ScenarioError, match=r"duplicate key 'a' \(first defined at line 1\)"):
        parse_yaml("a: 1\nb: 2\na: 3\n", "f.yaml")


def test_utf8_bom_is_accepted():
    assert parse_yaml("\ufeffa: 1\n".encode()).data == {"a": 1}


def test_non_printable_character_is_located():
    with pytest.raises(ScenarioError) as info:
        parse_yaml("a: 1\nb: \x07\n", "f.yaml")
    issue = info.value.issues[0]
    assert (issue.line, issue.column) == (2, 4)
