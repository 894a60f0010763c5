"""Organizations with their domains, members and identity providers.

TODO(issue 12): desired / live / create / update / delete / export.
"""

from __future__ import annotations

from kcprov.resources.base import Attrs, Kind


class OrganizationKind(Kind):
    name = "organization"
    label = "organization"
    stage = 6

    def desired(self, spec) -> dict[str, Attrs]:
        return {}

    def live(self, raw) -> dict[str, Attrs]:
        return {}
