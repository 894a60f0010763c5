"""Groups (nested) with their role mappings and attributes, and the realm's default groups.

TODO(issue 12): desired / live / create / update / delete / export.
"""

from __future__ import annotations

from kcprov.resources.base import Attrs, Kind


class GroupKind(Kind):
    name = "group"
    label = "group"
    stage = 4

    def desired(self, spec) -> dict[str, Attrs]:
        return {}

    def live(self, raw) -> dict[str, Attrs]:
        return {}


class DefaultGroupsKind(Kind):
    name = "default_groups"
    label = "default groups"
    stage = 5

    def desired(self, spec) -> dict[str, Attrs]:
        return {}

    def live(self, raw) -> dict[str, Attrs]:
        return {}
