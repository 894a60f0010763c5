"""Required actions: what users must do before they log in (verify email, configure OTP...).

The realm file's part of this kind (its resource kind is `kcprov.resources.required_actions`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from kcprov.spec.fields import Spec
from kcprov.spec.findings import Finding

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec


class RequiredAction(Spec):
    """TODO(issue 12)."""


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Cross-object problems of this part of the file (unique names, references)."""
    return iter(())
