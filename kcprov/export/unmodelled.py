"""What a realm holds that no kcprov resource kind models yet, compared with a new realm.

Each finding is one "kind 'name'" line for the end of the exported file and
the warning: an export never drops an object silently. Keycloak's own
built-ins (flows, required actions, key providers, the account client's
scope mappings) are compared with the baseline realm's, so they show up only
when someone changed them. Key providers are compared by presence only:
their keys differ in every realm by design.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kcprov.resources.base import without_ids
from kcprov.resources.registration import PROVIDER_TYPE as REGISTRATION_POLICY
from kcprov.resources.user_profile import PROVIDER_TYPE as USER_PROFILE

KEY_PROVIDER = "org.keycloak.keys.KeyProvider"
# top-level parts of a realm representation the resource kinds read (or that name the realm itself)
MODELLED = {
    "id", "realm", "attributes", "clients", "clientScopes", "roles", "users", "scopeMappings", "clientScopeMappings",
    "defaultDefaultClientScopes", "defaultOptionalClientScopes", "defaultRole", "clientPolicies", "clientProfiles",
    "components", "supportedLocales",
}
# parts with named entries, listed one line per entry: field -> (kind, name field)
NAMED = {
}


def not_modelled(export: dict, base: dict) -> Iterator[tuple[str, str]]:
    """(kind, name) of every object or realm setting kcprov cannot write, that a new realm does not have as is."""
    from kcprov.resources import KINDS

    modelled = MODELLED | {f for kind in KINDS for f in kind.reads}
    for field, (kind, name_field) in NAMED.items():
        if field in modelled:
            continue
        known = {_name(e, name_field): without_ids(e) for e in base.get(field) or []}
        for entry in export.get(field) or []:
            name = _name(entry, name_field)
            if known.get(name) != without_ids(entry):
                yield kind, name
    for field in sorted(set(export) - modelled - set(NAMED)):
        if isinstance(export[field], (dict, list)) and without_ids(export[field]) != without_ids(base.get(field)):
            yield "realm setting", field
    yield from _components(export, base)
    yield from _client_scope_mappings(export, base)
    yield from _roles(export, base)


def _name(entry: Any, field: str | None) -> str:
    return str(entry if field is None else entry.get(field))


def _components(export: dict, base: dict) -> Iterator[tuple[str, str]]:
    def keyed(doc: dict) -> dict:
        return {(t, c.get("providerId"), c.get("subType"), c.get("name")): c
                for t, comps in (doc.get("components") or {}).items() if t not in (REGISTRATION_POLICY, USER_PROFILE) for c in comps}

    known = keyed(base)
    for (provider_type, provider, _, name), comp in sorted(keyed(export).items(), key=lambda kv: str(kv[0])):
        key = (provider_type, provider, comp.get("subType"), name)
        same = key in known and (provider_type == KEY_PROVIDER or without_ids(known[key]) == without_ids(comp))
        if not same:
            yield f"component {provider_type.rsplit('.', 1)[-1]}", f"{name} ({provider})"


def _client_scope_mappings(export: dict, base: dict) -> Iterator[tuple[str, str]]:
    """Role scope mappings of clients (not of client scopes: kind scope_roles writes those)."""
    def of_clients(doc: dict) -> dict[str, list]:
        found: dict[str, list] = {}
        for m in doc.get("scopeMappings") or []:
            if m.get("client"):
                found.setdefault(m["client"], []).extend(f"realm/{r}" for r in m.get("roles") or [])
        for role_client, mappings in (doc.get("clientScopeMappings") or {}).items():
            for m in mappings:
                if m.get("client"):
                    found.setdefault(m["client"], []).extend(f"{role_client}/{r}" for r in m.get("roles") or [])
        return {k: sorted(v) for k, v in found.items()}

    known = of_clients(base)
    for client, roles in sorted(of_clients(export).items()):
        if known.get(client) != roles:
            yield "scope mappings of client", client


def _roles(export: dict, base: dict) -> Iterator[tuple[str, str]]:
    """Composites and attributes of roles (the realm's default role has its own kind)."""
    def roles(doc: dict) -> dict[str, dict]:
        found = {r["name"]: r for r in (doc.get("roles") or {}).get("realm") or []}
        for client, client_roles in ((doc.get("roles") or {}).get("client") or {}).items():
            found.update({f"{client}/{r['name']}": r for r in client_roles})
        return found

    default_role = ((export.get("defaultRole") or {}).get("name"))
    known = roles(base)
    for name, role in sorted(roles(export).items()):
        if name == default_role:
            continue
        before = known.get(name, {})
        if composites(role) != composites(before):
            yield "composite role", name
        if (role.get("attributes") or None) != (before.get("attributes") or None):
            yield "role attributes", name


def composites(role: dict) -> dict[str, list[str]]:
    """A role's composites as sorted references (Keycloak lists them in no stable order)."""
    found = role.get("composites") or {}
    refs = {"realm": sorted(found.get("realm") or [])}
    refs.update({client: sorted(names) for client, names in (found.get("client") or {}).items()})
    return {k: v for k, v in refs.items() if v}
