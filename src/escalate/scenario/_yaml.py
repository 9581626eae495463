"""Read a YAML file into plain data, keeping the line and column of every key and value.

Plain PyYAML keeps the last of two duplicate keys silently, resolves ``no`` to ``False``
(YAML 1.1) and expands alias bombs without limit. This reader composes the node graph with
PyYAML, then builds the data itself: duplicate keys are errors, scalars follow the YAML 1.2 core
schema (``true``/``false`` only; ``1e6`` is a number; ``1_000`` too), keys are always the text
written, only the standard tags are accepted, and expansion is bounded in nodes and depth.

The node graph comes from libyaml where PyYAML was built with it (the same graph, marks
included, about ten times faster: 2 ms for the shipped scenario against 19 ms, which a
command's start-up feels); a file libyaml finds a problem in, or with a tab anywhere, is
parsed again by PyYAML's own loader, whose messages and positions the errors report.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from escalate.errors import Issue, ScenarioError

__all__ = ["Document", "parse_yaml", "read_yaml"]

MAX_BYTES = 5_000_000
MAX_NODES = 100_000
MAX_DEPTH = 50

Path_ = tuple[str | int, ...]
Mark = tuple[int, int]

_TAG = "tag:yaml.org,2002:"


class _CoreResolver(BaseResolver):
    """Implicit tags of the YAML 1.2 core schema, with ``_`` allowed between digits."""


_NUMBER_START = list("-+0123456789.")
_CoreResolver.add_implicit_resolver(
    _TAG + "null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_CoreResolver.add_implicit_resolver(
    _TAG + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CoreResolver.add_implicit_resolver(
    _TAG + "int",
    re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$"),
    _NUMBER_START,
)
_CoreResolver.add_implicit_resolver(
    _TAG + "float",
    re.compile(
        r"""^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    _NUMBER_START,
)


class _Loader(Reader, Scanner, Parser, Composer, _CoreResolver):
    """PyYAML's reader, scanner, parser and composer: a node graph, nothing constructed."""

    def __init__(self, stream: str):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _CoreResolver.__init__(self)


try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml
    CParser = None

if CParser is not None:

    class _FastLoader(CParser, _CoreResolver):
        """libyaml's parser and composer with the same resolver: the same node graph."""

        def __init__(self, stream: str):
            CParser.__init__(self, stream)
            _CoreResolver.__init__(self)
else:
    _FastLoader = None


def _fast_node(text: str) -> Node | None:
    """The root node by libyaml, or None where it is missing or finds any problem (the
    caller then parses with ``_Loader``, which locates the problem as users know it).
    Text with a tab is left to ``_Loader`` too: libyaml accepts tabs in places PyYAML's own
    loader rejects (``a: 1<TAB>``), and whether a file is valid must not depend on how
    PyYAML was built."""
    if _FastLoader is None or "\t" in text:
        return None
    try:
        return _FastLoader(text).get_single_node()  # libyaml frees its parser with the object
    except (yaml.YAMLError, UnicodeError, ValueError, RecursionError):
        return None


@dataclass
class Document:
    """A parsed YAML file: its data and where each key and value stands in the text.

    ``value_marks`` maps a key path to the (line, column) of its value, ``key_marks`` to that of
    the key itself; both count from 1.
    """

    file: str
    data: Any
    value_marks: dict[Path_, Mark] = field(default_factory=dict)
    key_marks: dict[Path_, Mark] = field(default_factory=dict)

    def mark(self, path: Path_, *, at_key: bool = False) -> Mark:
        """The place of ``path``: its key (``at_key``) or its value, else its nearest parent."""
        if at_key and path in self.key_marks:
            return self.key_marks[path]
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in self.value_marks:
                return self.value_marks[prefix]
        return (1, 1)

    def issue(
        self, path: Path_, message: str, *, at_key: bool = False, severity: str = "error"
    ) -> Issue:
        """An :class:`Issue` for ``path`` in this document."""
        line, column = self.mark(path, at_key=at_key)
        return Issue(self.file, line, column, tuple(path), message, severity)

    def unknown_keys(self, where: Path_, mapping: dict, allowed) -> list[Issue]:
        """An issue at each key of ``mapping`` (at ``where``) not in ``allowed``, with the
        nearest allowed key as a suggestion."""
        from escalate.errors import suggest

        return [
            self.issue(
                (*where, key), f"unknown key {key!r}{suggest(str(key), allowed)}", at_key=True
            )
            for key in mapping
            if key not in allowed
        ]


def document_kind(data: Any) -> str:
    """What a parsed file is, by its keys: ``"targets"`` (calibrate's statements),
    ``"observations"`` (nowcast's events), ``"variants"`` (compare's options), ``"rivals"``
    (weigh's models), ``"params"``
    (a point overlay: every value but ``scenario`` a number) or ``"scenario"`` (anything
    else, checked as one)."""
    if isinstance(data, dict) and "stages" not in data:
        if "targets" in data:
            return "targets"
        if "as_of" in data:
            return "observations"
        if "variants" in data:
            return "variants"
        if "models" in data:
            return "rivals"
        values = [v for k, v in data.items() if k != "scenario"]
        if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return "params"
    return "scenario"


def read_yaml(path: str | Path) -> Document:
    """Read and parse the YAML file at ``path``.

    Raises
    ------
    ScenarioError
        If the file cannot be read, is not UTF-8 text, is not valid YAML, or breaks the limits
        on size, nesting and alias expansion.
    """
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ScenarioError([Issue(name, 0, 0, (), "no such file")]) from None
    except IsADirectoryError:
        raise ScenarioError([Issue(name, 0, 0, (), "is a folder, not a scenario file")]) from None
    except OSError as exc:
        raise ScenarioError([Issue(name, 0, 0, (), f"cannot read: {exc.strerror}")]) from None
    return parse_yaml(raw, name)


def parse_yaml(source: str | bytes, file: str = "<string>") -> Document:
    """Parse YAML text (or UTF-8 bytes) into a :class:`Document`.

    Raises
    ------
    ScenarioError
        On any problem, located where the text allows.
    """

    def fail(message: str, line: int = 1, column: int = 1) -> ScenarioError:
        return ScenarioError([Issue(file, line, column, (), message)])

    if len(source) > MAX_BYTES:
        raise fail(f"the file is larger than {MAX_BYTES:,} bytes; a scenario is far smaller")
    if isinstance(source, bytes):
        if b"\x00" in source:
            raise fail("not a text file (it contains NUL bytes): expected a YAML scenario")
        try:
            text = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = source[: exc.start].count(b"\n") + 1
            column = exc.start - (source.rfind(b"\n", 0, exc.start) + 1) + 1
            raise fail(
                f"not UTF-8 text: byte 0x{source[exc.start]:02x} cannot be decoded; "
                "save the file as UTF-8",
                line,
                column,
            ) from None
    else:
        text = source

    root = _fast_node(text)
    loader = None
    try:
        if root is None:  # libyaml missing, an empty file, or a problem to locate
            loader = _Loader(text)
            root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = ", ".join(part for part in (exc.context, exc.problem) if part) or "unknown"
        raise fail(f"invalid YAML: {problem}", line, column) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
        raise fail(
            f"invalid YAML: character {exc.character!r} is not allowed in a YAML file",
            line,
            column,
        ) from None
    except yaml.YAMLError as exc:
        raise fail(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise fail(f"invalid YAML: nesting is deeper than {MAX_DEPTH} levels") from None
    finally:
        if loader is not None:
            loader.dispose()

    document = Document(file, None)
    if root is None:
        return document
    builder = _Builder(document)
    document.data = builder.build(root, (), 0)
    return document


class _Builder:
    """Turns a PyYAML node graph into plain data, recording marks, within the limits."""

    def __init__(self, document: Document):
        self.document = document
        self.nodes = 0

    def fail(self, node: Node, message: str) -> ScenarioError:
        mark = node.start_mark
        return ScenarioError(
            [Issue(self.document.file, mark.line + 1, mark.column + 1, (), message)]
        )

    def build(self, node: Node, path: Path_, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(
                node,
                f"the document expands to more than {MAX_NODES:,} values "
                "(an alias bomb?); a scenario is far smaller",
            )
        if depth > MAX_DEPTH:
            raise self.fail(node, f"nesting is deeper than {MAX_DEPTH} levels (recursive alias?)")
        self.document.value_marks.setdefault(
            path, (node.start_mark.line + 1, node.start_mark.column + 1)
        )
        if isinstance(node, MappingNode):
            if node.tag != _TAG + "map":
                raise self.fail(node, f"YAML tag {node.tag!r} is not supported")
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise self.fail(key_node, "a key must be a plain name, not a list or mapping")
                key = key_node.value
                if key in result:
                    first = self.document.key_marks[(*path, key)]
                    raise self.fail(
                        key_node,
                        f"duplicate key {key!r} (first defined at line {first[0]}); "
                        "YAML would silently keep only the last",
                    )
                self.document.key_marks[(*path, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                result[key] = self.build(value_node, (*path, key), depth + 1)
            return result
        if isinstance(node, SequenceNode):
            if node.tag != _TAG + "seq":
                raise self.fail(node, f"YAML tag {node.tag!r} is not supported")
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def scalar(self, node: ScalarNode) -> Any:
        text, tag = node.value, node.tag
        if tag == _TAG + "str":
            return text
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            return text.lower() == "true"
        if tag == _TAG + "int":
            digits = text.replace("_", "")
            return int(digits, 0) if digits[:2] in ("0o", "0x") else int(digits)
        if tag == _TAG + "float":
            lowered = text.replace("_", "").lower()
            if lowered.endswith("inf"):
                return -math.inf if lowered.startswith("-") else math.inf
            if lowered.endswith("nan"):
                return math.nan
            return float(lowered)
        raise self.fail(node, f"YAML tag {tag!r} is not supported")
