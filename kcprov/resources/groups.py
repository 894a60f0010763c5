"""Groups (nested) with their role mappings and attributes, and the realm's default groups.

A group's key is its path (`/staff/mcp-admins`). The partial export holds the
whole tree (`groups`, each with `subGroups` at any depth, `description`,
`attributes`, `realmRoles`, `clientRoles` by client id) and `defaultGroups`
(paths), so reading costs no request. A subgroup is made under its parent
(POST /groups/{id}/children), so it comes a stage after it (`stage_of`) and
deleting a parent takes its subgroups with it (`parent`). kcprov's realm
lock is a top-level group too (`kcprov.lock`): it is left out of the live
realm, so a plan made while an apply holds the lock is the same as one made
without.
"""

from __future__ import annotations

from collections.abc import Iterator

from kcprov.errors import KeycloakApiError
from kcprov.keycloak import seg
from kcprov.lock import LOCK_GROUP
from kcprov.resources.base import ApplyContext, Attrs, Kind, drop_none
from kcprov.resources.roles import REALM, change_role_mappings, live_role_refs, mapping_of, role_refs

GROUP = "group"


def split(path: str) -> tuple[str | None, str]:
    """`/staff/mcp-admins` -> ("/staff", "mcp-admins"); a top-level group has no parent (None)."""
    parent, name = path.rsplit("/", 1)
    return parent or None, name


def live_groups(export: dict) -> Iterator[tuple[str, dict]]:
    """(path, representation) of every group of the partial export, parents first, the lock left out."""
    todo = [("", g) for g in reversed(export.get("groups") or []) if g.get("name") != LOCK_GROUP]
    while todo:
        parent, rep = todo.pop()
        path = f"{parent}/{rep['name']}"
        yield path, rep
        todo.extend((path, sub) for sub in reversed(rep.get("subGroups") or []))


def group_id(ctx: ApplyContext, path: str) -> str:
    """The server id of a group: known from this apply, else from the export, else looked up by path."""
    known = ctx.known_id(GROUP, path)
    if known:
        return known
    rep = next((r for p, r in live_groups(ctx.live.raw.export or {}) if p == path), None)
    if rep is None:
        segments = "/".join(seg(name) for name in path.strip("/").split("/"))
        rep = ctx.client.get_optional(f"{ctx.base}/group-by-path/{segments}", f"group '{path}'")
    if not rep:
        raise KeycloakApiError(f"group '{path}' does not exist in realm '{ctx.realm}'.",
                               hint="run `kcprov plan` again to see the current state")
    ctx.remember(GROUP, path, rep["id"])
    return rep["id"]


def group_attrs(g) -> Attrs:
    """The flat shape of one group of the file (`g`: kcprov.spec.groups.Group)."""
    attrs = drop_none({"description": g.description})
    if g.realm_roles is not None or g.client_roles is not None:
        attrs["roles"] = role_refs(g.realm_roles, g.client_roles)
    for key, value in (g.attributes or {}).items():
        attrs[f"attributes.{key}"] = sorted(value) if isinstance(value, list) else [value]
    return attrs


class GroupKind(Kind):
    name = GROUP
    label = "group"
    stage = 4  # after realm and client roles (its role mappings)
    reads = frozenset({"groups"})

    def desired(self, spec) -> dict[str, Attrs]:
        from kcprov.spec.groups import walk

        return {path: group_attrs(g) for _, path, g in walk(spec.groups)}

    def live(self, raw) -> dict[str, Attrs]:
        out: dict[str, Attrs] = {}
        for path, rep in live_groups(raw.export):
            attrs: Attrs = {"description": rep.get("description"),
                            "roles": live_role_refs(None, rep.get("realmRoles"), rep.get("clientRoles"))}
            for key, value in (rep.get("attributes") or {}).items():
                attrs[f"attributes.{key}"] = sorted(value)
            out.setdefault(path, attrs)  # a hand-made name with '/' may repeat a path: the first one counts
        return out

    def stage_of(self, key: str) -> float:
        """A subgroup after its parent: 4, 4.001, 4.002, ... by depth (still before default groups, 4.5)."""
        return self.stage + (key.count("/") - 1) / 1000

    def parent(self, key: str) -> tuple[str, str] | None:
        parent, _ = split(key)
        return None if parent is None else (GROUP, parent)

    def create(self, ctx: ApplyContext, change) -> None:
        parent, name = split(change.key)
        after = {d.field: d.after for d in change.diffs}
        body = {"name": name, **representation(after)}
        where = f"{ctx.base}/groups" if parent is None else f"{ctx.base}/groups/{group_id(ctx, parent)}/children"
        new_id = ctx.client.post(where, body, f"group '{change.key}'")
        ctx.remember(GROUP, change.key, new_id)
        if after.get("roles"):
            change_role_mappings(ctx, f"{ctx.base}/groups/{new_id}/role-mappings", [], after["roles"],
                                 f"roles of group '{change.key}'")

    def update(self, ctx: ApplyContext, change) -> None:
        """Keycloak's PUT clears a description it is not sent and replaces the whole attribute map:
        the live ones go along, with the file's changes on top."""
        gid = group_id(ctx, change.key)
        after = {d.field: d.after for d in change.diffs if d.field != "roles"}
        if after:
            rep = next(r for p, r in live_groups(ctx.live.raw.export) if p == change.key)
            body = {"name": split(change.key)[1], "description": rep.get("description"),
                    "attributes": dict(rep.get("attributes") or {})}
            changed = representation(after)
            body["attributes"].update(changed.pop("attributes", {}))
            body.update(changed)
            ctx.client.put(f"{ctx.base}/groups/{gid}", body, f"group '{change.key}'")
        for d in change.diffs:
            if d.field == "roles":
                change_role_mappings(ctx, f"{ctx.base}/groups/{gid}/role-mappings", d.before, d.after,
                                     f"roles of group '{change.key}'")

    def delete(self, ctx: ApplyContext, change) -> None:
        """Keycloak deletes the subgroups with it (they are not deleted one by one: see `parent`)."""
        ctx.client.delete(f"{ctx.base}/groups/{group_id(ctx, change.key)}", f"group '{change.key}'")

    def export(self, key, fields, ctx) -> None:
        """Under its parent's `subgroups`; roles only when it has some. A name holding '/' is listed:
        the file's paths could not name it."""
        name = next(r["name"] for p, r in live_groups(ctx.live.raw.export) if p == key)
        if "/" in name:
            return ctx.exclude(self.name, key, self.label, "its name holds '/', which a realm file's paths cannot name")
        entry = group_entry(ctx, key)
        entry.update({f: fields[f] for f in ("description",) if f in fields})
        if fields.get("roles"):
            mapping = mapping_of(fields["roles"])
            entry.update(drop_none({"realm_roles": mapping.pop(REALM, None), "client_roles": mapping or None}))
        attributes = {f.removeprefix("attributes."): v[0] if len(v) == 1 else v
                      for f, v in fields.items() if f.startswith("attributes.")}
        if attributes:
            entry["attributes"] = attributes


def group_entry(ctx, path: str) -> dict:
    """The exported entry of a group: in `groups:`, or in its parent's `subgroups:`."""
    parent, name = split(path)
    if parent is None:
        return ctx.entry(ctx.doc, "groups", "name", name)
    return ctx.entry(group_entry(ctx, parent), "subgroups", "name", name)


def representation(after: Attrs) -> dict:
    """GroupRepresentation fragment for the changed fields but roles."""
    body: dict = {f: v for f, v in after.items() if f == "description"}
    attributes = {f.removeprefix("attributes."): v for f, v in after.items() if f.startswith("attributes.")}
    if attributes:
        body["attributes"] = attributes
    return body


class DefaultGroupsKind(Kind):
    """The realm's default groups, which Keycloak makes every new user a member of.

    One object per realm (key: the realm name), flat field `groups` (sorted paths).
    Not deletable: leaving `default_groups` out keeps them; `[]` clears them. Its
    stage comes after every group and before users, so a user created in the same
    apply joins them (Keycloak adds them only at the user's creation).
    """

    name = "default_groups"
    label = "default groups"
    stage = 4.5
    deletable = False
    reads = frozenset({"defaultGroups"})

    def desired(self, spec) -> dict[str, Attrs]:
        return {} if spec.default_groups is None else {spec.realm: {"groups": sorted(set(spec.default_groups))}}

    def live(self, raw) -> dict[str, Attrs]:
        return {raw.name: {"groups": sorted(raw.export.get("defaultGroups") or [])}}

    def is_builtin(self, key: str, realm: str) -> bool:
        return True

    def create(self, ctx: ApplyContext, change) -> None:
        self.update(ctx, change)  # the realm, created in the same apply, has the (empty) list

    def update(self, ctx: ApplyContext, change) -> None:
        d = change.diffs[0]
        old, new = set(d.before or []), set(d.after or [])
        what = f"default groups of realm '{ctx.realm}'"
        for path in sorted(new - old):
            ctx.client.put(f"{ctx.base}/default-groups/{group_id(ctx, path)}", {}, what)
        for path in sorted(old - new):
            ctx.client.delete(f"{ctx.base}/default-groups/{group_id(ctx, path)}", what)

    def export(self, key, fields, ctx) -> None:
        """All or nothing, as a user's groups: a part of the list would clear the rest."""
        if any((GROUP, path) in ctx.excluded for path in fields.get("groups", ())):
            ctx.not_exported(self.label, key, "one of them is a group the file cannot name")
        elif "groups" in fields:
            ctx.doc["default_groups"] = fields["groups"]
