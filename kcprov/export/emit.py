"""Writing the exported document as YAML that `kcprov.spec.load_realm` reads back to the same data.

Key order is the order of the models' fields (what a reader of the format
expects), raw maps (attributes, config) are sorted but for those whose order
means something (`IN_ORDER`), lists of named entries
are sorted by name, so two exports of one realm are byte-identical and a
change shows as a small git diff. The file is YAML 1.2 read after Jinja2:
- a string YAML 1.1 or 1.2 would read as something else (`"0777"`, `"true"`,
  `"on"`, `"null"`, dates) is double-quoted, so no reader turns it into a
  number or a boolean;
- `{{`, `{%` and `{#` in a value become `{{ '{' }}{...`, so the template step
  gives back the text; only the secrets' `{{ env.NAME }}` stay references.
"""

from __future__ import annotations

import io
import re
import typing
from typing import Any

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from kcprov.export.document import EnvReference
from kcprov.spec.models import McpServer, RealmSpec

_STR = "tag:yaml.org,2002:str"
_RESOLVERS = (VersionedResolver(version=(1, 1)), VersionedResolver(version=(1, 2)))
_JINJA_OPENING = re.compile(r"\{(?=[{%#])")
IN_ORDER = {(McpServer, "scopes")}
"""Maps written in their own order, not sorted: the first scope of an MCP server is its base scope."""


def jinja_literal(value: str) -> str:
    """`value` as template text that renders to `value`."""
    return _JINJA_OPENING.sub("{{ '{' }}", value)


def scalar(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if isinstance(value, EnvReference):
        return DoubleQuotedScalarString(value)
    text = jinja_literal(value)
    ambiguous = any(str(r.resolve(ScalarNode, text, (True, False))) != _STR for r in _RESOLVERS)
    if ambiguous or text != value or text != text.strip() or not text:
        return DoubleQuotedScalarString(text)
    return text


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (directly, in a list, or in an Annotated/Optional), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def node(value: Any, model: type[BaseModel] | None, comments: dict, path: tuple[str, ...] = ()) -> Any:
    """Plain data -> ruamel nodes in the file's order; `model` says the key order of a mapping."""
    if isinstance(value, dict) and model is not None:
        fields = list(model.model_fields)
        out = CommentedMap()
        for key in sorted(value, key=lambda k: (fields.index(k) if k in fields else len(fields), k)):
            sub = _model_of(model.model_fields[key].annotation) if key in fields else None
            item = value[key]
            if isinstance(item, dict) and sub is not None and _is_list(model, key):
                item = [item[k] for k in sorted(item)]  # named entries, sorted by identity
            if (model, key) in IN_ORDER:
                out[key] = CommentedMap((scalar(k), scalar(v)) for k, v in item.items())
            else:
                out[key] = node(item, sub, comments, (*path, key))
            if (*path, key) in comments:
                out.yaml_add_eol_comment(comments[(*path, key)], key)
        return out
    if isinstance(value, dict):  # a raw map: attributes, config, role mappings
        out = CommentedMap()
        for key in sorted(value):
            out[key] = node(value[key], None, comments, (*path, key))
        return out
    if isinstance(value, list):
        seq = CommentedSeq(node(v, model, comments, path) for v in value)
        if all(not isinstance(v, (dict, list)) for v in value):
            seq.fa.set_flow_style()  # [a, b]: short lists of names on one line
        return seq
    return scalar(value)


def _is_list(model: type[BaseModel], key: str) -> bool:
    annotation = model.model_fields[key].annotation
    return typing.get_origin(annotation) is list or any(typing.get_origin(a) is list for a in typing.get_args(annotation))


def emit(doc: dict, comments: dict[tuple[str, ...], str], header: list[str], footer: list[str]) -> str:
    """The realm file text: header comment lines, the document, footer comment lines."""
    yaml = YAML()
    yaml.version = None
    yaml.width = 4096  # one value per line: no folding, diffs stay per key
    yaml.indent(mapping=2, sequence=4, offset=2)
    stream = io.StringIO()
    yaml.dump(node(doc, RealmSpec, comments), stream)
    lines = [f"# {line}".rstrip() for line in header]
    tail = [f"# {line}".rstrip() for line in footer]
    return "\n".join(lines) + "\n" + stream.getvalue() + ("\n" + "\n".join(tail) + "\n" if tail else "")
