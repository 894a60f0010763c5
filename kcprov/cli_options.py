"""Option groups: a set of command-line options declared once and shared by commands.

Typer has no option groups: without this, the connection options (URL,
credentials, TLS, timeout) would be repeated in every command's signature.
A group is a frozen dataclass whose fields are `Annotated[type, typer.Option]`;
`@options(Group)` adds the fields to the command's parameters (typer sees
them as ordinary options, with their help and `envvar=`) and hands the
command one instance of the group in the parameter annotated with it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, get_type_hints

F = TypeVar("F", bound=Callable[..., Any])


def options(*groups: type) -> Callable[[F], F]:
    """Expose the fields of each dataclass in `groups` as options of the decorated command.

    The command names a parameter of each group's type (e.g. `keycloak: KeycloakOptions`);
    it receives the instance built from the options the user gave.
    """

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        receivers = {g: _receiver(signature, g, command) for g in groups}
        own = [p for p in signature.parameters.values() if p.name not in receivers.values()]
        added = [p for g in groups for p in _group_parameters(g)]
        names = {p.name for p in own}
        clash = names & {p.name for p in added}
        if clash:
            raise TypeError(f"{command.__name__}: options {sorted(clash)} are also in a group")

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            for group, receiver in receivers.items():
                fields = {f.name: kwargs.pop(f.name) for f in dataclasses.fields(group)}
                kwargs[receiver] = group(**fields)
            return command(**kwargs)

        del wrapper.__wrapped__  # typer must see the new signature, not the original
        wrapper.__annotations__ = {}
        wrapper.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _receiver(signature: inspect.Signature, group: type, command: Callable) -> str:
    for parameter in signature.parameters.values():
        if parameter.annotation is group:
            return parameter.name
    raise TypeError(f"{command.__name__} has no parameter of type {group.__name__}")


def _group_parameters(group: type) -> list[inspect.Parameter]:
    hints = get_type_hints(group, include_extras=True)
    return [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name], default=f.default)
        for f in dataclasses.fields(group)
    ]
