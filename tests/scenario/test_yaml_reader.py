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


def _same_graph(a, b, where="root"):
    assert type(a) is type(b), where
    assert (a.tag, a.start_mark.line, a.start_mark.column) == (
        b.tag,
        b.start_mark.line,
        b.start_mark.column,
    ), where
    if isinstance(a.value, list):
        assert len(a.value) == len(b.value), where
        for i, (x, y) in enumerate(zip(a.value, b.value, strict=True)):
            if isinstance(x, tuple):  # a mapping's (key, value)
                _same_graph(x[0], y[0], f"{where} key {i}")
                _same_graph(x[1], y[1], f"{where} value {i}")
            else:
                _same_graph(x, y, f"{where}[{i}]")
    else:
        assert a.value == b.value, where


def test_libyaml_composes_the_graph_pyyaml_composes():
    """Where PyYAML has libyaml, it composes every YAML file of the project: the same nodes,
    tags, values, lines and columns as PyYAML's own loader (which parse_yaml keeps for files
    with a problem, and for machines without libyaml)."""
    from pathlib import Path

    from escalate.scenario import _yaml

    if _yaml._FastLoader is None:
        pytest.skip("PyYAML without libyaml: parse_yaml uses its own loader alone")
    root = Path(__file__).parents[2]
    files = sorted([*root.glob("scenarios/**/*.yaml"), *root.glob("benchmarks/*.yaml")])
    assert len(files) >= 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        fast = _yaml._fast_node(text)
        loader = _yaml._Loader(text)
        _same_graph(fast, loader.get_single_node(), str(path))
        loader.dispose()


@pytest.mark.parametrize(
    "text",
    [
        *("a: 1\n  b: 2\n", "a: [1, 2\n", "a: 1\na: {b: 1, b\n", "x: \x07\n", "--- 1\n--- 2\n"),
        *("a: 1\t\n", "a: b\tc\n", "a\t: 1\n", "x: [1,\t2]\n"),  # tabs libyaml would accept
    ],
)
def test_a_file_libyaml_finds_a_problem_in_reads_as_pyyaml_reports_it(text, monkeypatch):
    """libyaml's messages and marks are not PyYAML's: a file it cannot read is read again by
    PyYAML's loader, so the error is the one parse_yaml gives without libyaml. libyaml would
    accept the tabs of the last four: text with a tab goes to PyYAML's loader at once."""
    from escalate.scenario import _yaml

    with pytest.raises(ScenarioError) as fast:
        parse_yaml(text, "f.yaml")
    monkeypatch.setattr(_yaml, "_FastLoader", None)
    with pytest.raises(ScenarioError) as alone:
        parse_yaml(text, "f.yaml")
    assert str(fast.value) == str(alone.value)
