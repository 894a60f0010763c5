"""Fuzzing the realm-file reader: whatever the bytes, a RealmSpec or a SpecError, never another exception.

The texts are YAML-ish on purpose: lines built from the schema's own keys,
indentation, flow brackets, quotes and escapes, anchors, aliases and merge keys,
tags, Jinja fragments, numbers and YAML 1.1 words, mixed with random Unicode
and random bytes, so that most examples get past the first parser error and
reach the later stages. Derandomized and bounded, so CI runs the same examples
in well under a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from kcprov.errors import KcprovError
from kcprov.spec import RealmSpec, SpecError, load_realm, parse_var_options

FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _keys(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    """Every field name reachable from `model`: the keys a realm file may use."""
    seen.add(model)
    names = set(model.model_fields)
    for field in model.model_fields.values():
        stack: list[Any] = [field.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation not in seen:
                names |= _keys(annotation, seen)
            stack.extend(get_args(annotation))
    return names


KEYS = sorted(_keys(RealmSpec, set()))
SCALARS = [
    "x", "mcp-server", "0x_", "-_", "0777", "1.10", "0x1F", "1e3", ".inf", "-.5", "1_000", "true", "false", "on", "yes", "no",
    "~", "null", "2026-12-01", "5m", "300", "S256", "https://mcp.example.com/mcp", "\"quoted\"", "'single'",
    "\"\\e[31m\"", "\"\\0\"", "\"\\u202e\"", "\"a\\nb\"", "аpi", "a\u200bb", "a/b", "..", "%2e", "a?b#c",
    "!!python/object/apply:os.system [id]", "!!python/name:os.system", "!custom x", "!!binary aGk=", "!!int x",
    "!!str 5", "&a x", "*a", "&m {client_id: m}", "*m", "[", "]", "{", "}", "[a, b]", "{a: 1}", "|", ">-", "-",
    "{{ vars.name }}", "{{ env.HOME }}", "{{", "}}", "{% if true %}", "{% endif %}", "{# c #}", "\t", "#", ":",
    "%YAML 1.1", "%TAG ! tag:yaml.org,2002:python/", "---", "...",
]
PIECE = st.one_of(
    st.sampled_from(KEYS).map(lambda k: f"{k}:"),
    st.sampled_from(SCALARS),
    st.sampled_from(["<<: *a", "<<: *m", "<<: [*a, *m]", "- ", "? ", ": "]),
    st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=12),  # printable: get past the reader
    st.text(max_size=3),  # anything, control characters included
)
LINE = st.tuples(st.integers(0, 8), st.lists(PIECE, max_size=4)).map(lambda t: " " * t[0] + " ".join(t[1]))
YAMLISH = st.lists(LINE, max_size=25).map(lambda lines: "realm: fuzz\n" + "\n".join(lines) + "\n")
LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])
ENCODINGS = st.sampled_from(["utf-8"] * 5 + ["utf-8-sig", "utf-16", "latin-1"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _load(path: Path, **kwargs: Any) -> None:
    """Load, accepting exactly the two outcomes the loader promises."""
    try:
        assert isinstance(load_realm(path, **kwargs), RealmSpec)
    except SpecError as exc:
        assert exc.problems and all(p.line >= 1 and p.column >= 1 for p in exc.problems)


@FUZZ
@given(text=YAMLISH, line_end=LINE_ENDS, encoding=ENCODINGS)
def test_yamlish_text(folder, text, line_end, encoding):
    path = folder / "realm.yaml"
    path.write_bytes(text.replace("\n", line_end).encode(encoding, errors="replace"))
    _load(path, vars={"name": "fuzz"})


@FUZZ
@given(head=YAMLISH, noise=st.binary(max_size=200), tail=YAMLISH)
def test_yamlish_text_with_random_bytes(folder, head, noise, tail):
    path = folder / "realm.yaml"
    path.write_bytes(head.encode() + noise + tail.encode())
    _load(path)


@FUZZ
@given(var_file=st.one_of(YAMLISH.map(str.encode), st.binary(max_size=300)))
def test_var_files(folder, var_file):
    variables, realm = folder / "vars.yaml", folder / "realm.yaml"
    variables.write_bytes(var_file)
    realm.write_text('realm: fuzz\ndisplay_name: "{{ vars.realm | default(\'x\') }}"\n', encoding="utf-8")
    _load(realm, var_files=[variables])


@FUZZ
@given(items=st.lists(st.text(max_size=30), max_size=6))
def test_var_options(items):
    try:
        values = parse_var_options(items)
    except KcprovError as exc:
        assert exc.message and exc.hint
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
