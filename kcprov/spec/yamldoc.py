"""Parse YAML 1.2 into plain data plus the position of every key and value.

A realm file is untrusted input (in GitOps a pull request writes it), so this
module reads it the strict way and turns every surprise into a YamlIssue at a
line, never into a traceback, an object or a quoted snippet (it may hold a
secret):

- Bytes (`decode`): UTF-8 only (a BOM is dropped); UTF-16/32 and other bytes
  are named, with the line and column of the first bad byte. CRLF and lone CR
  line ends become LF, so the template, the parser and editors count lines alike.
- Characters: control characters other than tab and newline, U+2028/U+2029
  (line breaks to YAML, not to Jinja or editors), the bidirectional controls
  of "Trojan Source" (CVE-2021-42574) and U+E000/U+E001 (the template's line
  markers: a file holding them could fake the lines of its problems) are
  refused anywhere in the text, and also when a double-quoted scalar writes
  them as escapes ("\\e").
- Parsing: PyYAML's libyaml parser makes the events (characters to scalars,
  collections and positions), and this module's composer builds the nodes.
  The events are the same in YAML 1.1 and 1.2 for what realm files hold; the
  1.2 meanings come later: ruamel.yaml's YAML 1.2 core-schema rules decide
  what a plain scalar is, and its constructor builds the numbers. (ruamel's
  own parser is pure Python, ~5x slower; its C one, ruamel.yaml.clib, refuses
  `[mcp:tools]`, which PyYAML's libyaml reads.) Where PyYAML has no C
  extension, its pure-Python parser makes the same events (tests compare the
  two), about 4x slower: as slow as ruamel's. libyaml's syntax is YAML 1.1's
  where the two differ at all: `{: 1}` (an empty key to YAML 1.2) is
  reported as an empty key, and anchor names are letters, digits, '-', '_'.
- YAML 1.2 core schema: `on`, `yes`, `no`, `off` are strings; a `%YAML 1.1`
  directive, which would bring the 1.1 meanings back, is refused. A `%TAG`
  directive only renames tags: what it expands to is judged like any tag.
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
import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode as RuamelScalarNode
from ruamel.yaml.resolver import VersionedResolver
from yaml.error import MarkedYAMLError
from yaml.events import (AliasEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent, ScalarEvent,
                         SequenceEndEvent, StreamEndEvent)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser, ParserError
from yaml.reader import Reader
from yaml.scanner import Scanner

from kcprov.spec.template import _CLOSE, _OPEN  # the template's line markers

MAX_DEPTH = 64
"""Deepest nesting of lists and mappings (a realm file needs about 8)."""
MAX_ALIAS_VALUES = 100_000
"""Most values that aliases may add by expansion (1,000 clients merging an anchor need ~30,000)."""

_CORE = "tag:yaml.org,2002:"
_STR, _MERGE, _TIMESTAMP = _CORE + "str", _CORE + "merge", _CORE + "timestamp"
_CONSTRUCTED = {_CORE + name: name for name in ("int", "float", "bool", "null")}
_COLLECTIONS = {MappingNode: _CORE + "map", SequenceNode: _CORE + "seq"}
_PLAIN_SCALARS = VersionedResolver(version=(1, 2)).versioned_resolver
"""ruamel's YAML 1.2 core-schema rules for plain scalars: first character -> [(tag, regexp)]."""

_LINE_MARKERS = _OPEN + _CLOSE
"""The private-use characters the template puts around line numbers before rendering."""
_FORBIDDEN = re.compile(
    f"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff{_LINE_MARKERS}]"
)
"""Controls but tab and newline, line/paragraph separators, bidi controls, lone surrogates, non-characters,
and the template's line markers (a file holding them could fake the line numbers of its problems)."""
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
        if bad[0] in _LINE_MARKERS:
            raise YamlIssue((line, column), f"{describe(bad[0])} in the file",
                            "remove it: kcprov marks template line numbers with U+E000 and U+E001")
        raise YamlIssue((line, column), f"{describe(bad[0])} in the file", _FORBIDDEN_HINT)


def describe(char: str) -> str:
    """'U+202E RIGHT-TO-LEFT OVERRIDE', 'control character U+001B', 'private-use character U+E000'.

    Never the raw character: it could hide or reorder the text around it.
    """
    name = unicodedata.name(char, None)
    if name:
        return f"U+{ord(char):04X} {name}"
    kind = "private-use" if unicodedata.category(char) == "Co" else "control"
    return f"{kind} character U+{ord(char):04X}"


# ---------------------------------------------------------------- parsing


class _PurePyYamlParser(Reader, Scanner, Parser):
    """PyYAML's pure-Python parser: the same events as libyaml, for a PyYAML built without its C extension."""

    def __init__(self, text: str):
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)


try:
    from yaml.cyaml import CParser as _EventParser
except ImportError:  # PyYAML's wheels ship libyaml on the common platforms; elsewhere, ~4x slower
    _EventParser = _PurePyYamlParser


def parse(text: str, parser: type = _EventParser) -> Document:
    """Parse one YAML document (data None if there is none); raise YamlIssue if it is not valid YAML.

    `parser` makes the events: libyaml's, or PyYAML's pure-Python one (tests compare the two).
    """
    check_characters(text)
    try:
        root = _Composer(parser(text)).document()
    except MarkedYAMLError as exc:
        raise _syntax_issue(exc, text) from None
    builder = _Builder(YAML(typ="safe", pure=True).constructor)
    data = None if root is None else builder.build(root, ())
    return Document(data, builder.nodes, builder.issues)


def _syntax_issue(exc: MarkedYAMLError, text: str) -> YamlIssue:
    """Turn a parser error into an issue; never quote the snippet, which may hold a secret."""
    mark = exc.problem_mark or exc.context_mark
    if exc.context_mark and mark.index >= len(text.rstrip()):  # "end of file" helps less than where it began
        mark = exc.context_mark
    position = (mark.line, mark.column) if mark else (0, 0)
    at = text[mark.index] if mark and 0 <= mark.index < len(text) else ""
    if at == "\t":
        return YamlIssue(position, "tab character in indentation", "YAML indents with spaces only")
    if at == ":" and isinstance(exc, ParserError):  # YAML 1.2 reads `{: 1}` as an empty key, libyaml as an error
        return YamlIssue(position, "empty mapping key", "write a name before the ':'")
    problem = exc.problem or ""
    if problem.startswith("exceeded maximum nesting depth"):  # libyaml's own limit, far above MAX_DEPTH
        return _too_deep(position)
    if problem.startswith("found incompatible YAML document"):  # `%YAML 2.0`
        return YamlIssue(position, "the file asks for a YAML version other than 1.x; kcprov reads YAML 1.2",
                         "remove the %YAML line")
    context = f" ({exc.context})" if exc.context else ""
    return YamlIssue(position, f"invalid YAML: {problem}{context}")


def _too_deep(position: Position, through: str = "") -> YamlIssue:
    return YamlIssue(position, f"lists and mappings nested deeper than {MAX_DEPTH} levels{through}",
                     "a realm file needs far less; flatten the structure")


@functools.lru_cache(maxsize=4096)  # keys and values repeat from client to client
def _resolve(value: str) -> str:
    """The tag YAML 1.2 gives a plain scalar: `on` and `2026-12-01` stay text (str, timestamp), `0777` is an int."""
    for tag, regexp in _PLAIN_SCALARS.get(value[:1], ()):
        if regexp.match(value):
            return tag
    return _STR


def _check_version(event: DocumentStartEvent) -> None:
    """Refuse `%YAML` directives other than 1.2: `%YAML 1.1` would make `yes` a boolean and `0777` octal."""
    if event.version is not None and event.version != (1, 2):
        version = ".".join(map(str, event.version))
        raise YamlIssue(_position(event), f"the file asks for YAML {version}; kcprov reads YAML 1.2",
                        "remove the %YAML line")


class _Alias:
    """An alias in the node tree: the node it names, and where the alias itself is written."""

    def __init__(self, node: Node, event: Any):
        self.node, self.start_mark, self.end_mark = node, event.start_mark, event.end_mark


class _Composer:
    """Nodes from PyYAML's parse events, measuring as it goes so that hostile nesting fails before anything is built.

    The events are the same in YAML 1.1 and 1.2 for everything a realm file
    holds; what differs is what a plain scalar means (`on`, `0777`), which
    ruamel's YAML 1.2 resolver decides here, and the `%YAML` directive, which
    is checked here. Every node comes with its expanded size (values, depth);
    an alias adds its target's size to a running total and to the depth where
    it sits, so a billion-laughs file fails at the first alias that passes
    MAX_ALIAS_VALUES, and deep nesting fails before Python's recursion limit.
    An anchor may be redefined (YAML allows it); an alias names the latest.
    """

    def __init__(self, parser: Any):
        self.parser = parser
        self.anchors: dict[str, tuple[Node, tuple[int, int] | None]] = {}  # size None: still being composed
        self.alias_values = 0
        self.depth = 0  # collections open around the next node

    def document(self) -> Node | None:
        """The root node of the only document, or None for a stream without one."""
        get_event = self.parser.get_event
        get_event()  # StreamStartEvent
        event = get_event()
        if isinstance(event, StreamEndEvent):
            return None
        _check_version(event)
        root, _, _ = self.node(get_event())
        get_event()  # DocumentEndEvent
        event = get_event()
        if not isinstance(event, StreamEndEvent):
            raise YamlIssue(_position(event), "a second YAML document ('---') in the file", "one realm per file")
        return root

    def node(self, event: Any) -> tuple[Node | _Alias, int, int]:
        """The node that starts with `event`, its expanded size in values and its depth."""
        if type(event) is AliasEvent:
            return self.alias(event)
        if self.depth >= MAX_DEPTH:
            raise _too_deep(_position(event))
        if type(event) is ScalarEvent:
            tag = event.tag
            if tag is None or tag == "!":  # untagged: a plain scalar's text decides, a quoted one is text
                tag = _resolve(event.value) if event.implicit[0] else _STR
            node: Node = ScalarNode(tag, event.value, event.start_mark, event.end_mark)
            if event.anchor is not None:
                self.anchors[event.anchor] = (node, (1, 1))
            return node, 1, 1
        return self.collection(event)

    def collection(self, start: Any) -> tuple[Node, int, int]:
        """A list or mapping and its children, up to its end event."""
        is_mapping = type(start) is MappingStartEvent
        kind, end = (MappingNode, MappingEndEvent) if is_mapping else (SequenceNode, SequenceEndEvent)
        tag = _COLLECTIONS[kind] if start.tag is None or start.tag == "!" else start.tag
        node = kind(tag, [], start.start_mark, None)
        if start.anchor is not None:
            self.anchors[start.anchor] = (node, None)
        children: list[Node | _Alias] = []
        values, depth = 1, 1
        self.depth += 1
        get_event = self.parser.get_event
        event = get_event()
        while type(event) is not end:
            child, child_values, child_depth = self.node(event)
            children.append(child)
            values += child_values
            depth = max(depth, child_depth + 1)
            event = get_event()
        self.depth -= 1
        node.value = list(zip(children[::2], children[1::2])) if is_mapping else children
        node.end_mark = event.end_mark
        if start.anchor is not None and self.anchors[start.anchor][0] is node:
            self.anchors[start.anchor] = (node, (values, depth))
        return node, values, depth

    def alias(self, event: Any) -> tuple[_Alias, int, int]:
        """An alias, refused if it names nothing, its own parent, or too much."""
        if event.anchor not in self.anchors:
            raise YamlIssue(_position(event), f"invalid YAML: found undefined alias '{event.anchor}'",
                            "an alias (*name) must come after its anchor (&name)")
        node, size = self.anchors[event.anchor]
        if size is None:
            raise YamlIssue(_position(event), "recursive alias", "an alias may not refer to its own parent")
        values, depth = size
        self.alias_values += values
        if self.alias_values > MAX_ALIAS_VALUES:
            raise YamlIssue(_position(event), f"aliases expand to more than {MAX_ALIAS_VALUES:,} values",
                            "a YAML alias copies its anchor each time; use fewer or smaller ones")
        if self.depth + depth > MAX_DEPTH:
            raise _too_deep(_position(event), " through this alias")
        return _Alias(node, event), values, depth


class _Builder:
    """Builds Python data from composed nodes, recording positions and duplicate keys."""

    def __init__(self, constructor: Any):
        self.constructor = constructor  # ruamel's YAML 1.2 one: `0o17`, `0x1F`, `1_000`, `.inf`
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
        tag = node.tag
        if tag in (_STR, _TIMESTAMP):  # a date is kept as written: no field of a realm file is a date
            bad = _FORBIDDEN.search(node.value)
            if bad:
                raise YamlIssue(_position(node), f"{describe(bad[0])} in a value, written as an escape",
                                _FORBIDDEN_HINT)
            return node.value
        kind = _CONSTRUCTED.get(tag)
        if kind is None:
            raise _unsupported_tag(node)
        if _resolve(node.value) != tag:  # e.g. `!!int abc`
            raise YamlIssue(_position(node), f"the value tagged !!{kind} is not a YAML 1.2 {kind}",
                            "remove the tag, or write a value of that type")
        try:
            value = getattr(self.constructor, f"construct_yaml_{kind}")(
                RuamelScalarNode(tag, node.value, node.start_mark, node.end_mark))
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
