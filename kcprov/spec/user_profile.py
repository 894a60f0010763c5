"""The declarative user profile: attributes, their validations and permissions, the unmanaged-attribute policy.

The realm file's part of this kind (its resource kind is `kcprov.resources.user_profile`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from kcprov.spec.fields import Spec
from kcprov.spec.findings import Finding

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec


class UserProfile(Spec):
    """TODO(issue 12)."""


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Cross-object problems of this part of the file (unique names, references)."""
    return iter(())
