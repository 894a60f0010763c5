"""Secret values as every layer carries them: comparable, never shown.

The spec layer reads secrets from realm files, the state layer from Keycloak,
the plan compares and renders them, apply writes them: all hold them as
`Secret`, which compares by value (a changed secret is a change) but prints
only `(sensitive)`. `public` is a value as it may be shown or saved. It lives
below every layer so that none imports upward to reach it.
"""

from __future__ import annotations

from typing import Any

SENSITIVE = "(sensitive)"


class Secret:
    """A secret value carried through planning without ever being shown.

    Equality compares values (so a changed secret is a change); str/repr and
    JSON show only `(sensitive)`.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return SENSITIVE

    __str__ = __repr__


def public(value: Any) -> Any:
    """A value as it may be shown or saved: secrets masked, sets sorted."""
    if isinstance(value, Secret):
        return SENSITIVE
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public(v) for v in value]
    return value
