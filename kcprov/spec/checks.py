"""Checks across a whole realm file: references resolve, names are unique.

The models check one object at a time; whether `default_scopes: [mcp:tools]`
names a scope, or two clients share a client_id, needs the whole file. Names
Keycloak creates in every realm count as defined.
"""

from __future__ import annotations

from collections.abc import Iterator

from kcprov.fileio import name_problem
from kcprov.spec.models import McpClientEntry, ProtocolMapper, RealmSpec
from kcprov.spec import events, flows, groups, identity_providers, organizations, required_actions, smtp, user_profile
from kcprov.spec.findings import Finding, unique, unknown
from kcprov.spec.known import (
    BUILTIN_SCOPES, GLOBAL_CLIENT_PROFILES, all_clients, client_roles, realm_roles, role_grants,
)
from kcprov.spec.yamldoc import Path

def check_realm(spec: RealmSpec) -> list[Finding]:
    """Every cross-object problem of a realm that validated as a model."""
    return [
        *_duplicates(spec),
        *_scope_references(spec),
        *_role_references(spec),
        *_client_references(spec),
        *_profile_references(spec),
        *_mcp_servers(spec),
        *_env_files(spec),
        *groups.check(spec),
        *identity_providers.check(spec),
        *flows.check(spec),
        *required_actions.check(spec),
        *smtp.check(spec),
        *events.check(spec),
        *user_profile.check(spec),
        *organizations.check(spec),
    ]


# ---------------------------------------------------------------- helpers


def _mappers(spec: RealmSpec) -> Iterator[tuple[Path, list[ProtocolMapper]]]:
    for i, scope in enumerate(spec.client_scopes):
        yield ("client_scopes", i, "mappers"), scope.mappers
    for path, client in all_clients(spec):
        yield (*path, "mappers"), client.mappers


# ---------------------------------------------------------------- uniqueness


def _duplicates(spec: RealmSpec) -> Iterator[Finding]:
    yield from unique(((("roles", i, "name"), r.name) for i, r in enumerate(spec.roles)), "realm role")
    yield from unique(
        ((("client_scopes", i, "name"), s.name) for i, s in enumerate(spec.client_scopes)), "client scope"
    )
    clients = all_clients(spec)
    yield from unique((((*p, "client_id"), c.client_id) for p, c in clients), "client_id")
    for path, client in clients:
        roles = ((((*path, "roles", i, "name"), r.name) for i, r in enumerate(client.roles)))
        yield from unique(roles, "role", owner=f" of client '{client.client_id}'")
    for path, mappers in _mappers(spec):
        yield from unique((((*path, i, "name"), m.name) for i, m in enumerate(mappers)), "mapper name")
    users = ((("users", i, "username"), u.username) for i, u in enumerate(spec.users))
    yield from unique(users, "username", fold=str.lower)
    if spec.client_policies:
        profiles = spec.client_policies.profiles
        policies = spec.client_policies.policies
        yield from unique(
            ((("client_policies", "profiles", i, "name"), p.name) for i, p in enumerate(profiles)), "client profile"
        )
        yield from unique(
            ((("client_policies", "policies", i, "name"), p.name) for i, p in enumerate(policies)), "client policy"
        )


# ---------------------------------------------------------------- references


def _scope_references(spec: RealmSpec) -> Iterator[Finding]:
    defined = {s.name for s in spec.client_scopes} | {n for m in spec.mcp_servers for n in m.scopes}
    known = defined | BUILTIN_SCOPES
    how = "define it under client_scopes (or an MCP server's scopes), or use a Keycloak built-in scope"

    def refs(path: Path, names: list[str] | None) -> Iterator[Finding]:
        for i, name in enumerate(names or ()):
            if name not in known:
                yield unknown((*path, i), "client scope", name, known, how)

    for path, client in all_clients(spec):
        yield from refs((*path, "default_scopes"), client.default_scopes)
        yield from refs((*path, "optional_scopes"), client.optional_scopes)
        both = set(client.default_scopes or ()) & set(client.optional_scopes or ())
        for i, name in enumerate(client.optional_scopes or ()):
            if name in both:
                yield Finding(
                    (*path, "optional_scopes", i),
                    f"scope '{name}' is both a default and an optional scope of client '{client.client_id}'",
                    "keep it in one of default_scopes or optional_scopes",
                )
    registration = spec.client_registration
    for kind in ("anonymous", "authenticated"):
        policy = getattr(registration, kind, None) if registration else None
        if policy:
            yield from refs(("client_registration", kind, "allowed_client_scopes"), policy.allowed_client_scopes)
    for i, server in enumerate(spec.mcp_servers):
        for j, entry in enumerate(server.clients):
            if entry.dcr:
                yield from refs(("mcp_servers", i, "clients", j, "dcr", "allowed_client_scopes"), entry.dcr.allowed_client_scopes)


def _role_references(spec: RealmSpec) -> Iterator[Finding]:
    known = realm_roles(spec)
    how = "define it under roles"
    for i, user in enumerate(spec.users):
        for j, role in enumerate(user.realm_roles or ()):
            if role not in known:
                yield unknown(("users", i, "realm_roles", j), "realm role", role, known, how)
    for i, server in enumerate(spec.mcp_servers):
        if server.admin_role and server.admin_role not in known:
            yield unknown(("mcp_servers", i, "admin_role"), "realm role", server.admin_role, known, how)


def _client_references(spec: RealmSpec) -> Iterator[Finding]:
    clients = client_roles(spec)
    how_client = "define it under clients"

    for i, user in enumerate(spec.users):
        yield from role_grants(spec, ("users", i, "client_roles"), user.client_roles, realm_key=False, clients=clients)
    for path, client in all_clients(spec):
        yield from role_grants(spec, (*path, "service_account_roles"), client.service_account_roles, realm_key=True, clients=clients)
    for i, scope in enumerate(spec.client_scopes):
        yield from role_grants(spec, ("client_scopes", i, "scope_roles"), scope.scope_roles, realm_key=True, clients=clients)
    for path, mappers in _mappers(spec):
        for i, mapper in enumerate(mappers):
            if mapper.client_audience is not None and mapper.client_audience not in clients:
                where = (*path, i, "client_audience")
                yield unknown(where, "client", mapper.client_audience, clients, how_client)


def _profile_references(spec: RealmSpec) -> Iterator[Finding]:
    if not spec.client_policies:
        return
    known = {p.name for p in spec.client_policies.profiles} | GLOBAL_CLIENT_PROFILES
    how = "define it under client_policies.profiles, or use a Keycloak global profile"
    for i, policy in enumerate(spec.client_policies.policies):
        for j, name in enumerate(policy.profiles):
            if name not in known:
                yield unknown(("client_policies", "policies", i, "profiles", j), "client profile", name, known, how)


# ---------------------------------------------------------------- MCP servers


def _mcp_servers(spec: RealmSpec) -> Iterator[Finding]:
    servers = list(enumerate(spec.mcp_servers))
    yield from unique(((("mcp_servers", i, "name"), s.name) for i, s in servers), "MCP server name")
    yield from unique(((("mcp_servers", i, "url"), s.url) for i, s in servers), "MCP server url")
    owner: dict[str, tuple[Path, str]] = {}
    for i, server in servers:
        for name in server.scopes:
            path = ("mcp_servers", i, "scopes", name)
            if name in owner:
                yield Finding(
                    path,
                    f"scope '{name}' is also a scope of MCP server '{owner[name][1]}'",
                    "each MCP server needs its own scope names: a scope carries its server's audience",
                    owner[name][0],
                )
            else:
                owner[name] = (path, server.name)
        yield from _mcp_client_entries(i, server.clients)
    for i, scope in enumerate(spec.client_scopes):
        if scope.name in owner:
            yield Finding(
                ("client_scopes", i, "name"),
                f"client scope '{scope.name}' is also a scope of MCP server '{owner[scope.name][1]}'",
                "remove it from client_scopes: the MCP server creates it, with the consent text of its scopes",
                owner[scope.name][0],
            )
    clients = {c.client_id: path for path, c in all_clients(spec) if c.confidential is False}
    for server in spec.mcp_servers:
        if server.introspection_client in clients:
            yield Finding(
                (*clients[server.introspection_client], "confidential"),
                f"introspection client '{server.introspection_client}' of MCP server '{server.name}' is a public client",
                "token introspection needs client credentials: set confidential: true",
            )


def _mcp_client_entries(server: int, entries: list[McpClientEntry]) -> Iterator[Finding]:
    """Each kind of entry at most once per server (each preset at most once)."""
    kinds = []
    for j, entry in enumerate(entries):
        if entry.client is None:
            kind = f"preset {entry.preset}" if entry.preset else ("dcr" if entry.dcr else "cimd")
            kinds.append((("mcp_servers", server, "clients", j), kind))
    yield from unique(kinds, "clients entry")


def _env_files(spec: RealmSpec) -> Iterator[Finding]:
    """An env_file no working directory or --allow-outside can make right.

    Where it may point (under the working directory, or a directory allowed
    with --allow-outside, symlinks followed) depends on where and how kcprov
    runs, so that is checked where it writes: `kcprov.envgen.check_env_targets`,
    before apply changes anything.
    """
    for i, server in enumerate(spec.mcp_servers):
        problem = name_problem(server.env_file) if server.env_file is not None else None
        if problem:
            yield Finding(("mcp_servers", i, "env_file"), f"env_file {server.env_file!r} {problem[0]}", problem[1])
