"""Clients Keycloak's dynamic client registration made, recognised in the partial export.

An MCP realm with anonymous DCR collects one client per MCP client install
(every laptop, every reinstall of an inspector); in the plan's "not managed"
list their client ids are bare UUIDs. So the plan names them by what they
call themselves and says that DCR made them.

Keycloak 26.7.3 records no "registered by" attribute; verified there:
* OIDC DCR (POST /realms/{r}/clients-registrations/openid-connect) gives a
  client the same generated UUID as `clientId` and internal `id`, while the
  Admin API (and the admin console) generate an `id` apart from the
  `clientId` they are given. `clientId == id` is the mark (an admin can only
  forge it by posting an explicit `id` equal to the `clientId`);
* `client_name` becomes the client's `name` (chosen by the registrant:
  hostile text, shown through kcprov.terminal);
* the registration time (`client_id_issued_at`) is stored only as the
  `client.secret.creation.time` attribute of a confidential client; a public
  client (`token_endpoint_auth_method: none`, what MCP clients ask for)
  keeps no date the Admin API shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

KIND = "client"  # kcprov.resources.clients
SECRET_CREATED = "client.secret.creation.time"


@dataclass(frozen=True)
class DcrClient:
    """What the plan shows of a client DCR registered."""

    name: str | None  # its client_name
    registered: datetime | None  # when, if Keycloak kept it (confidential clients)

    def to_json(self) -> dict:
        return {"registered_by": "dcr", "client_name": self.name,
                "registered": self.registered.isoformat() if self.registered else None}


def dcr_clients(export: dict | None, unmanaged: Iterable[tuple[str, str]]) -> dict[tuple[str, str], DcrClient]:
    """The clients among the plan's `unmanaged` (kind, key) pairs that DCR registered."""
    wanted = {key for kind, key in unmanaged if kind == KIND}
    found = {}
    for rep in (export or {}).get("clients") or []:
        client_id = rep.get("clientId")
        if client_id in wanted and client_id == rep.get("id"):
            found[KIND, client_id] = DcrClient(rep.get("name") or None, _time(rep.get("attributes") or {}))
    return found


def _time(attributes: dict) -> datetime | None:
    """The secret's creation time; None if absent or not a time (an admin can write any attribute)."""
    try:
        return datetime.fromtimestamp(int(str(attributes.get(SECRET_CREATED))), timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
