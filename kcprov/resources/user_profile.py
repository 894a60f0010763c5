"""The realm's declarative user profile: its unmanaged-attribute policy, attributes and attribute groups.

Keycloak keeps the profile as ONE document (UPConfig: `attributes`, `groups`,
`unmanagedAttributePolicy`), read and replaced whole (GET/PUT /users/profile).
kcprov models it as three kinds so that one edit of the file is one change and
removing an attribute deletes only attributes kcprov owns:
- `user_profile` (key: the realm): the policy. Keycloak leaves the field out
  when undeclared attributes are dropped; the file says `DISABLED`.
- `user_profile_group` (key: group name), stage 1, and `user_profile_attribute`
  (key: attribute name), stage 1.5: Keycloak refuses (400) an attribute naming a
  group the document lacks, so groups are written first and deleted last.
  `username`, `email`, `firstName`, `lastName` and the group `user-metadata` are
  in every realm: changeable, never deleted (Keycloak refuses removing username
  and email).
Every write is GET-modify-PUT of the whole document, one at a time per apply
(`ApplyContext.serialised`): changes of one stage run concurrently, and two
PUTs built from the same GET would lose one of them.

Reading: once the profile was changed, the partial export holds it as the
config of a `UserProfileProvider` component (checked on 26.7.3), so an in-sync
plan costs nothing extra; a realm whose profile was never changed has no such
component and costs one GET, made only if the file has `user_profile:`, the
ownership record names profile objects, or the read is an export's.
"""

from __future__ import annotations

import json

from kcprov.keycloak import seg
from kcprov.resources.base import ApplyContext, Attrs, Kind, drop_none
from kcprov.spec.user_profile import BUILTIN_GROUP, Required

PROVIDER_TYPE = "org.keycloak.userprofile.UserProfileProvider"
CONFIG_KEY = "kc.user.profile.config"
BUILTIN_ATTRIBUTES = frozenset({"username", "email", "firstName", "lastName"})
DISABLED = "DISABLED"
# attribute fields -> UPConfig keys; permissions.*, required and selector.scopes have their own shape
SIMPLE = {"display_name": "displayName", "validations": "validations", "annotations": "annotations",
          "multivalued": "multivalued", "group": "group"}
GROUP_FIELDS = {"display_header": "displayHeader", "display_description": "displayDescription",
                "annotations": "annotations"}
# what an attribute holds when UPConfig leaves a key out: an export of a new attribute need not write it
ATTRIBUTE_ABSENT = {"multivalued": False, "required": False, "selector.scopes": [],
                    "permissions.view": [], "permissions.edit": []}
ADMIN_ONLY = {"permissions.view": ["admin"], "permissions.edit": ["admin"]}
KINDS = ("user_profile", "user_profile_group", "user_profile_attribute")


def profile_of(raw) -> dict:
    """The profile document read for this realm ({} if none was read)."""
    return raw.extra.get("user_profile") or {}


def _from_export(export: dict) -> dict | None:
    for component in (export.get("components") or {}).get(PROVIDER_TYPE) or []:
        for text in (component.get("config") or {}).get(CONFIG_KEY) or []:
            try:
                return json.loads(text)
            except ValueError:
                return None
    return None


def _required(value) -> dict | bool:
    """`required` as compared: False (never), {} (always), or {roles, scopes} with sorted lists."""
    if value is True:
        return {}
    if value is None or value is False:
        return False
    if isinstance(value, Required):
        value = value.model_dump(exclude_none=True)
    return {k: sorted(v) for k, v in value.items() if k in ("roles", "scopes") and v is not None}


class UserProfileKind(Kind):
    name = "user_profile"
    label = "user profile"
    stage = 1
    deletable = False

    def desired(self, spec) -> dict[str, Attrs]:
        if spec.user_profile is None:
            return {}
        return {spec.realm: drop_none({"unmanaged_attribute_policy": spec.user_profile.unmanaged_attribute_policy})}

    def read(self, client, raw, desired, owned) -> None:
        """The document from the export, else one GET if the file, the ownership record or an export needs it."""
        found = _from_export(raw.export)
        named = any(desired.get(k) for k in KINDS) or any(owned.get(k) for k in KINDS) or not desired
        if found is None and named:
            found = client.get(f"/admin/realms/{seg(raw.name)}/users/profile", f"user profile of realm '{raw.name}'")
        if found is not None:
            raw.extra[self.name] = found

    def live(self, raw) -> dict[str, Attrs]:
        doc = profile_of(raw)
        return {raw.name: {"unmanaged_attribute_policy": doc.get("unmanagedAttributePolicy") or DISABLED}} if doc else {}

    def is_builtin(self, key, realm) -> bool:
        return True

    def create(self, ctx: ApplyContext, change) -> None:
        self.update(ctx, change)  # every realm has a profile: a new realm's is changed

    def update(self, ctx: ApplyContext, change) -> None:
        if not change.diffs:  # `user_profile:` without a policy, for a new realm: nothing to write
            return
        policy = change.diffs[0].after

        def apply(doc: dict) -> None:
            doc.pop("unmanagedAttributePolicy", None)
            if policy != DISABLED:
                doc["unmanagedAttributePolicy"] = policy

        edit_profile(ctx, apply)

    def export(self, key, fields, ctx) -> None:
        if "unmanaged_attribute_policy" in fields:
            ctx.section("user_profile")["unmanaged_attribute_policy"] = fields["unmanaged_attribute_policy"]


class _Entries(Kind):
    """Named entries of one list of the document (attributes, groups): upserted and removed by name."""

    section = ""  # the UPConfig list, and the list under `user_profile:` in the realm file
    builtin: frozenset[str] = frozenset()

    def desired(self, spec) -> dict[str, Attrs]:
        entries = getattr(spec.user_profile, self.section) if spec.user_profile else []
        return {e.name: self.flat_of_spec(e) for e in entries}

    def live(self, raw) -> dict[str, Attrs]:
        return {e["name"]: self.flat(e) for e in profile_of(raw).get(self.section) or []}

    def is_builtin(self, key, realm) -> bool:
        return key in self.builtin

    def create(self, ctx: ApplyContext, change) -> None:
        self.update(ctx, change)  # a built-in attribute named in the file for a new realm is there already

    def update(self, ctx: ApplyContext, change) -> None:
        after = {d.field: d.after for d in change.diffs}
        if not after:  # a built-in entry named without fields, for a new realm: nothing to write
            return

        def apply(doc: dict) -> None:
            entries = doc.setdefault(self.section, [])
            entry = next((e for e in entries if e.get("name") == change.key), None)
            if entry is None:
                entries.append(entry := {"name": change.key})
            self.write(entry, after)

        edit_profile(ctx, apply)

    def delete(self, ctx: ApplyContext, change) -> None:
        def apply(doc: dict) -> None:
            doc[self.section] = [e for e in doc.get(self.section) or [] if e.get("name") != change.key]

        edit_profile(ctx, apply)

    def export(self, key, fields, ctx) -> None:
        if ctx.base(self.name, key) is None and not ctx.everything:  # a new entry: Keycloak's implicit values go unsaid
            fields = {f: v for f, v in fields.items() if ATTRIBUTE_ABSENT.get(f, None) != v}
        entries = ctx.section("user_profile").setdefault(self.section, [])
        entries.append({"name": key, **self.to_file(fields)})
        entries.sort(key=lambda e: e["name"])

    def flat_of_spec(self, entry) -> Attrs:
        raise NotImplementedError

    def flat(self, rep: dict) -> Attrs:
        raise NotImplementedError

    def write(self, rep: dict, after: Attrs) -> None:
        raise NotImplementedError

    def to_file(self, fields: Attrs) -> dict:
        raise NotImplementedError


class UserProfileGroupKind(_Entries):
    name = "user_profile_group"
    label = "user profile group"
    stage = 1
    section = "groups"
    builtin = frozenset({BUILTIN_GROUP})

    def flat_of_spec(self, group) -> Attrs:
        return drop_none({f: getattr(group, f) for f in GROUP_FIELDS})

    def flat(self, rep: dict) -> Attrs:
        return {f: rep.get(k) for f, k in GROUP_FIELDS.items()}

    def write(self, rep: dict, after: Attrs) -> None:
        rep.update({GROUP_FIELDS[f]: v for f, v in after.items()})

    def to_file(self, fields: Attrs) -> dict:
        return dict(fields)


class UserProfileAttributeKind(_Entries):
    name = "user_profile_attribute"
    label = "user profile attribute"
    stage = 1.5  # after the groups it may name
    section = "attributes"
    builtin = BUILTIN_ATTRIBUTES

    def flat_of_spec(self, a) -> Attrs:
        attrs = drop_none({f: getattr(a, f) for f in SIMPLE})
        if a.permissions is not None:
            attrs.update(drop_none({f"permissions.{k}": sorted(v) if v is not None else None
                                    for k, v in (("view", a.permissions.view), ("edit", a.permissions.edit))}))
        if a.required is not None:
            attrs["required"] = _required(a.required)
        if a.selector is not None:
            attrs["selector.scopes"] = sorted(a.selector.scopes)
        return attrs

    def flat(self, rep: dict) -> Attrs:
        permissions = rep.get("permissions") or {}
        attrs = {f: rep.get(k) for f, k in SIMPLE.items()}
        attrs["multivalued"] = bool(rep.get("multivalued"))
        attrs.update({f"permissions.{k}": sorted(permissions.get(k) or []) for k in ("view", "edit")})
        attrs["required"] = _required(rep.get("required"))
        attrs["selector.scopes"] = sorted((rep.get("selector") or {}).get("scopes") or [])
        return attrs

    def create_defaults(self, key, attrs, desired, live) -> Attrs:
        """A new attribute is admins' only: Keycloak drops an attribute nobody may edit, even when an admin writes it."""
        return {} if key in BUILTIN_ATTRIBUTES else dict(ADMIN_ONLY)

    def write(self, rep: dict, after: Attrs) -> None:
        for field, value in after.items():
            if field in SIMPLE:
                rep[SIMPLE[field]] = value
            elif field.startswith("permissions."):
                rep.setdefault("permissions", {})[field.removeprefix("permissions.")] = value
            elif field == "required":
                rep.pop("required", None)
                if value is not False:
                    rep["required"] = value
            elif field == "selector.scopes":
                rep["selector"] = {"scopes": value}

    def to_file(self, fields: Attrs) -> dict:
        entry = {f: v for f, v in fields.items() if f in SIMPLE and v is not None}
        permissions = {f.removeprefix("permissions."): v for f, v in fields.items() if f.startswith("permissions.")}
        if permissions:
            entry["permissions"] = permissions
        if "required" in fields:
            entry["required"] = True if fields["required"] == {} else fields["required"]
        if "selector.scopes" in fields:
            entry["selector"] = {"scopes": fields["selector.scopes"]}
        return entry


def edit_profile(ctx: ApplyContext, change) -> None:
    """GET the whole profile, `change` it in place, PUT it back, one writer at a time in this apply."""
    path, what = f"{ctx.base}/users/profile", f"user profile of realm '{ctx.realm}'"
    with ctx.serialised("user_profile"):
        doc = ctx.client.get(path, what)
        change(doc)
        ctx.client.put(path, doc, what)
