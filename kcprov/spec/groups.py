"""Groups: nested groups with their roles and attributes, the realm's default groups.

The realm file's part of this kind (its resource kind is `kcprov.resources.groups`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import Field

from kcprov.spec.fields import Spec
from kcprov.spec.findings import Finding

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec


class Group(Spec):
    """TODO(issue 12): the rest of a group's keys."""

    name: str = Field(description="Group name, unique among its siblings.")
    subgroups: list[Group] = Field(default_factory=list, description="Groups inside this one.")


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Cross-object problems of this part of the file (unique names, references)."""
    return iter(())
