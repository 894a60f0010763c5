"""The realm's declarative user profile (GET/PUT /users/profile; not in the partial export).

TODO(issue 12): desired / live / create / update / delete / export.
"""

from __future__ import annotations

from kcprov.resources.base import Attrs, Kind


class UserProfileKind(Kind):
    name = "user_profile"
    label = "user profile"
    stage = 1

    def desired(self, spec) -> dict[str, Attrs]:
        return {}

    def live(self, raw) -> dict[str, Attrs]:
        return {}
