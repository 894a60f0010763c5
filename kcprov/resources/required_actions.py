"""Required actions of the realm: enabled, default action, priority, config.

TODO(issue 12): desired / live / create / update / delete / export.
"""

from __future__ import annotations

from kcprov.resources.base import Attrs, Kind


class RequiredActionKind(Kind):
    name = "required_action"
    label = "required action"
    stage = 1

    def desired(self, spec) -> dict[str, Attrs]:
        return {}

    def live(self, raw) -> dict[str, Attrs]:
        return {}
