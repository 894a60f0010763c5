"""Turn realm files into validated RealmSpecs, or into every problem they have.

Pipeline per file: read at most `max_input_size` bytes of a regular file
(`fileio.read_input`) → decode and check the text (`yamldoc.decode`) → render
with Jinja2 (`template`) → parse YAML 1.2 with positions (`yamldoc.parse`) →
validate with the pydantic models → check references (`checks`) → optionally
refuse inline secrets. Each stage's failures become Problems at a source line;
all files are processed before raising, so one run shows all.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, SecretStr, ValidationError

from kcprov.errors import KcprovError
from kcprov.fileio import MAX_INPUT_BYTES, InputFileError, read_input
from kcprov.gcpause import collector_paused
from kcprov.spec.checks import check_realm
from kcprov.spec.findings import Finding
from kcprov.spec.expand import expansion_findings
from kcprov.spec.models import RealmSpec
from kcprov.spec.problems import Problem, SpecError, display_path
from kcprov.spec.template import Rendered, TemplateProblem, render
from kcprov.spec.yamldoc import Document, Path as YamlPath, Position, YamlIssue, decode, parse


def load_realm(
    path: Path,
    vars: Mapping[str, Any] | None = None,
    var_files: Sequence[Path] = (),
    strict_secrets: bool = False,
    max_input_size: int = MAX_INPUT_BYTES,
) -> RealmSpec:
    """Load one realm file; raise SpecError listing every problem."""
    return load_realms([path], vars, var_files, strict_secrets, max_input_size)[0]


def load_realms(
    paths: Iterable[Path],
    vars: Mapping[str, Any] | None = None,
    var_files: Sequence[Path] = (),
    strict_secrets: bool = False,
    max_input_size: int = MAX_INPUT_BYTES,
) -> list[RealmSpec]:
    """Load realm files in order; raise SpecError listing the problems of all files.

    Template variables: the var files merged in order, then `vars`; later wins.
    A realm or var file over `max_input_size` bytes is a problem, not read.
    """
    return [spec for spec, _ in load_realms_located(paths, vars, var_files, strict_secrets, max_input_size)]


def load_realms_located(
    paths: Iterable[Path],
    vars: Mapping[str, Any] | None = None,
    var_files: Sequence[Path] = (),
    strict_secrets: bool = False,
    max_input_size: int = MAX_INPUT_BYTES,
) -> list[tuple[RealmSpec, _Locator]]:
    """`load_realms`, each spec with its file's locator: data paths to file:line problems, and the parsed
    document (`.document.data` keeps the top-level `x-` keys the model drops), for tools that report on
    the file after loading it (`kcprov audit`)."""
    with collector_paused():
        return _load_located(paths, vars, var_files, strict_secrets, max_input_size)


def _load_located(paths, vars, var_files, strict_secrets, max_input_size) -> list[tuple[RealmSpec, _Locator]]:
    variables: dict[str, Any] = {}
    problems: list[Problem] = []
    for var_file in var_files:
        values, found = _read_var_file(Path(var_file), max_input_size)
        variables.update(values)
        problems += found
    variables.update(vars or {})
    specs: list[tuple[RealmSpec, _Locator]] = []
    first_file: dict[str, str] = {}
    for path in paths:
        spec, found, locate = _load_file(Path(path), variables, strict_secrets, max_input_size)
        problems += found
        if spec is None:
            continue
        if spec.realm in first_file:
            problems.append(
                locate(("realm",), f"realm '{spec.realm}' is also defined in {first_file[spec.realm]}", "one file per realm")
            )
        first_file.setdefault(spec.realm, f"{display_path(path)}:{locate(('realm',), '').line}")  # both file:line
        specs.append((spec, locate))
    if problems:
        raise SpecError(problems)
    return specs


def parse_var_options(items: Iterable[str]) -> dict[str, str]:
    """Parse repeated `--var NAME=VALUE` options (later wins)."""
    values: dict[str, str] = {}
    for number, item in enumerate(items, 1):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise KcprovError(
                f"--var number {number} is not NAME=VALUE", "write --var NAME=VALUE, e.g. --var base_url=http://localhost:3000"
            )
        values[name.strip()] = value
    return values


# ---------------------------------------------------------------- one file


class _Locator:
    """Makes Problems for one file from output positions or data paths."""

    def __init__(self, file: str, rendered: Rendered | None = None, document: Document | None = None):
        self.file, self.rendered, self.document = file, rendered, document

    def at(self, position: Position, message: str, hint: str | None = None) -> Problem:
        line = self.rendered.source_line(position[0]) if self.rendered else position[0] + 1
        return Problem(self.file, line, position[1] + 1, message, hint)

    def __call__(self, path: YamlPath, message: str, hint: str | None = None) -> Problem:
        """A problem at the key of `path` (or of its nearest parent present in the file)."""
        return self.at(self.document.locate(path).key, message, hint)

    def finding(self, finding: Finding) -> Problem:
        message = finding.message
        if finding.first is not None:
            message += f" (first on line {self(finding.first, '').line})"
        return self(finding.path, message, finding.hint)


def _read_text(path: Path, limit: int, what: str) -> str:
    """The checked text of an input file; InputFileError or YamlIssue (a source position) if unfit."""
    return decode(read_input(path, limit, what))


def _unreadable(file: str, path: Path, exc: InputFileError) -> Problem:
    """A problem at line 1; the message without read_input's own "PATH: " prefix (the problem names the file)."""
    return Problem(file, 1, 1, exc.message.removeprefix(f"{path}: ").rstrip("."), exc.hint)


def _load_file(path: Path, variables: Mapping[str, Any], strict_secrets: bool, limit: int):
    """(spec or None, problems, locator) for one realm file."""
    file = display_path(path)
    locate = _Locator(file)
    try:
        source = _read_text(path, limit, "file")
        rendered = render(source, variables)
        locate.rendered = rendered
        document = parse(rendered.text)
    except InputFileError as exc:
        return None, [_unreadable(file, path, exc)], locate
    except TemplateProblem as exc:
        return None, [Problem(file, exc.line, 1, exc.message, exc.hint)], locate
    except YamlIssue as exc:
        return None, [locate.at(exc.position, exc.message, exc.hint)], locate
    locate.document = document
    problems = [locate.at(issue.position, issue.message, issue.hint) for issue in document.issues]
    if not isinstance(document.data, dict):
        what, start = ("empty", (0, 0)) if document.data is None else ("not a mapping", document.locate(()).start)
        problems.append(locate.at(start, f"the file is {what}", "a realm file is a mapping that starts with 'realm: <name>'"))
        return None, problems, locate
    try:
        spec = RealmSpec.model_validate(document.data)
    except ValidationError as exc:
        problems += [locate(*explained) for explained in _explain_all(exc.errors())]
        return None, problems, locate
    problems += map(locate.finding, check_realm(spec))
    if not problems:  # conflicts between mcp_servers and primitives, found offline too
        problems += map(locate.finding, expansion_findings(spec))
    if strict_secrets:
        problems += _inline_secrets(spec, locate)
    return (None if problems else spec), problems, locate


def _read_var_file(path: Path, limit: int) -> tuple[dict[str, Any], list[Problem]]:
    locate = _Locator(display_path(path))
    try:
        document = parse(_read_text(path, limit, "var file"))
    except InputFileError as exc:
        return {}, [_unreadable(locate.file, path, exc)]
    except YamlIssue as exc:
        return {}, [locate.at(exc.position, exc.message, exc.hint)]
    problems = [locate.at(issue.position, issue.message, issue.hint) for issue in document.issues]
    if document.data is None:
        return {}, problems
    if not isinstance(document.data, dict):
        return {}, [*problems, locate.at(document.locate(()).start, "a var file must be a mapping of NAME: value")]
    return document.data, problems


# ---------------------------------------------------------------- pydantic errors

_SENSITIVE = ("secret", "password")
_SHOW_INPUT = ("literal_error", "enum", "bool_type", "bool_parsing", "int_parsing", "int_from_float", "float_parsing")
_YAML11_BOOLEANS = {"on", "off", "yes", "no", "y", "n"}
_SHAPES = {
    "model_type": ("a mapping", "write 'key: value' lines indented under it, or {key: value}"),
    "dict_type": ("a mapping", "write 'key: value' lines indented under it, or {key: value}"),
    "list_type": ("a list", "write one '- item' line per entry, or [a, b]"),
}


def _explain_all(errors: list[Any]) -> Iterator[tuple[YamlPath, str, str | None]]:
    """Explain each error, except a missing key whose typo is already reported as unknown."""
    typos = set()
    for error in errors:
        if error["type"] == "extra_forbidden":
            loc = tuple(error["loc"])
            typos.add((*loc[:-1], _closest_field(str(loc[-1]), _model_at(loc[:-1]))))
    for error in errors:
        if not (error["type"] == "missing" and tuple(error["loc"]) in typos):
            yield _explain(error)


def _explain(error: Any) -> tuple[YamlPath, str, str | None]:
    """(path, message, hint) for one pydantic error, never quoting a secret."""
    loc, kind, ctx = tuple(error["loc"]), error["type"], error.get("ctx") or {}
    if kind == "kcprov":
        return (*loc, ctx["at"]) if "at" in ctx else loc, ctx["message"], ctx.get("hint")
    if kind == "extra_forbidden":
        return loc, f"unknown key '{loc[-1]}'", _did_you_mean(str(loc[-1]), _model_at(loc[:-1]))
    if kind == "missing":
        model = _model_at(loc[:-1])
        field = model.model_fields.get(str(loc[-1])) if model else None
        inside = f" in {_dotted(loc[:-1])}" if loc[:-1] else ""
        text = field.description.rstrip(".") if field and field.description else ""
        about = f" ({text[:1].lower()}{text[1:]})" if text else ""
        return loc, f"missing required key '{loc[-1]}'{inside}", f"add '{loc[-1]}:'{about}"
    if kind in _SHAPES:
        shape, hint = _SHAPES[kind]
        return loc, f"{_dotted(loc)}: expected {shape}", hint
    value = error.get("input")
    sensitive = any(word in str(part).lower() for part in loc for word in _SENSITIVE)
    if kind == "string_type" and isinstance(value, bool) and not sensitive:
        written = "true" if value else "false"
        return loc, f"{_dotted(loc)}: expected text, not the boolean {written}", f'quote it if it is text: "{written}"'
    message = f"{_dotted(loc)}: {error['msg'][0].lower()}{error['msg'][1:]}"
    hint = _bool_hint(value) if kind in ("bool_type", "bool_parsing") else None
    if kind in _SHOW_INPUT and not sensitive and isinstance(value, (str, int, float)) and len(repr(value)) <= 40:
        message += f" (got {value!r})"
    return loc, message, hint


def _bool_hint(value: Any) -> str:
    if isinstance(value, str) and value.lower() in _YAML11_BOOLEANS:
        return f"write true or false: YAML 1.2 reads {value} as text, not as a boolean"
    return "write true or false"


def _dotted(loc: Iterable[Any]) -> str:
    """clients[0].pkce: the data path as a reader would write it (no pydantic internals)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "[" not in part:
            text += f".{part}" if text else part
    return text


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model whose mapping sits at `loc`, following field annotations from RealmSpec."""
    model: type[BaseModel] | None = RealmSpec
    for part in loc:
        if model is not None and isinstance(part, str) and part in model.model_fields:
            model = _inner_model(model.model_fields[part].annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_inner_model, get_args(annotation))), None)


def _keys(model: type[BaseModel]) -> list[str]:
    """The YAML keys of a model: a field's alias where it has one (smtp's `from`)."""
    return [field.alias or name for name, field in model.model_fields.items()]


def _closest_field(key: str, model: type[BaseModel] | None) -> str | None:
    close = difflib.get_close_matches(key, _keys(model), n=1) if model else []
    return close[0] if close else None


def _did_you_mean(key: str, model: type[BaseModel] | None) -> str | None:
    if model is None:
        return None
    close = _closest_field(key, model)
    if close:
        return f"did you mean '{close}'?"
    if len(model.model_fields) > 12:
        return "run 'kcprov schema' to see the valid keys"
    return f"valid keys here: {', '.join(_keys(model))}"


# ---------------------------------------------------------------- strict secrets


def _inline_secrets(spec: RealmSpec, locate: _Locator) -> Iterator[Problem]:
    """Secrets whose source text holds no `{{ ... }}` expression were written inline."""
    rendered = locate.rendered
    for path in _secret_paths(spec, ()):
        where = locate.document.locate(path)
        last = where.end[0] - (where.end[1] == 0 and where.end[0] > where.start[0])  # a block scalar ends on the next line
        lines = {rendered.source_line(n) for n in range(where.start[0], last + 1)}
        if not any("{{" in rendered.source_lines[n - 1] for n in lines):
            name = path[-1]
            yield locate(
                path,
                f"{name} is written inline in the file (--strict-secrets)",
                f"take it from the environment: {name}: \"{{{{ env.NAME }}}}\"",
            )


def _secret_paths(value: Any, path: YamlPath) -> Iterator[YamlPath]:
    if isinstance(value, SecretStr):
        yield path
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_paths(getattr(value, name), (*path, name))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _secret_paths(item, (*path, i))
