"""Parse YAML 1.2 into plain data plus the position of every key and value.

A realm file is untrusted input (in GitOps a pull request writes it), so this
module reads it the strict way and turns every surprise into a YamlIssue at a
line, never into a traceback, an object or a quoted snippet (it may hold a
secret):

- Bytes (`decode`): UTF-8 only (a BOM is dropped); UTF-16/32 and other bytes
  are named, with the line and column of the first bad byte. CRLF and lone CR
  line ends become LF, so the template, the parser and editors count lines alike.
- Characters: control characters other than tab and newline, U+2028/U+2029
  (line breaks to YAML, not to Jinja or editors) and the bidirectional
  controls of "Trojan Source" (CVE-2021-42574) are refused anywhere in the
  text, and also when a double-quoted scalar writes them as escapes ("\\e").
- YAML 1.2 core schema (ruamel.yaml): `on`, `yes`, `no`, `off` are strings;
  a `%YAML 1.1` directive, which would bring the 1.1 meanings back, is refused.
  ruamel's pure-Python parser, not its C one (ruamel.yaml.clib): that is
  libyaml's YAML 1.1 scanner, which refuses `[mcp:tools]` (a colon inside a
  flow scalar), found in nearly every realm file. The price: about 5x slower
  than PyYAML's libyaml (bench/spec_load.py: ~2.5 s for 1,000 clients).
- Tags: only the core ones (!!str, !!int, !!float, !!bool, !!null, !!seq,
  !!map, and merge keys `<<:`). Dates and times stay the text written
  (2026-12-01); any other tag (!!python/object, !!binary, !custom) is an
  error: nothing is ever constructed from a tag.
- Numbers keep their spelling: an int or float scalar becomes a SourceInt or
  SourceFloat, equal to the number but whose str() is the text written, so a
  text field given `0777` or `1.10` (pydantic's coerce_numbers_to_str and
  Keycloak attribute strings use str()) keeps "0777" or "1.10", while number
  fields get the number. Booleans stay bool (a text field refuses them).
- Size: nesting deeper than MAX_DEPTH and aliases that expand to more than
  MAX_ALIAS_VALUES values (the "billion laughs") fail while composing, at the
  offending line, before any expansion is built; a recursive alias too.
- Keys: duplicates are reported (YAML would keep the last silently), keys must
  be non-empty scalars, taken as written (`0777:` is the key "0777").
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scanner import Scanner

MAX_DEPTH = 64
"""Deepest nesting of lists and mappings (a realm file needs about 8)."""
MAX_ALIAS_VALUES = 100_000
"""Most values that aliases may add by expansion (1,000 clients merging an anchor need ~30,000)."""

_CORE = "tag:yaml.org,2002:"
_STR, _MERGE, _TIMESTAMP = _CORE + "str", _CORE + "merge", _CORE + "timestamp"
_CONSTRUCTED = {_CORE + name: name for name in ("int", "float", "bool", "null")}
_COLLECTIONS = {MappingNode: _CORE + "map", SequenceNode: _CORE + "seq"}

_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)
"""Controls but tab and newline, line/paragraph separators, bidi controls, lone surrogates, non-characters."""
_FORBIDDEN_HINT = (
    "remove it: control, line-separator and bidirectional characters can hide text from reviewers and terminals"
)

Position = tuple[int, int]
"""0-based (line, column) in the parsed text."""
Path = tuple[str | int, ...]
"""Keys and list indexes from the document root, e.g. ("clients", 0, "client_id")."""


class Located(NamedTuple):
    """Where one value sits: its key (or list item), and the span of the value itself."""

    key: Position
    start: Position
    end: Position


@dataclass
class YamlIssue(Exception):
    """A YAML-level problem at a position of the parsed text."""

    position: Position
    message: str
    hint: str | None = None


class _WrittenAs:
    """A number that remembers how it was written: str() is the source text, e.g. "0777" or "1.10"."""

    source: str

    def __new__(cls, value: Any, source: str) -> Any:
        number = super().__new__(cls, value)  # type: ignore[call-arg]
        number.source = source
        return number

    def __str__(self) -> str:
        return self.source


class SourceInt(_WrittenAs, int):
    """An integer scalar; str() is the text written."""


class SourceFloat(_WrittenAs, float):
    """A float scalar; str() is the text written."""


@dataclass
class Document:
    """The parsed data, the node behind every path, and non-fatal issues (duplicate keys)."""

    data: Any
    nodes: dict[Path, tuple[Node | _Alias | None, Node | _Alias]]
    issues: list[YamlIssue]

    def locate(self, path: Path) -> Located:
        """Where the longest prefix of `path` present in the document sits."""
        while path not in self.nodes:
            path = path[:-1]
        key, value = self.nodes[path]
        return Located(_position(key or value), _position(value), (value.end_mark.line, value.end_mark.column))


def _position(node: Any) -> Position:
    return node.start_mark.line, node.start_mark.column


# ---------------------------------------------------------------- bytes and characters

_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
              (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def decode(data: bytes) -> str:
    """The text of a YAML file's bytes: UTF-8 (BOM optional), LF line ends, no forbidden characters."""
    for bom, name in _WIDE_BOMS:  # UTF-32 LE starts with the UTF-16 LE BOM: test it first
        if data.startswith(bom):
            raise YamlIssue((0, 0), f"the file is {name}", "save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8-sig")
        line, column = good.count("\n"), len(good) - (good.rfind("\n") + 1)
        raise YamlIssue(
            (line, column),
            f"not UTF-8 text (first bad byte at line {line + 1}, column {column + 1})",
            "save the file as UTF-8 (Latin-1 and Windows-1252 are not accepted)",
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    check_characters(text)
    return text


def check_characters(text: str) -> None:
    """Raise a YamlIssue at the first character no realm file may hold."""
    bad = _FORBIDDEN.search(text)
    if bad:
        start = bad.start()
        line, column = text.count("\n", 0, start), start - (text.rfind("\n", 0, start) + 1)
        if bad[0] == "\0":
            raise YamlIssue((line, column), "NUL character (U+0000) in the file",
                            "realm files are UTF-8 text: is it UTF-16 or a binary file?")
        raise YamlIssue((line, column), f"{describe(bad[0])} in the file", _FORBIDDEN_HINT)


def describe(char: str) -> str:
    """'U+202E RIGHT-TO-LEFT OVERRIDE' or 'control character U+001B': never the raw character."""
    name = unicodedata.name(char, None)
    return f"U+{ord(char):04X} {name}" if name else f"control character U+{ord(char):04X}"


# ---------------------------------------------------------------- parsing


def parse(text: str) -> Document:
    """Parse one YAML document (data None if there is none); raise YamlIssue if it is not valid YAML."""
    check_characters(text)
    yaml = YAML(typ="safe", pure=True)  # one per text: a parser keeps %YAML and %TAG state across calls
    yaml.Scanner, yaml.Composer = _Scanner, _Composer
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as exc:
        raise _syntax_issue(exc, text) from None
    builder = _Builder(yaml)
    data = None if root is None else builder.build(root, ())
    return Document(data, builder.nodes, builder.issues)


def _syntax_issue(exc: MarkedYAMLError, text: str) -> YamlIssue:
    """Turn a ruamel error into an issue; never quote the snippet, which may hold a secret."""
    mark = exc.problem_mark or exc.context_mark
    if exc.context_mark and mark.index >= len(text.rstrip()):  # "end of file" helps less than where it began
        mark = exc.context_mark
    position = (mark.line, mark.column) if mark else (0, 0)
    if mark and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        return YamlIssue(position, "tab character in indentation", "YAML indents with spaces only")
    if "single document" in str(exc.context):
        return YamlIssue(position, "a second YAML document ('---') in the file", "one realm per file")
    context = f" ({exc.context})" if exc.context else ""
    return YamlIssue(position, f"invalid YAML: {exc.problem}{context}")


class _Scanner(Scanner):
    """Refuses `%YAML` directives other than 1.2: `%YAML 1.1` would make `yes` a boolean and `0777` octal."""

    def scan_directive(self) -> Any:
        token = super().scan_directive()
        if token.name == "YAML" and token.value != (1, 2):
            version = ".".join(map(str, token.value))
            raise YamlIssue(_position(token), f"the file asks for YAML {version}; kcprov reads YAML 1.2",
                            "remove the %YAML line")
        return token


class _Alias:
    """An alias in the node tree: the node it names, and where the alias itself is written."""

    def __init__(self, node: Node, event: Any):
        self.node, self.start_mark, self.end_mark = node, event.start_mark, event.end_mark


class _Composer(Composer):
    """ruamel's composer, measuring as it goes so that hostile nesting fails before anything is built.

    Every finished node records its expanded size (values, depth); an alias adds
    its target's size to a running total and to the depth where it sits, so a
    billion-laughs file fails at the first alias that passes MAX_ALIAS_VALUES,
    and deep nesting fails before Python's recursion limit.
    """

    def __init__(self, loader: Any = None):
        super().__init__(loader)
        self.warn_double_anchors = False  # YAML allows redefining an anchor; the warning would print a snippet
        self.sizes: dict[int, tuple[int, int]] = {}
        self.frames: list[list[int]] = [[0, 0]]  # [values, depth] of the nodes being composed
        self.alias_values = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            return self._alias(event, super().compose_node(parent, index))
        if len(self.frames) > MAX_DEPTH:
            raise YamlIssue(_position(event), f"lists and mappings nested deeper than {MAX_DEPTH} levels",
                            "a realm file needs far less; flatten the structure")
        self.frames.append([1, 1])
        node = super().compose_node(parent, index)
        values, depth = self.frames.pop()
        self.sizes[id(node)] = (values, depth)
        self._add(values, depth)
        return node

    def _alias(self, event: Any, node: Node) -> _Alias:
        if id(node) not in self.sizes:
            raise YamlIssue(_position(event), "recursive alias", "an alias may not refer to its own parent")
        values, depth = self.sizes[id(node)]
        self.alias_values += values
        if self.alias_values > MAX_ALIAS_VALUES:
            raise YamlIssue(_position(event), f"aliases expand to more than {MAX_ALIAS_VALUES:,} values",
                            "a YAML alias copies its anchor each time; use fewer or smaller ones")
        if len(self.frames) - 1 + depth > MAX_DEPTH:
            raise YamlIssue(_position(event), f"lists and mappings nested deeper than {MAX_DEPTH} levels "
                            "through this alias", "a realm file needs far less; flatten the structure")
        self._add(values, depth)
        return _Alias(node, event)

    def _add(self, values: int, depth: int) -> None:
        parent = self.frames[-1]
        parent[0] += values
        parent[1] = max(parent[1], depth + 1)


class _Builder:
    """Builds Python data from composed nodes, recording positions and duplicate keys."""

    def __init__(self, yaml: YAML):
        self.constructor, self.resolver = yaml.constructor, yaml.resolver
        self.nodes: dict[Path, tuple[Node | _Alias | None, Node | _Alias]] = {}
        self.issues: list[YamlIssue] = []

    def build(self, written: Any, path: Path, key: Any = None) -> Any:
        """Data of a node (or alias); `written` is what the file has at `path`, for positions."""
        self.nodes[path] = (key, written)
        node = _target(written)
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if node.tag != _COLLECTIONS[type(node)]:
            raise _unsupported_tag(node)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._mapping(node, path)

    def _scalar(self, node: ScalarNode) -> Any:
        tag = str(node.tag)
        if tag in (_STR, _TIMESTAMP):  # a date is kept as written: no field of a realm file is a date
            bad = _FORBIDDEN.search(node.value)
            if bad:
                raise YamlIssue(_position(node), f"{describe(bad[0])} in a value, written as an escape",
                                _FORBIDDEN_HINT)
            return node.value
        kind = _CONSTRUCTED.get(tag)
        if kind is None:
            raise _unsupported_tag(node)
        if self.resolver.resolve(ScalarNode, node.value, (True, False)) != tag:  # e.g. `!!int abc`
            raise YamlIssue(_position(node), f"the value tagged !!{kind} is not a YAML 1.2 {kind}",
                            "remove the tag, or write a value of that type")
        try:
            value = getattr(self.constructor, f"construct_yaml_{kind}")(node)
        except ValueError:  # ruamel's resolver takes `-_` and `0x_` for numbers; its constructor does not
            raise YamlIssue(_position(node), f"malformed {kind}: YAML reads the value as a number",
                            "quote it if it is text") from None
        if kind == "int":
            return SourceInt(value, node.value)
        return SourceFloat(value, node.value) if kind == "float" else value

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if _target(key_node).tag == _MERGE:
                continue
            name = self._key(key_node)
            if name in seen:
                self.issues.append(
                    YamlIssue(
                        _position(key_node),
                        f"duplicate key '{name}' (first on line {seen[name] + 1})",
                        "YAML keeps only the last one; remove or merge the duplicates",
                    )
                )
            seen.setdefault(name, key_node.start_mark.line)
        result: dict[str, Any] = {}
        for key_node, value_node in _merged(node):
            name = self._key(key_node)
            result[name] = self.build(value_node, (*path, name), key_node)
        return result

    def _key(self, written: Any) -> str:
        """A key as written (`0777:` is "0777", `true:` is "true"), checked like any scalar."""
        node = _target(written)
        if not isinstance(node, ScalarNode):
            raise YamlIssue(_position(written), "a mapping key must be a plain name, not a list or mapping")
        self._scalar(node)
        if not node.value:
            raise YamlIssue(_position(written), "empty mapping key", "write a name before the ':'")
        return node.value


def _target(written: Any) -> Node:
    """The node itself, or the node an alias names."""
    return written.node if isinstance(written, _Alias) else written


def _merged(node: MappingNode) -> list[tuple[Any, Any]]:
    """The key/value pairs of a mapping with its `<<:` merges resolved (YAML merge key rules).

    Merged pairs come first so that the mapping's own keys win; of several
    merged mappings (`<<: [*a, *b]`) the earlier wins.
    """
    merged: list[tuple[Any, Any]] = []
    own: list[tuple[Any, Any]] = []
    for key, value in node.value:
        if _target(key).tag != _MERGE:
            own.append((key, value))
            continue
        sources = _target(value).value if isinstance(_target(value), SequenceNode) else [value]
        for source in reversed(sources):
            mapping = _target(source)
            if not isinstance(mapping, MappingNode):
                raise YamlIssue(_position(key), "'<<' merges mappings only",
                                "write <<: *anchor where the anchor names a mapping, or <<: [*a, *b]")
            merged += _merged(mapping)
    return merged + own


def _unsupported_tag(node: Node) -> YamlIssue:
    tag = str(node.tag)
    shown = "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return YamlIssue(_position(node), f"unsupported YAML tag {shown}",
                     "remove the tag: realm files hold only text, numbers, booleans, lists and mappings")
