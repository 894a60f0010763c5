"""Field types and the base model every realm-file model shares.

Kept apart from the models so each resource kind's own spec module (groups,
identity providers, flows, ...) can build on the same rules without importing
the whole realm model: names (ASCII ids, lower-case usernames), strict
booleans, durations, Keycloak string maps. The input rules behind them are
in `kcprov.spec.models`.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from kcprov.spec.yamldoc import describe


def spec_error(message: str, *, hint: str | None = None, at: str | None = None) -> PydanticCustomError:
    """A validation error whose hint and sub-key (`at`) survive pydantic, for the loader to report.

    A model validator can only fail the whole model; `at` names the offending key
    inside it so the message points at the right YAML line.
    """
    ctx = {k: v for k, v in (("message", message), ("hint", hint), ("at", at)) if v is not None}
    return PydanticCustomError("kcprov", "{message}", ctx)


# ---------------------------------------------------------------- field types

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_HINT = "write seconds (300) or a number with a unit: 300s, 5m, 1h, 1d"


def parse_duration(value: Any) -> int:
    """Normalise 300, "300", "300s", "5m", "1h", "1d" to seconds, as Keycloak stores them."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return int(match[1]) * _UNIT_SECONDS[match[2]]
    shown = f" {value!r}" if isinstance(value, (str, int, float)) and len(str(value)) <= 40 else ""
    raise spec_error(f"invalid duration{shown}", hint=DURATION_HINT)


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": _DURATION.pattern},
            ]
        }
    ),
]


def _to_keycloak_string(value: Any) -> Any:
    """Keycloak stores attribute and config values as strings: true -> "true", 5 -> "5"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _to_keycloak_strings(value: Any) -> Any:
    """A config value is a string or a list of strings (e.g. trusted domains)."""
    scalar = (str, int, float)  # bool is an int
    if isinstance(value, scalar):
        return _to_keycloak_string(value)
    if isinstance(value, list) and all(isinstance(v, scalar) for v in value):
        return [_to_keycloak_string(v) for v in value]
    raise spec_error(
        "expected a string, number, boolean, or a list of them",
        hint="write lists of values as [a, b]; nested mappings are not supported here",
    )


_Scalar = str | bool | float
KcString = Annotated[str, BeforeValidator(_to_keycloak_string, json_schema_input_type=_Scalar)]
KcStrings = Annotated[
    str | list[str], BeforeValidator(_to_keycloak_strings, json_schema_input_type=_Scalar | list[_Scalar])
]
StrMap = dict[str, KcString]
"""Raw passthrough map (attributes, mapper config); scalar values become Keycloak strings."""
MultiStrMap = dict[str, KcStrings]
"""Client-policy configuration and user attributes: strings or lists of strings."""

Flag = Annotated[bool, Strict()]
"""A boolean written as true or false; text such as 'on' or 'yes' is an error, not converted."""

_MAX_NAME = 255  # Keycloak's column size for realm names, client ids, role names and usernames


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _invisible(value: str) -> str | None:
    """The first zero-width or bidi character (Unicode category Cf), described; None if there is none."""
    if value.isascii():  # the usual case, at C speed: every Cf character is outside ASCII
        return None
    char = next((c for c in value if unicodedata.category(c) == "Cf"), None)
    return f"contains {describe(char)}, an invisible character" if char else None


def _name_problem(value: str, allowed: re.Pattern[str], every: re.Pattern[str], starts_alnum: bool) -> str | None:
    """Why `value` breaks a name rule, None if it keeps it; never echoes an odd character raw.

    `allowed` matches one allowed character, `every` a run of them: the whole name is matched at once,
    and only a name that fails is searched character by character for the one to name.
    """
    if value != value.strip():
        return "has leading or trailing whitespace"
    if len(value) > _MAX_NAME:
        return f"is longer than {_MAX_NAME} characters"
    invisible = _invisible(value)
    if invisible:
        return invisible
    if not every.fullmatch(value):
        for char in value:
            if not allowed.fullmatch(char):
                if not char.isascii():
                    return f"contains {describe(char)}, which is not ASCII"
                return f"contains {'a space' if char == ' ' else repr(char)}"
    if starts_alnum and not value[:1].isalnum():
        return "must start with a letter or digit"
    if ".." in value:
        return "contains '..'"
    return None


def _name_rule(kind: str, allowed: str, hint: str, starts_alnum: bool = True) -> AfterValidator:
    """The validator of one kind of name; `allowed` is a regex matching one allowed character."""
    pattern, every = re.compile(allowed), re.compile(f"(?:{allowed})*")

    def check(value: str) -> str:
        problem = _name_problem(value, pattern, every, starts_alnum)
        if problem:
            raise spec_error(f"{kind} {_shown(value)} {problem}", hint=hint)
        return value

    return AfterValidator(check)


def _visible(value: str, info: ValidationInfo) -> str:
    problem = _invisible(value)
    if problem:
        raise spec_error(f"{info.field_name} {problem}", hint="remove it: it hides what the text really says")
    return value


def _lower_case_username(value: str) -> str:
    """Keycloak stores usernames in lower case: `Alice` would be created as `alice`, and every later plan
    would try to create `Alice` again (409)."""
    if value != value.lower():
        raise spec_error(f"username {_shown(value)} has upper-case letters, but Keycloak stores usernames in lower case",
                         hint=f"write {_shown(value.lower())}")
    return value


_ID = r"[A-Za-z0-9._:@-]"
_ID_HINT = "use ASCII letters, digits and . _ - : @, starting with a letter or digit, e.g. mcp-server"
RealmName = Annotated[str, Field(min_length=1), _name_rule(
    "realm name", r"[A-Za-z0-9._-]",
    "use ASCII letters, digits and . _ -, starting with a letter or digit (Keycloak puts it in URLs), e.g. mcp-dev",
)]
ClientId = Annotated[str, Field(min_length=1), _name_rule("client_id", _ID, _ID_HINT)]
RoleName = Annotated[str, Field(min_length=1), _name_rule("role name", _ID, _ID_HINT)]
ServerName = Annotated[str, Field(min_length=1), _name_rule("MCP server name", _ID, _ID_HINT)]
ScopeName = Annotated[str, Field(min_length=1), _name_rule(
    "scope name", r"""[!$&-.0->@-\[\]-~]""",  # RFC 6749 scope-token characters but / ? # %
    "use printable ASCII without spaces, double quotes, backslashes or / ? # %, e.g. mcp:tools", starts_alnum=False,
)]
Username = Annotated[str, Field(min_length=1), _name_rule(
    "username", r"""[^<>&"'\s$%!#?§,;:*~/\\|^=\[\]{}()`]""",  # Keycloak's username-prohibited-characters
    "Keycloak refuses spaces and <>&\"'$%!#?§,;:*~/\\|^=[]{}()` in usernames, e.g. alice@example.com",
    starts_alnum=False,
), AfterValidator(_lower_case_username)]
Label = Annotated[str, AfterValidator(_visible)]
"""Free text shown to people (display names, first and last names): any character but invisible ones."""
OAuthScope = Annotated[str, Field(min_length=1)]
Name = Annotated[str, Field(min_length=1)]


class Spec(BaseModel):
    """Base of every model: unknown keys are errors, numbers given for text become text."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
