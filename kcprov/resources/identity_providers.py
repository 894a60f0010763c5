"""Identity providers and their mappers.

TODO(issue 12): desired / live / create / update / delete / export.
"""

from __future__ import annotations

from kcprov.resources.base import Attrs, Kind


class IdentityProviderKind(Kind):
    name = "identity_provider"
    label = "identity provider"
    stage = 2

    def desired(self, spec) -> dict[str, Attrs]:
        return {}

    def live(self, raw) -> dict[str, Attrs]:
        return {}


class IdentityProviderMapperKind(Kind):
    name = "identity_provider_mapper"
    label = "identity provider mapper"
    stage = 5

    def desired(self, spec) -> dict[str, Attrs]:
        return {}

    def live(self, raw) -> dict[str, Attrs]:
        return {}
