"""Users for development realms, with their realm and client role mappings and their groups.

The password is write-only: set when kcprov creates the user, never read
back or compared (Keycloak cannot return it), never shown. A user the file
does not say is disabled is created enabled (Keycloak's Admin API would create
it disabled), shown as `enabled = true (default)`. `groups` is the exact
membership, by path: a user created with it leaves the realm's default groups
only if they are not listed.
"""

from __future__ import annotations

from kcprov.keycloak import seg
from kcprov.secret import Secret
from kcprov.resources.base import ApplyContext, Attrs, Kind, drop_none
from kcprov.resources.groups import group_id
from kcprov.resources.roles import REALM, change_role_mappings, live_role_refs, mapping_of, role_refs

FIELDS = {"email": "email", "first_name": "firstName", "last_name": "lastName", "enabled": "enabled",
          "email_verified": "emailVerified"}


class UserKind(Kind):
    name = "user"
    label = "user"
    stage = 5
    write_only = frozenset({"password"})

    def desired(self, spec) -> dict[str, Attrs]:
        out = {}
        for u in spec.users:
            attrs = drop_none({f: getattr(u, f) for f in FIELDS})
            if u.password is not None:
                attrs["password"] = Secret(u.password.get_secret_value())
            if u.realm_roles is not None or u.client_roles is not None:
                attrs["roles"] = role_refs(u.realm_roles, u.client_roles)
            for key, value in (u.attributes or {}).items():
                attrs[f"attributes.{key}"] = sorted(value) if isinstance(value, list) else [value]
            if u.groups is not None:
                attrs["groups"] = sorted(set(u.groups))
            out[u.username] = attrs
        return out

    def read(self, client, raw, desired, owned) -> None:
        """The users the file names or kcprov made, each with its role mappings (two requests a user: the partial
        export has no users), and its groups (one more) unless the file names the user without `groups:`:
        that entry does not manage them, so a file without group memberships costs what it did. A user only
        the ownership record names (an export, or a delete) is read whole."""
        wanted = desired.get(self.name, {})
        for username in sorted(set(wanted) | owned.get(self.name, set())):
            found = client.get(f"/admin/realms/{seg(raw.name)}/users", f"user '{username}'",
                               username=username, exact="true", briefRepresentation="false")
            rep = next((u for u in found if u.get("username") == username), None)
            if rep is not None:
                raw.users[username] = user_record(client, raw.name, rep, "groups" in wanted.get(username, {"groups": None}))

    def live(self, raw) -> dict[str, Attrs]:
        out = {}
        for username, found in raw.users.items():
            rep, roles = found["rep"], found["roles"] or {}
            attrs: Attrs = {f: rep.get(r) for f, r in FIELDS.items()}
            client_map = {c: [m["name"] for m in v.get("mappings", [])] for c, v in (roles.get("clientMappings") or {}).items()}
            attrs["roles"] = live_role_refs(raw.name, [m["name"] for m in roles.get("realmMappings") or []], client_map)
            if "groups" in found:
                attrs["groups"] = found["groups"]
            for key, value in (rep.get("attributes") or {}).items():
                attrs[f"attributes.{key}"] = sorted(value)
            out[username] = attrs
        return out

    def _path(self, ctx: ApplyContext, username: str) -> str:
        user_id = ctx.known_id(self.name, username) or ctx.live.raw.users[username]["rep"]["id"]
        return f"{ctx.base}/users/{user_id}"

    def _mappings(self, ctx: ApplyContext, username: str) -> str:
        return f"{self._path(ctx, username)}/role-mappings"

    def create_defaults(self, key, attrs, desired, live) -> Attrs:
        return {"enabled": True}

    def create(self, ctx: ApplyContext, change) -> None:
        after = {d.field: d.after for d in change.diffs}
        body = {"username": change.key, **representation(after)}
        if "password" in after:
            body["credentials"] = [{"type": "password", "value": after["password"].reveal(), "temporary": False}]
        user_id = ctx.client.post(f"{ctx.base}/users", body, f"user '{change.key}'")
        ctx.remember(self.name, change.key, user_id)
        if after.get("roles"):
            change_role_mappings(ctx, self._mappings(ctx, change.key), [], after["roles"], f"roles of user '{change.key}'")
        if "groups" in after:  # Keycloak made it a member of the default groups
            joined = group_paths(ctx.client.get(f"{self._path(ctx, change.key)}/groups", f"groups of user '{change.key}'"))
            change_groups(ctx, self._path(ctx, change.key), joined, after["groups"], f"groups of user '{change.key}'")

    def update(self, ctx: ApplyContext, change) -> None:
        after = {d.field: d.after for d in change.diffs if d.field not in ("roles", "groups")}
        if after:
            rep = dict(ctx.live.raw.users[change.key]["rep"])
            body = representation(after)
            if "attributes" in body:  # Keycloak replaces the whole map: keep the attributes the file does not write
                body["attributes"] = {**(rep.get("attributes") or {}), **body["attributes"]}
            rep.update(body)
            ctx.client.put(self._path(ctx, change.key), rep, f"user '{change.key}'")
        for d in change.diffs:
            if d.field == "roles":
                change_role_mappings(ctx, self._mappings(ctx, change.key), d.before, d.after, f"roles of user '{change.key}'")
            elif d.field == "groups":
                change_groups(ctx, self._path(ctx, change.key), d.before, d.after, f"groups of user '{change.key}'")

    def delete(self, ctx: ApplyContext, change) -> None:
        ctx.client.delete(self._path(ctx, change.key), f"user '{change.key}'")

    def export(self, key, fields, ctx) -> None:
        """Never a password (Keycloak cannot return one); federation links and pending actions are listed."""
        entry = ctx.entry(ctx.doc, "users", "username", key)
        entry.update({f: fields[f] for f in FIELDS if f in fields})
        if "roles" in fields:
            mapping = mapping_of(fields["roles"])
            realm_roles = mapping.pop(REALM, None)
            entry.update(drop_none({"realm_roles": realm_roles, "client_roles": mapping or None}))
        attributes = {f.removeprefix("attributes."): v[0] if len(v) == 1 else v
                      for f, v in fields.items() if f.startswith("attributes.")}
        if attributes:
            entry["attributes"] = attributes
        if any(("group", path) in ctx.excluded for path in fields.get("groups", ())):
            ctx.not_exported(self.label, key, "groups: a member of a group the file cannot name")  # a part would be exact
        elif "groups" in fields:
            entry["groups"] = fields["groups"]
        rep = ctx.live.raw.users[key]["rep"]
        for field in ("federationLink", "requiredActions"):
            if rep.get(field):
                ctx.not_exported(self.label, key, field)


def user_record(client, realm: str, rep: dict, with_groups: bool) -> dict:
    """What `live` needs of one user beyond its representation: role mappings, and groups if asked (a request each)."""
    username = rep["username"]
    record = {"rep": rep, "roles": client.user_role_mappings(realm, rep["id"], username)}
    if with_groups:
        groups = client.get(f"/admin/realms/{seg(realm)}/users/{rep['id']}/groups", f"groups of user '{username}'")
        record["groups"] = group_paths(groups)
    return record


def group_paths(reps: list[dict] | None) -> list[str]:
    """GET /users/{id}/groups (every membership, no paging unless asked) -> sorted paths."""
    return sorted(g["path"] for g in reps or [])


def change_groups(ctx: ApplyContext, user_path: str, before: list[str] | None, after: list[str], what: str) -> None:
    """Join and leave groups to match `after` (PUT and DELETE /users/{id}/groups/{group id})."""
    old, new = set(before or []), set(after or [])
    for path in sorted(new - old):
        ctx.client.put(f"{user_path}/groups/{group_id(ctx, path)}", {}, what)
    for path in sorted(old - new):
        ctx.client.delete(f"{user_path}/groups/{group_id(ctx, path)}", what)


def representation(after: Attrs) -> dict:
    body: dict = {FIELDS[f]: v for f, v in after.items() if f in FIELDS}
    attributes = {f.removeprefix("attributes."): v for f, v in after.items() if f.startswith("attributes.")}
    if attributes:
        body["attributes"] = attributes
    return body
