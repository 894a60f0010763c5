"""Authentication flows with their executions, and which flow the realm and each client use.

The realm file's part of this kind (its resource kind is `kcprov.resources.flows`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import Field

from kcprov.spec.fields import Spec
from kcprov.spec.findings import Finding

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec


class AuthenticationFlow(Spec):
    """TODO(issue 12): the rest of a flow's keys."""

    alias: str = Field(description="Flow alias, unique in the realm.")


class FlowBindings(Spec):
    """TODO(issue 12)."""


class FlowOverrides(Spec):
    """TODO(issue 12)."""


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Cross-object problems of this part of the file (unique names, references)."""
    return iter(())
