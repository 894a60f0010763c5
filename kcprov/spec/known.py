"""What a reference in a realm file may name: what every realm has, and what the file defines.

Shared by the cross-object checks of every part of the file (`kcprov.spec.checks`
and each kind's spec module): a group's `realm_roles`, an identity provider
mapper's role, a user's `client_roles` all resolve against the same names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from kcprov.spec.findings import Finding, unknown
from kcprov.spec.yamldoc import Path

if TYPE_CHECKING:
    from kcprov.spec.models import Client, RealmSpec

BUILTIN_SCOPES = frozenset(
    {
        "openid", "profile", "email", "address", "phone", "roles", "web-origins", "acr",
        "basic", "offline_access", "microprofile-jwt", "organization", "service_account",
    }
)
BUILTIN_CLIENT_ROLES: dict[str, frozenset[str]] = {
    "realm-management": frozenset(
        {
            "create-client", "impersonation", "manage-authorization", "manage-clients",
            "manage-events", "manage-identity-providers", "manage-realm", "manage-users",
            "query-clients", "query-groups", "query-realms", "query-users", "realm-admin",
            "view-authorization", "view-clients", "view-events", "view-identity-providers",
            "view-realm", "view-users",
        }
    ),
    "account": frozenset(
        {
            "delete-account", "manage-account", "manage-account-links", "manage-consent",
            "view-applications", "view-consent", "view-groups", "view-profile",
        }
    ),
    "broker": frozenset({"read-token"}),
    "account-console": frozenset(),
    "admin-cli": frozenset(),
    "security-admin-console": frozenset(),
}
"""Clients every realm has, with the roles they bring."""
BUILTIN_FLOWS = frozenset(
    {"browser", "clients", "direct grant", "docker auth", "first broker login", "registration", "reset credentials",
     "saml ecp"}
)
"""The top-level authentication flows every realm has (Keycloak 26.7), which a binding may name."""
BUILTIN_REALM_ROLES = frozenset({"offline_access", "uma_authorization"})
"""Realm roles every realm has, besides default-roles-<realm>."""
GLOBAL_CLIENT_PROFILES = frozenset(
    {
        "fapi-1-baseline", "fapi-1-advanced", "fapi-ciba", "fapi-2-security-profile",
        "fapi-2-message-signing", "oauth-2-1-for-confidential-client",
        "oauth-2-1-for-public-client",
    }
)


def all_clients(spec: RealmSpec) -> list[tuple[Path, Client]]:
    """Clients of `clients:` plus the pre-registered clients of MCP servers."""
    found: list[tuple[Path, Client]] = [(("clients", i), c) for i, c in enumerate(spec.clients)]
    for i, server in enumerate(spec.mcp_servers):
        for j, entry in enumerate(server.clients):
            if entry.client is not None:
                found.append((("mcp_servers", i, "clients", j, "client"), entry.client))
    return found


def realm_roles(spec: RealmSpec) -> set[str]:
    return {r.name for r in spec.roles} | BUILTIN_REALM_ROLES | {f"default-roles-{spec.realm}"}


def client_roles(spec: RealmSpec) -> dict[str, set[str]]:
    """Client id -> its roles, for clients of the file, generated introspectors and built-ins."""
    roles = {name: set(r) for name, r in BUILTIN_CLIENT_ROLES.items()}
    for server in spec.mcp_servers:
        if server.introspection_client:
            roles.setdefault(server.introspection_client, set())
    for _, client in all_clients(spec):  # a built-in client's roles stay: the file may add to them
        roles.setdefault(client.client_id, set()).update(r.name for r in client.roles)
    return roles


def role_grants(spec: RealmSpec, path: Path, granted: dict[str, list[str]] | None, realm_key: bool,
                clients: dict[str, set[str]] | None = None) -> Iterator[Finding]:
    """Findings for each unknown client or role of a `{client_id: [roles]}` grant (`realm:` holds realm roles
    where `realm_key`); what a group, user, service account or scope may be granted.

    `clients`: `client_roles(spec)` when the caller checks many grants (once per client would be
    quadratic in the number of clients).
    """
    if not granted:
        return
    clients = client_roles(spec) if clients is None else clients
    how_client = "define it under clients"
    for client_id, names in (granted or {}).items():
        if realm_key and client_id == "realm":
            known, what, owner, how = realm_roles(spec), "realm role", "", "define it under roles"
        elif client_id not in clients:
            yield unknown((*path, client_id), "client", client_id, clients, how_client)
            continue
        else:
            known, what, owner = clients[client_id], "role", f" of client '{client_id}'"
            how = (
                f"Keycloak's '{client_id}' client has: {', '.join(sorted(known)) or 'no roles'}"
                if client_id in BUILTIN_CLIENT_ROLES
                else f"add it to the roles of client '{client_id}'"
            )
        for j, name in enumerate(names):
            if name not in known:
                yield unknown((*path, client_id, j), what, name, known, how, owner)


def group_paths(spec: RealmSpec) -> set[str]:
    """Every group of the file by path (`/staff/mcp-admins`), as users, default groups and mappers name them."""
    found: set[str] = set()
    todo = [("", g) for g in spec.groups]
    while todo:
        parent, group = todo.pop()
        path = f"{parent}/{group.name}"
        found.add(path)
        todo.extend((path, sub) for sub in group.subgroups)
    return found


def flow_aliases(spec: RealmSpec) -> set[str]:
    """Top-level flows a binding may name: the file's and Keycloak's built-in ones."""
    return {f.alias for f in spec.authentication_flows} | BUILTIN_FLOWS

