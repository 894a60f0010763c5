"""Render a realm file with Jinja2 and remember where each output line came from.

A realm file is untrusted input (a pull request controls it), so it renders in
the sandbox of `kcprov.spec.sandbox`; every refusal, syntax error or failure
becomes a TemplateProblem at the source line that caused it, never a traceback.

Templates may add lines (`{% for %}`) or drop them (`{% if false %}`), which
would make YAML errors point at the wrong place. Before rendering, every newline
of literal text gets an invisible marker holding its source line number; after
rendering, the markers say which source line each output line ends on, and are
removed. Newlines that Jinja's whitespace control (`-%}`, `{%-`) may strip are
left unmarked so that stripping behaves exactly as without markers; such lines,
and lines produced by expressions, take the number of the next marked line.
"""

from __future__ import annotations

import itertools
import os
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Jinja is imported only to render a file with template tags: plain files start up faster
    import jinja2

    from kcprov.spec.sandbox import Names

_CLOSERS = {"{{": "}}", "{%": "%}", "{#": "#}"}
_OPENER = re.compile(r"\{[{%#]")
_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_OPEN, _CLOSE = "\ue000", "\ue001"  # Unicode private-use characters: never in a realm file
_MARKER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_TEMPLATE_NAME = "<template>"  # the file name Jinja gives frames of a template made from a string


@dataclass(frozen=True)
class Rendered:
    """Rendered text plus, per output line (0-based), its 1-based source line."""

    text: str
    source_lines: list[str]
    line_of: list[int]

    def source_line(self, output_line: int) -> int:
        """1-based source line of a 0-based output line (the end of text maps to the last line)."""
        if output_line < len(self.line_of):
            return self.line_of[output_line]
        return max(len(self.source_lines), 1)


class TemplateProblem(Exception):
    """The template could not be rendered; `line` is the 1-based source line."""

    def __init__(self, line: int, message: str, hint: str | None = None):
        super().__init__(message)
        self.line, self.message, self.hint = line, message, hint


_HINTS = {
    "env": "set {name} in the environment, or give a fallback: {{{{ env.{name} | default('...') }}}}",
    "vars": "pass --var {name}=... or --var-file FILE.yaml, or give a fallback: {{{{ vars.{name} | default('...') }}}}",
}


def render(source: str, variables: Mapping[str, Any]) -> Rendered:
    """Render `source` in the sandbox with `env` (the process environment) and `vars` in scope.

    `env` never shows KCPROV_* variables (kcprov's own settings and
    credentials). Raises TemplateProblem naming
    the source line of a syntax error, a refusal, an undefined variable or any
    other failure inside the template.
    """
    source = source.replace("\r\n", "\n")
    if not any(opener in source for opener in _CLOSERS):  # nothing to render: skip compiling a template
        lines = source.split("\n")
        return Rendered(source, lines, list(range(1, len(lines) + 1)))
    import jinja2

    from kcprov.spec.sandbox import Names, Sandbox, is_kcprov_setting

    env = Names("env", os.environ, is_kcprov_setting)
    sandbox = Sandbox()
    try:
        template = sandbox.compile_source(_mark_newlines(source))
        output = template.render(env=env, vars=Names("vars", variables))
    except jinja2.TemplateSyntaxError as exc:
        raise _syntax_problem(source, exc) from None
    except Exception as exc:  # anything a template expression raises is the file's problem
        raise _without_values(_runtime_problem(exc), env) from None
    return _unmark(output, source)


def _syntax_problem(source: str, exc: jinja2.TemplateSyntaxError) -> TemplateProblem:
    """Jinja's error, or the unclosed tag behind it (Jinja reports the line where it gave up)."""
    unclosed = _unclosed_tag(source)
    if unclosed and unclosed[0] <= (exc.lineno or 1):
        line, opener = unclosed
        return TemplateProblem(
            line, f"template syntax error: '{opener}' is never closed", f"end it with '{_CLOSERS[opener]}'"
        )
    message = exc.message or "invalid template"
    return _unknown_filter(exc.lineno or 1, message) or TemplateProblem(exc.lineno or 1, f"template syntax error: {message}")


def _unknown_filter(line: int, message: str) -> TemplateProblem | None:
    """Jinja names an unknown filter when compiling, or when running a branch it could not check."""
    from kcprov.spec.sandbox import FILTER_NAMES

    unknown = re.match(r"No filter named '([^']*)'", message)
    if unknown:
        return TemplateProblem(line, f"unknown filter '{unknown[1]}'", f"filters in realm files: {', '.join(FILTER_NAMES)}")
    return None


def _unclosed_tag(source: str) -> tuple[int, str] | None:
    """(line, opener) of the first `{{`, `{%` or `{#` that no closer ends, if any."""
    pos = 0
    while found := _OPENER.search(source, pos):
        tag = _TAG.match(source, found.start())
        if not tag:
            return source.count("\n", 0, found.start()) + 1, found.group()
        pos = tag.end()
    return None


def _runtime_problem(exc: Exception) -> TemplateProblem:
    import jinja2

    from kcprov.spec.sandbox import Refused

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == _TEMPLATE_NAME]
    line = frames[-1].lineno if frames and frames[-1].lineno else 1
    if isinstance(exc, Refused):
        return TemplateProblem(exc.line or line, exc.message, exc.hint)
    if isinstance(exc, jinja2.UndefinedError):
        match = re.fullmatch(r"undefined variable (env|vars)\.(.+)", str(exc))
        if match:
            return TemplateProblem(line, str(exc), _HINTS[match[1]].format(name=match[2]))
        return TemplateProblem(line, str(exc), "templates see only env.NAME and vars.NAME")
    if isinstance(exc, RecursionError | SyntaxError):  # Python's limits on nesting, met by Jinja's parser or compiled code
        return TemplateProblem(line, "the template nests too deeply", "nest fewer expressions, blocks or calls inside each other")
    return _unknown_filter(line, str(exc)) or TemplateProblem(line, f"template error: {type(exc).__name__}: {exc}")


def _without_values(problem: TemplateProblem, env: Names) -> TemplateProblem:
    """The problem with every environment value the template read replaced by its name: values may be secrets."""
    from kcprov.spec.sandbox import values_read

    message, hint = problem.message, problem.hint
    for name, value in values_read(env).items():
        if isinstance(value, str) and len(value) >= 4:
            message = message.replace(value, f"<env.{name}>")
            hint = hint and hint.replace(value, f"<env.{name}>")
    return TemplateProblem(problem.line, message, hint)


def _mark_newlines(source: str) -> str:
    """Put a line-number marker before each newline of literal text that no tag may strip."""
    parts: list[str] = []
    line, pos, strip_next = 1, 0, False
    for tag in _TAG.finditer(source):
        text = tag.group()
        parts.append(_mark_text(source[pos : tag.start()], line, strip_next, text[2] == "-"))
        parts.append(text)
        line += source.count("\n", pos, tag.end())
        pos, strip_next = tag.end(), text[-3] == "-"
    parts.append(_mark_text(source[pos:], line, strip_next, False))
    return "".join(parts)


def _mark_text(text: str, line: int, stripped_start: bool, stripped_end: bool) -> str:
    """Mark the newlines of one stretch of literal text that starts on `line`.

    Whitespace that a neighbouring `-%}` or `{%-` strips stays unmarked.
    """
    lo = len(text) - len(text.lstrip()) if stripped_start else 0
    hi = len(text.rstrip()) if stripped_end else len(text)
    if lo >= hi:
        return text
    numbers = itertools.count(line + text.count("\n", 0, lo))
    body = re.sub("\n", lambda _: f"{_OPEN}{next(numbers)}{_CLOSE}\n", text[lo:hi])
    return text[:lo] + body + text[hi:]


def _unmark(output: str, source: str) -> Rendered:
    source_lines = source.split("\n")
    lines = output.split("\n")
    line_of: list[int] = [0] * len(lines)
    following = len(source_lines)
    for i in range(len(lines) - 1, -1, -1):
        match = _MARKER.search(lines[i])
        if match:
            following = int(match[1])
        line_of[i] = following
    return Rendered(_MARKER.sub("", output), source_lines, line_of)
