"""Authentication flows and their executions, and the realm's flow bindings.

TODO(issue 12): desired / live / create / update / delete / export.
"""

from __future__ import annotations

from kcprov.resources.base import Attrs, Kind


class AuthenticationFlowKind(Kind):
    name = "authentication_flow"
    label = "authentication flow"
    stage = 1

    def desired(self, spec) -> dict[str, Attrs]:
        return {}

    def live(self, raw) -> dict[str, Attrs]:
        return {}


class FlowBindingsKind(Kind):
    name = "flow_bindings"
    label = "flow bindings"
    stage = 2

    def desired(self, spec) -> dict[str, Attrs]:
        return {}

    def live(self, raw) -> dict[str, Attrs]:
        return {}
