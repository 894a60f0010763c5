"""Groups: nested groups with their roles and attributes, the realm's default groups.

The realm file's part of this kind (its resource kind is `kcprov.resources.groups`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from kcprov.spec.fields import Spec
from kcprov.spec.findings import Finding

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec


class Group(Spec):
    """TODO(issue 12)."""


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Cross-object problems of this part of the file (unique names, references)."""
    return iter(())
