"""Parse YAML into plain data plus the position of every key and value.

PyYAML's loaders forget positions and silently keep the last of duplicate keys;
composing the node graph and building the data ourselves keeps both, so every
later error can name a line. Mapping keys are taken as written (`on:` stays the
string "on", not YAML 1.1's True).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"

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


@dataclass
class Document:
    """The parsed data, the node behind every path, and non-fatal issues (duplicate keys)."""

    data: Any
    nodes: dict[Path, tuple[yaml.Node | None, yaml.Node]]
    issues: list[YamlIssue]

    def locate(self, path: Path) -> Located:
        """Where the longest prefix of `path` present in the document sits."""
        while path not in self.nodes:
            path = path[:-1]
        key, value = self.nodes[path]
        return Located(_position(key or value), _position(value), (value.end_mark.line, value.end_mark.column))


def _position(node: yaml.Node) -> Position:
    return node.start_mark.line, node.start_mark.column


def parse(text: str) -> Document:
    """Parse one YAML document (data None if there is none); raise YamlIssue if it is not valid YAML."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        builder = _Builder(loader)
        data = None if root is None else builder.build(root, ())
    except yaml.MarkedYAMLError as exc:
        raise _syntax_issue(exc, text) from None
    finally:
        loader.dispose()
    return Document(data, builder.nodes, builder.issues)


def _syntax_issue(exc: yaml.MarkedYAMLError, text: str) -> YamlIssue:
    """Turn a PyYAML error into an issue; never quote the snippet, which may hold a secret."""
    mark = exc.problem_mark or exc.context_mark
    if exc.context_mark and mark.index >= len(text.rstrip()):  # "end of file" helps less than where it began
        mark = exc.context_mark
    position = (mark.line, mark.column) if mark else (0, 0)
    if mark and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        return YamlIssue(position, "tab character in indentation", "YAML indents with spaces only")
    if isinstance(exc, yaml.composer.ComposerError) and "single document" in str(exc.context):
        return YamlIssue(position, "a second YAML document ('---') in the file", "one realm per file")
    context = f" ({exc.context})" if exc.context else ""
    return YamlIssue(position, f"invalid YAML: {exc.problem}{context}")


class _Builder:
    """Builds Python data from composed nodes, recording positions and duplicate keys."""

    def __init__(self, loader: Any):
        self.loader = loader
        self.nodes: dict[Path, tuple[yaml.Node | None, yaml.Node]] = {}
        self.issues: list[YamlIssue] = []
        self.active: set[int] = set()

    def build(self, node: yaml.Node, path: Path, key: yaml.Node | None = None) -> Any:
        self.nodes[path] = (key, node)
        if isinstance(node, yaml.ScalarNode):
            return node.value if node.tag == _STR else self.loader.construct_object(node)
        if id(node) in self.active:
            raise YamlIssue(_position(node), "recursive alias", "an alias may not refer to its own parent")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            return self._mapping(node, path)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            name = self._key(key_node)
            if name in seen:
                line = seen[name] + 1
                self.issues.append(
                    YamlIssue(
                        _position(key_node),
                        f"duplicate key '{name}' (first on line {line})",
                        "YAML keeps only the last one; remove or merge the duplicates",
                    )
                )
            seen.setdefault(name, key_node.start_mark.line)
        self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merges; own keys come last and win
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            name = self._key(key_node)
            result[name] = self.build(value_node, (*path, name), key_node)
        return result

    @staticmethod
    def _key(node: yaml.Node) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise YamlIssue(
                _position(node),
                "a mapping key must be a plain name, not a list or mapping",
            )
        return str(node.value)
