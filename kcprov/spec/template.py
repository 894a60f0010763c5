"""Render a realm file with Jinja2 and remember where each output line came from.

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
from typing import Any

import jinja2

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


class Namespace(dict):
    """`env` or `vars` in templates; its label lets an undefined name be reported as env.NAME."""

    def __init__(self, label: str, values: Mapping[str, Any]):
        super().__init__(values)
        self.label = label


_HINTS = {
    "env": "set {name} in the environment, or give a fallback: {{{{ env.{name} | default('...') }}}}",
    "vars": "pass --var {name}=... or --var-file FILE.yaml, or give a fallback: {{{{ vars.{name} | default('...') }}}}",
}


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined whose message says `env.NAME` instead of "'dict object' has no attribute"."""

    @property
    def _undefined_message(self) -> str:
        owner = self._undefined_obj
        if isinstance(owner, Namespace):
            return f"undefined variable {owner.label}.{self._undefined_name}"
        return super()._undefined_message


_ENVIRONMENT = jinja2.Environment(
    undefined=_Undefined, keep_trailing_newline=True, autoescape=False
)


def render(source: str, variables: Mapping[str, Any]) -> Rendered:
    """Render `source` with `env` (the process environment) and `vars` in scope.

    Raises TemplateProblem naming the source line of a syntax error, an
    undefined variable or any other failure inside the template.
    """
    source = source.replace("\r\n", "\n")
    if not _TAG.search(source):  # nothing to render: skip compiling a template
        lines = source.split("\n")
        return Rendered(source, lines, list(range(1, len(lines) + 1)))
    context = {"env": Namespace("env", os.environ), "vars": Namespace("vars", variables)}
    try:
        output = _ENVIRONMENT.from_string(_mark_newlines(source)).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(exc.lineno, f"template syntax error: {exc.message}") from None
    except Exception as exc:  # anything a template expression raises is the file's problem
        raise _runtime_problem(exc) from None
    return _unmark(output, source)


def _runtime_problem(exc: Exception) -> TemplateProblem:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == _TEMPLATE_NAME]
    line = frames[-1].lineno if frames and frames[-1].lineno else 1
    if isinstance(exc, jinja2.UndefinedError):
        match = re.fullmatch(r"undefined variable (env|vars)\.(.+)", str(exc))
        if match:
            return TemplateProblem(line, str(exc), _HINTS[match[1]].format(name=match[2]))
        return TemplateProblem(line, str(exc), "templates see only env.NAME and vars.NAME")
    return TemplateProblem(line, f"template error: {type(exc).__name__}: {exc}")


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
