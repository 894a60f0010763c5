"""Event settings of the realm: user and admin events, listeners, enabled types, expiration.

TODO(issue 12): desired / live / create / update / delete / export.
"""

from __future__ import annotations

from kcprov.resources.base import Attrs, Kind


class EventsKind(Kind):
    name = "events"
    label = "event settings"
    stage = 1

    def desired(self, spec) -> dict[str, Attrs]:
        return {}

    def live(self, raw) -> dict[str, Attrs]:
        return {}
