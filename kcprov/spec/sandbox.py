"""The Jinja2 sandbox a realm file renders in: the file is untrusted input.

In GitOps a pull request controls the realm file while kcprov runs with admin
credentials, so a template may compute text from literals, `env.NAME` and
`vars.NAME`, and nothing else (docs/templates.md is the user's side of this
contract). On top of Jinja's ImmutableSandboxedEnvironment, which refuses `_`
attributes and methods that change lists and dicts:

- no file is read: there is no loader, and include/import/extends are refused
  at their line before anything runs;
- no Python is reached: the only global is a bounded `range`, filters are an
  allow-list, and a call is allowed only to macros, loops and a few read-only
  str/dict methods (`str.format`, whose fields walk attributes, is out; so is
  `%` on text);
- `env` reads one variable it names and can never be listed, and kcprov's own
  settings (every KCPROV_* variable, plus names the caller hides) are refused:
  a file cannot send the admin password to Keycloak or to the terminal;
- work is bounded per render: characters produced (output, each run of a loop
  or macro body, text and lists built by `~ + * join replace indent string
  tojson`), steps (loop iterations and calls), call nesting, integer size and
  range length. Each bound is checked before the work it pays for, so a
  template over a limit fails fast instead of filling memory.

A refusal raises `Refused`; template.py reports it at the template line that
caused it. The budgets live on the environment, so make one `Sandbox` per render.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.filters import FILTERS, make_attrgetter
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment, modifies_known_mutable
from jinja2.visitor import NodeTransformer

MAX_TEXT = 10_000_000  # characters (and list items) one render may produce
MAX_STEPS = 100_000  # loop-body runs plus calls in one render
MAX_DEPTH = 50  # calls inside calls: a macro calling itself stops here
MAX_RANGE = 10_000  # items of one range()
MAX_INT_BITS = 64  # integers built by * and **: Keycloak stores numbers as Java longs

_FILES_HINT = "put the text in the realm file itself, or pass values with --var NAME=... or --var-file FILE.yaml"
_SEE_DOCS = "see docs/templates.md for what a realm file's templates can use"


class Refused(Exception):
    """The template asked for something a realm file may not do; `line` is set when known without a traceback."""

    def __init__(self, message: str, hint: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message, self.hint, self.line = message, hint, line


def is_kcprov_setting(name: str) -> bool:
    """KCPROV_* variables configure kcprov itself (KCPROV_PASSWORD, KCPROV_CLIENT_SECRET, ...)."""
    return name.upper().startswith("KCPROV_")


class Names:
    """`env` or `vars`: one value by name (`env.HOME`, `env['HOME']`), never a listing.

    It has no public attribute or method, so `env.copy` or `env.items` is an
    undefined variable, and listing it (`for`, `in`, `|list`, `|length`) is
    refused: a template can read a variable it names, never discover others.
    Names for which `hidden` is true are refused even when set.
    """

    __slots__ = ("_label", "_values", "_hidden", "_read")

    def __init__(self, label: str, values: Mapping[str, Any], hidden: Callable[[str], bool] = lambda name: False):
        self._label, self._values, self._hidden = label, values, hidden
        self._read: dict[str, Any] = {}

    def __getitem__(self, name: Any) -> Any:
        if isinstance(name, str) and self._hidden(name):
            raise Refused(
                f"{self._label}.{name} is one of kcprov's own settings, which realm files cannot see",
                "pass the value with --var NAME=..., or export it under a name that does not start with KCPROV_",
            )
        value = self._values[name]
        self._read[name] = value
        return value

    def _refuse_listing(self) -> Any:
        raise Refused(
            f"{self._label} cannot be listed: a template reads one variable by name",
            f"write {self._label}.NAME, and test one with: {self._label}.NAME is defined",
        )

    __iter__ = __len__ = _refuse_listing


def values_read(names: Names) -> Mapping[str, Any]:
    """The values a render has read from `names`, by name (to keep them out of error messages)."""
    return names._read


class Undefined(jinja2.StrictUndefined):
    """StrictUndefined whose message says `env.NAME` instead of "'Names object' has no attribute"."""

    @property
    def _undefined_message(self) -> str:
        owner = self._undefined_obj
        if isinstance(owner, Names):
            return f"undefined variable {owner._label}.{self._undefined_name}"
        return super()._undefined_message


def bounded_range(*args: int) -> range:
    """range() of at most MAX_RANGE items."""
    numbers = range(*args)
    try:
        too_long = len(numbers) > MAX_RANGE
    except OverflowError:  # longer than sys.maxsize
        too_long = True
    if too_long:
        raise Refused(f"range() is limited to {MAX_RANGE:,} items in a realm file", "loop over a smaller range")
    return numbers


# Methods a template may call: read-only, and their result is no larger than the value.
_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        "lower upper strip lstrip rstrip startswith endswith split rsplit title capitalize removeprefix removesuffix".split()
    ),
    dict: frozenset({"get", "items", "keys", "values"}),
    LoopContext: frozenset({"cycle", "changed"}),
}

# Jinja filters whose result is no larger than their input (or a number).
_PLAIN_FILTERS = (
    "abs capitalize count d default dictsort first float int items last length list lower map max min "
    "reject rejectattr reverse round select selectattr sort title trim truncate unique upper"
).split()


@jinja2.pass_eval_context
def _replace(eval_ctx: jinja2.nodes.EvalContext, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old, new = str(s), str(old), str(new)
    found = text.count(old) if count is None or count < 0 else min(text.count(old), count)
    eval_ctx.environment.produce(len(text) + found * max(len(new) - len(old), 0))
    return FILTERS["replace"](eval_ctx, text, old, new, count)


@jinja2.pass_environment
def _indent(environment: Sandbox, s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    prefix = width if isinstance(width, int) else len(str(width))
    environment.produce(len(text) + (text.count("\n") + 1) * max(prefix, 0))
    return FILTERS["indent"](text, width, first, blank)


@jinja2.pass_environment
def _join(environment: Sandbox, value: Iterable[Any], d: Any = "", attribute: str | int | None = None) -> str:
    if attribute is not None:
        value = map(make_attrgetter(environment, attribute), value)
    return environment.join_text(value, str(d))


@jinja2.pass_environment
def _string(environment: Sandbox, value: Any) -> str:
    return environment.text(value)


@jinja2.pass_eval_context
def _tojson(eval_ctx: jinja2.nodes.EvalContext, value: Any) -> str:
    eval_ctx.environment.produce(eval_ctx.environment.measure(value))
    return FILTERS["tojson"](eval_ctx, value)


FILTER_NAMES = sorted([*_PLAIN_FILTERS, "indent", "join", "replace", "string", "tojson"])


@jinja2.pass_context
def _print(context: jinja2.runtime.Context, value: Any) -> str:
    """Jinja's finalize: every `{{ }}` is metered. Taking the context keeps Jinja
    from evaluating constant `{{ }}` at compile time, so each run is counted."""
    return context.environment.text(value)


class Sandbox(ImmutableSandboxedEnvironment):
    """One render's environment and budgets (see the module docstring)."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=Undefined, keep_trailing_newline=True, autoescape=False, finalize=_print)
        self.globals.clear()
        self.globals["range"] = bounded_range
        self.filters = {name: FILTERS[name] for name in _PLAIN_FILTERS}
        self.filters.update(indent=_indent, join=_join, replace=_replace, string=_string, tojson=_tojson)
        self.produced = self.steps = self.depth = 0

    def compile_source(self, source: str) -> jinja2.Template:
        """Parse and meter `source`; TemplateSyntaxError or Refused (with its line) when it cannot run."""
        tree = _Meter().visit(self.parse(source))
        tree.set_environment(self)
        self.produce(_literal_size(tree.body))
        return self.from_string(tree)

    # ------------------------------------------------------------ budgets

    def produce(self, size: int) -> None:
        """Pay for `size` characters (or list items) before they are built."""
        self.produced += size
        if self.produced > MAX_TEXT:
            raise Refused(
                f"the template produces more than {MAX_TEXT:,} characters",
                "a realm file renders to at most 10 MB: loop over less, or split the file",
            )

    def measure(self, value: Any) -> int:
        """Characters `str(value)` has (an estimate for lists and mappings); refuses what is not data."""
        if isinstance(value, str):
            return len(value)
        if isinstance(value, bool | float | None):
            return 32
        if isinstance(value, int):
            return value.bit_length() // 3 + 2
        if isinstance(value, list | tuple | set | frozenset):
            return 2 + sum(self.measure(item) + 4 for item in value)
        if isinstance(value, dict):
            return 2 + sum(self.measure(key) + self.measure(item) + 6 for key, item in value.items())
        if isinstance(value, jinja2.Undefined):
            return len(str(value))  # StrictUndefined: raises the undefined-variable error
        if isinstance(value, Names):
            value._refuse_listing()
        what = "a macro (call it: name())" if isinstance(value, Macro) else f"a {type(value).__name__}"
        raise Refused(f"{what} cannot be turned into text", "print text, numbers, true/false, lists or mappings")

    def text(self, value: Any) -> str:
        self.produce(self.measure(value))
        return str(value)

    def join_text(self, values: Iterable[Any], separator: str = "") -> str:
        """`~` and `join`: the pieces as text, paid for before joining."""
        values = list(values)
        self.produce(sum(map(self.measure, values)) + len(separator) * max(len(values) - 1, 0))
        return separator.join(map(str, values))

    def run_body(self, size: int) -> None:
        """Called (and so counted as a step) at the start of each run of a loop or macro body."""
        self.produce(size)

    # ------------------------------------------------------------ sandbox hooks

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise Refused(
                f"the template runs more than {MAX_STEPS:,} loop steps and calls", "loop over less data, or split the file"
            )
        if not self._may_call(obj):
            raise Refused(f"realm files cannot call {_call_name(obj)}", _call_hint(obj))
        if self.depth >= MAX_DEPTH:
            raise Refused(f"calls nest more than {MAX_DEPTH} deep", "a macro that calls itself needs a condition that ends it")
        self.depth += 1
        try:
            return super().call(context, obj, *args, **kwargs)
        finally:
            self.depth -= 1

    def _may_call(self, obj: Any) -> bool:
        if isinstance(obj, Macro | LoopContext | jinja2.Undefined) or obj is bounded_range:
            return True  # calling an undefined raises its own error
        owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", None)
        if owner is self:
            return name in {"join_text", "run_body"}
        return any(isinstance(owner, kind) and name in names for kind, names in _METHODS.items())

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise Refused("'%' formatting is not available in realm files", "join text with ~, e.g. {{ 'https://' ~ vars.host }}")
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            self._pay_for_repetition(left, right)
        elif operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            self.produce(len(left) + len(right))
        result = self.binop_table[operator](left, right)
        if isinstance(result, int):  # operands are small (YAML and literals), so computing first is cheap
            _check_bits(abs(result).bit_length())
        return result

    def _pay_for_repetition(self, left: Any, right: Any) -> None:
        """`'a' * 10**9` is paid for before it is built."""
        for sequence, times in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple) and isinstance(times, int):
                self.produce(len(sequence) * max(times, 0))

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        """Refuse at once: an undefined would let `x.__class__ is defined` probe quietly."""
        if modifies_known_mutable(obj, attribute):
            raise Refused(f"templates cannot use '{attribute}': values in a realm file are read-only", _SEE_DOCS)
        raise Refused(f"templates cannot read '{attribute}': it is a Python internal, not a value", _SEE_DOCS)


def _check_bits(bits: float) -> None:
    if bits > MAX_INT_BITS:
        raise Refused(
            f"the number would not fit in {MAX_INT_BITS} bits", "Keycloak stores numbers as 64-bit integers; use a smaller one"
        )


def _check_power(base: Any, exponent: Any) -> None:
    """Before computing: 9 ** 10**9 would take minutes and gigabytes."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        _check_bits(exponent * math.log2(abs(base)))


def _call_name(obj: Any) -> str:
    name = getattr(obj, "__name__", None)
    return f"'{name}'" if isinstance(name, str) else f"a {type(obj).__name__}"


def _call_hint(obj: Any) -> str:
    if getattr(obj, "__name__", None) in {"format", "format_map"}:
        return "join text with ~ instead of format(), e.g. {{ 'https://' ~ vars.host }}"
    return f"use a filter instead, e.g. {{{{ value | lower }}}}; {_SEE_DOCS}"


class _Meter(NodeTransformer):
    """Rewrites a parsed template so the sandbox can meter it and refuses file tags.

    `a ~ b` becomes a call to `join_text`; each loop, macro and `{% call %}`
    body starts with a call to `run_body(size of its literal text)`, so every
    run of a body is a step and pays for the text it outputs.
    """

    def _refuse_files(self, node: nodes.Node) -> nodes.Node:
        tag = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from", nodes.Extends: "extends"}
        raise Refused(f"templates cannot read files: {{% {tag[type(node)]} %}} is not available", _FILES_HINT, node.lineno)

    visit_Include = visit_Import = visit_FromImport = visit_Extends = _refuse_files

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call_environment("join_text", [nodes.List(node.nodes, lineno=node.lineno)], node.lineno)

    def _meter_body(self, node: nodes.For | nodes.Macro | nodes.CallBlock) -> nodes.Node:
        self.generic_visit(node)
        size = nodes.Const(_literal_size(node.body), lineno=node.lineno)
        node.body.insert(0, nodes.ExprStmt(_call_environment("run_body", [size], node.lineno), lineno=node.lineno))
        return node

    visit_For = visit_Macro = visit_CallBlock = _meter_body


def _call_environment(method: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    return nodes.Call(nodes.EnvironmentAttribute(method, lineno=lineno), args, [], None, None, lineno=lineno)


def _literal_size(body: Iterable[nodes.Node]) -> int:
    """Characters of literal text one run of `body` may output; nested loop and macro bodies pay for themselves."""
    size = 0
    for node in body:
        if isinstance(node, nodes.TemplateData):
            size += len(node.data)
        elif isinstance(node, nodes.For):
            size += _literal_size(node.else_)
        elif not isinstance(node, nodes.Macro | nodes.CallBlock):
            size += _literal_size(node.iter_child_nodes())
    return size
