"""Realm roles and client roles, and the role lookups other kinds need to map roles.

Role references in the flat shape are "realm/<role>" for realm roles and
"<client-id>/<role>" for client roles, sorted, so mappings compare as sets.
"""

from __future__ import annotations

from kcprov.keycloak import seg
from kcprov.resources.base import ApplyContext, Attrs, Kind, drop_none, new_builtin

REALM = "realm"


ADMIN_REALM = "master"  # Keycloak's administration realm: its `admin` role rules every realm


def builtin_realm_roles(realm: str) -> set[str]:
    roles = {"offline_access", "uma_authorization", f"default-roles-{realm}"}
    if realm == ADMIN_REALM:
        roles |= {"admin", "create-realm"}
    return roles


BUILTIN_CLIENTS = {"account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console"}


def builtin_client(client_id: str, realm: str) -> bool:
    """A client every realm has (master also holds one `<realm>-realm` client per realm: its admin roles for that realm)."""
    return (client_id in BUILTIN_CLIENTS or client_id == f"{realm}-realm"
            or (realm == ADMIN_REALM and client_id.endswith("-realm")))


class RoleKind(Kind):
    name = "role"
    label = "realm role"
    stage = 1

    def desired(self, spec) -> dict[str, Attrs]:
        return {r.name: drop_none({"description": r.description}) for r in spec.roles}

    def live(self, raw) -> dict[str, Attrs]:
        return {r["name"]: {"description": r.get("description")} for r in raw.export.get("roles", {}).get("realm", [])}

    def is_builtin(self, key: str, realm: str) -> bool:
        return key in builtin_realm_roles(realm)

    def create(self, ctx: ApplyContext, change) -> None:
        if new_builtin(self, change.key, ctx.live):  # a realm created in this apply has it already
            return self.update(ctx, change)
        body = {"name": change.key, **{d.field: d.after for d in change.diffs}}
        ctx.client.post(f"{ctx.base}/roles", body, f"realm role '{change.key}'")

    def update(self, ctx: ApplyContext, change) -> None:
        body = {"name": change.key, **{d.field: d.after for d in change.diffs}}
        ctx.client.put(f"{ctx.base}/roles/{seg(change.key)}", body, f"realm role '{change.key}'")

    def delete(self, ctx: ApplyContext, change) -> None:
        ctx.client.delete(f"{ctx.base}/roles/{seg(change.key)}", f"realm role '{change.key}'")

    def export(self, key, fields, ctx) -> None:
        entry = ctx.entry(ctx.doc, "roles", "name", key)
        entry.update({f: fields[f] for f in ("description",) if f in fields})


class ClientRoleKind(Kind):
    name = "client_role"
    label = "client role"
    stage = 3

    def desired(self, spec) -> dict[str, Attrs]:
        out: dict[str, Attrs] = {}
        for client in spec.clients:
            for role in client.roles:  # bare names arrive as ClientRole models too
                out[f"{client.client_id}/{role.name}"] = drop_none({"description": role.description})
        return out

    def live(self, raw) -> dict[str, Attrs]:
        out: dict[str, Attrs] = {}
        for client_id, roles in (raw.export.get("roles", {}).get("client") or {}).items():
            for r in roles:
                out[f"{client_id}/{r['name']}"] = {"description": r.get("description")}
        return out

    def parent(self, key: str) -> tuple[str, str]:
        return ("client", key.split("/", 1)[0])

    def _path(self, ctx: ApplyContext, key: str) -> tuple[str, str]:
        client_id, role = key.split("/", 1)
        return f"{ctx.base}/clients/{client_uuid(ctx, client_id)}/roles", role

    def create(self, ctx: ApplyContext, change) -> None:
        path, role = self._path(ctx, change.key)
        client_id = change.key.split("/", 1)[0]
        if (not ctx.live.exists and builtin_client(client_id, ctx.realm)  # a client this apply made has no roles yet
                and ctx.client.get_optional(f"{path}/{seg(role)}", f"client role '{change.key}'")):
            return self.update(ctx, change)  # a built-in client's role, in a realm made in this apply
        ctx.client.post(path, {"name": role, **{d.field: d.after for d in change.diffs}}, f"client role '{change.key}'")

    def update(self, ctx: ApplyContext, change) -> None:
        path, role = self._path(ctx, change.key)
        body = {"name": role, **{d.field: d.after for d in change.diffs}}
        ctx.client.put(f"{path}/{seg(role)}", body, f"client role '{change.key}'")

    def delete(self, ctx: ApplyContext, change) -> None:
        path, role = self._path(ctx, change.key)
        ctx.client.delete(f"{path}/{seg(role)}", f"client role '{change.key}'")

    def export(self, key, fields, ctx) -> None:
        client_id, role = key.split("/", 1)
        entry = ctx.entry(ctx.entry(ctx.doc, "clients", "client_id", client_id), "roles", "name", role)
        entry.update({f: fields[f] for f in ("description",) if f in fields})


def client_uuid(ctx: ApplyContext, client_id: str) -> str:
    """The server id of a client (looked up by clientId only when neither this apply nor the export knows it)."""
    return ctx.server_id(
        "client", client_id, "clients", "clientId",
        lambda: ctx.client.get(f"{ctx.base}/clients", f"client '{client_id}'", clientId=client_id),
        "run `kcprov plan` again to see the current state",
    )


def role_refs(realm_roles, client_roles: dict | None) -> list[str]:
    """Spec role lists -> sorted flat references."""
    refs = [f"{REALM}/{r}" for r in realm_roles or []]
    for client_id, roles in (client_roles or {}).items():
        refs += [f"{client_id}/{r}" for r in roles]
    return sorted(refs)


def mapping_refs(mapping: dict[str, list[str]]) -> list[str]:
    """A `{realm: [...], <client-id>: [...]}` mapping of the file -> sorted flat references."""
    client_roles = dict(mapping)
    return role_refs(client_roles.pop(REALM, []), client_roles)


def mapping_of(refs: list[str]) -> dict[str, list[str]]:
    """Sorted flat references -> the file's `{realm: [...], <client-id>: [...]}` (inverse of mapping_refs)."""
    mapping: dict[str, list[str]] = {}
    for ref in refs:
        container, name = ref.split("/", 1)
        mapping.setdefault(container, []).append(name)
    return mapping


def live_role_refs(realm: str | None, realm_names, client_map: dict | None) -> list[str]:
    """Live role mappings -> sorted flat references, without the automatic default role of `realm`.

    A user gets `default-roles-<realm>` without asking; pass realm=None where nothing is automatic.
    """
    refs = [f"{REALM}/{r}" for r in realm_names or [] if realm is None or r != f"default-roles-{realm}"]
    for client_id, roles in (client_map or {}).items():
        refs += [f"{client_id}/{r}" for r in roles]
    return sorted(refs)


def role_rep(ctx: ApplyContext, ref: str) -> tuple[str, dict]:
    """(container, RoleRepresentation) for a flat reference; container is "realm" or a client uuid."""
    container, name = ref.split("/", 1)
    export = ctx.live.raw.export or {}
    if container == REALM:
        for r in export.get("roles", {}).get("realm", []):
            if r["name"] == name:
                return REALM, {"id": r["id"], "name": name}
        rep = ctx.client.get(f"{ctx.base}/roles/{seg(name)}", f"realm role '{name}'")
        return REALM, {"id": rep["id"], "name": name}
    uuid = client_uuid(ctx, container)
    for r in (export.get("roles", {}).get("client") or {}).get(container, []):
        if r["name"] == name:
            return uuid, {"id": r["id"], "name": name}
    rep = ctx.client.get(f"{ctx.base}/clients/{uuid}/roles/{seg(name)}", f"client role '{ref}'")
    return uuid, {"id": rep["id"], "name": name}


def change_role_mappings(ctx: ApplyContext, mappings_path: str, before: list[str] | None, after: list[str],
                         what: str) -> None:
    """Add and remove role mappings to match `after`.

    `mappings_path` is the collection holding them: `.../users/{id}/role-mappings` for a user (or
    service account), `.../client-scopes/{id}/scope-mappings` for a client scope; Keycloak serves
    realm roles under `/realm` and client roles under `/clients/{client-uuid}` of both.
    """
    old, new = set(before or []), set(after or [])
    for refs, adding in ((new - old, True), (old - new, False)):
        grouped: dict[str, list[dict]] = {}
        for ref in sorted(refs):
            container, rep = role_rep(ctx, ref)
            grouped.setdefault(container, []).append(rep)
        for container, reps in grouped.items():
            path = f"{mappings_path}/realm" if container == REALM else f"{mappings_path}/clients/{container}"
            if adding:
                ctx.client.post(path, reps, what)
            else:
                ctx.client.delete(path, what, body=reps)


class RoleMappingsKind(Kind):
    """Role mappings of one owner (service account, client scope) as a single flat field `roles`.

    Not deletable: an owner whose mappings the file leaves out keeps them; `{}` clears them.
    Subclasses say whose mappings the file writes (`owners`), where Keycloak keeps them
    (`mappings_path`, the collection with `/realm` and `/clients/{uuid}` below it) and `live`,
    and where the file holds them (`owner_section`, `file_key`).
    """

    stage = 4  # after roles, client roles, clients and client scopes
    deletable = False
    owner_label = ""  # "client", "client scope": how errors name the owner
    owner_section: tuple[str, str] = ("", "")  # the file's list of owners and its identity key
    file_key = ""  # the owner's key holding the mapping

    def owners(self, spec) -> list[tuple[str, dict[str, list[str]] | None]]:
        raise NotImplementedError

    def mappings_path(self, ctx: ApplyContext, key: str) -> str:
        raise NotImplementedError

    def desired(self, spec) -> dict[str, Attrs]:
        return {key: {"roles": mapping_refs(mapping)} for key, mapping in self.owners(spec) if mapping is not None}

    def create(self, ctx: ApplyContext, change) -> None:
        path = self.mappings_path(ctx, change.key)
        before = None
        if not ctx.live.exists:  # a built-in owner of a realm made in this apply has Keycloak's mappings already
            found = ctx.client.get(path, f"{self.label} of {self.owner_label} '{change.key}'") or {}
            client_map = {c: [m["name"] for m in v.get("mappings", [])]
                          for c, v in (found.get("clientMappings") or {}).items()}
            before = live_role_refs(ctx.realm, [m["name"] for m in found.get("realmMappings") or []], client_map)
        self._change(ctx, change, path, before)

    def update(self, ctx: ApplyContext, change) -> None:
        self._change(ctx, change, self.mappings_path(ctx, change.key), change.diffs[0].before)

    def _change(self, ctx: ApplyContext, change, path: str, before: list[str] | None) -> None:
        change_role_mappings(ctx, path, before, change.diffs[0].after,
                             f"{self.label} of {self.owner_label} '{change.key}'")

    def export(self, key, fields, ctx) -> None:
        """An owner a new realm lacks gets the key only when it has mappings (`{}` would say nothing)."""
        if "roles" not in fields or not (fields["roles"] or ctx.base(self.name, key) is not None):
            return
        owner = ctx.entry(ctx.doc, *self.owner_section, key)
        owner[self.file_key] = mapping_of(fields["roles"])


class DefaultRolesKind(Kind):
    """The realm's default roles: the composites of `default-roles-<realm>`, which every user gets.

    One object per realm (key: the realm name) with the flat field `roles`, as
    `default_roles: {realm: [...], <client-id>: [...]}` in the file. Keycloak's
    composites API takes realm and client roles in one list, by id. Not deletable:
    leaving the key out keeps the roles; `{}` clears them.
    """

    name = "default_roles"
    label = "default roles"
    stage = 4  # after roles and client roles
    deletable = False

    def desired(self, spec) -> dict[str, Attrs]:
        return {} if spec.default_roles is None else {spec.realm: {"roles": mapping_refs(spec.default_roles)}}

    def live(self, raw) -> dict[str, Attrs]:
        role = next((r for r in raw.export.get("roles", {}).get("realm", []) if r["name"] == f"default-roles-{raw.name}"), None)
        if role is None:
            return {}
        composites = role.get("composites") or {}
        return {raw.name: {"roles": live_role_refs(None, composites.get("realm"), composites.get("client"))}}

    def is_builtin(self, key: str, realm: str) -> bool:
        return True

    def create(self, ctx: ApplyContext, change) -> None:
        self.update(ctx, change)  # the realm made it (created in the same apply)

    def update(self, ctx: ApplyContext, change) -> None:
        d = change.diffs[0]
        path = f"{ctx.base}/roles/{seg(f'default-roles-{ctx.realm}')}/composites"
        old, new = set(d.before or []), set(d.after or [])
        what = f"default roles of realm '{ctx.realm}'"
        added = [role_rep(ctx, ref)[1] for ref in sorted(new - old)]
        removed = [role_rep(ctx, ref)[1] for ref in sorted(old - new)]
        if added:
            ctx.client.post(path, added, what)
        if removed:
            ctx.client.delete(path, what, body=removed)

    def export(self, key, fields, ctx) -> None:
        if "roles" in fields:
            ctx.doc["default_roles"] = mapping_of(fields["roles"])
