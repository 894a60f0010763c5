"""Client scopes (with their realm default/optional type) and protocol mappers.

Mappers live on client scopes and on clients; one MapperKind serves both,
parametrised by its owner. The audience shortcuts expand here to Keycloak's
`oidc-audience-mapper`, `group_membership` to its `oidc-group-membership-mapper`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kcprov.resources.base import ApplyContext, Attrs, Kind, Objects, drop_none, flag, new_builtin, prefixed, text
from kcprov.resources.roles import RoleMappingsKind, builtin_client, client_uuid, live_role_refs

if TYPE_CHECKING:
    from kcprov.state import LiveState

OIDC = "openid-connect"
AUDIENCE_MAPPER = "oidc-audience-mapper"
GROUP_MEMBERSHIP_MAPPER = "oidc-group-membership-mapper"
BUILTIN_SCOPES = {
    "role_list", "saml_organization", "AuthnContextClassRef", "profile", "email", "roles", "web-origins",
    "acr", "basic", "offline_access", "address", "phone", "microprofile-jwt", "organization", "service_account",
}
SCOPE_ATTRIBUTES = {
    "include_in_token_scope": "include.in.token.scope",
    "display_on_consent_screen": "display.on.consent.screen",
    "consent_screen_text": "consent.screen.text",
    "gui_order": "gui.order",
}
TYPE_LISTS = {"default": "default-default-client-scopes", "optional": "default-optional-client-scopes"}
# partial-export field of each realm list
TYPE_EXPORT = {"default": "defaultDefaultClientScopes", "optional": "defaultOptionalClientScopes"}
# what Keycloak 26 puts in the lists of a realm it creates (checked on 26.7.3)
NEW_REALM_TYPES = {
    "default": ("acr", "basic", "email", "profile", "roles", "web-origins"),
    "optional": ("address", "microprofile-jwt", "offline_access", "organization", "phone"),
}
# a new scope is in neither realm list and listed in the token's `scope` and on the consent screen
CREATE_DEFAULTS = {"protocol": OIDC, "type": "none", "include_in_token_scope": True, "display_on_consent_screen": True}


def realm_scope_types(desired: Objects, live: LiveState) -> dict[str, list[str]]:
    """The realm's default and optional client scope lists as they will be once the scopes are applied.

    Scopes are applied before clients (stage order), so a client created in the same apply
    gets these: the live lists (from the partial export; Keycloak's new-realm lists when the
    realm is created too), with the file's `type:` moves applied.
    """
    export = live.raw.export
    lists = {t: set(export.get(f) or []) if export is not None else set(NEW_REALM_TYPES[t])
             for t, f in TYPE_EXPORT.items()}
    for name, attrs in desired.get("client_scope", {}).items():
        if "type" in attrs:  # a new scope without one is in neither list (CREATE_DEFAULTS)
            for t, names in lists.items():
                names.discard(name)
                if t == attrs["type"]:
                    names.add(name)
    return {t: sorted(names) for t, names in lists.items()}


class ClientScopeKind(Kind):
    name = "client_scope"
    label = "client scope"
    stage = 1
    # ClientScopeModel: a scope without the attributes is listed in the token's scope and on the consent screen
    absent_means = {"include_in_token_scope": True, "display_on_consent_screen": True}

    def desired(self, spec) -> dict[str, Attrs]:
        out = {}
        for s in spec.client_scopes:
            attrs = drop_none({"description": s.description, "protocol": s.protocol, "type": s.type,
                               **{f: getattr(s, f) for f in SCOPE_ATTRIBUTES}})
            attrs.update(prefixed("attributes", s.attributes))
            out[s.name] = attrs
        return out

    def live(self, raw) -> dict[str, Attrs]:
        export = raw.export
        defaults = set(export.get(TYPE_EXPORT["default"]) or [])
        optionals = set(export.get(TYPE_EXPORT["optional"]) or [])
        out = {}
        for s in export.get("clientScopes", []):
            attributes = s.get("attributes") or {}
            kind = "default" if s["name"] in defaults else "optional" if s["name"] in optionals else "none"
            attrs = {"description": s.get("description"), "protocol": s.get("protocol"), "type": kind}
            for f, attr in SCOPE_ATTRIBUTES.items():
                value = attributes.get(attr)
                attrs[f] = live_scope_attribute(f, value)
            attrs.update(prefixed("attributes", attributes))
            out[s["name"]] = attrs
        return out

    def is_builtin(self, key: str, realm: str) -> bool:
        return key in BUILTIN_SCOPES

    def create_defaults(self, key, attrs, desired, live) -> Attrs:
        return {} if new_builtin(self, key, live) else dict(CREATE_DEFAULTS)

    def create(self, ctx: ApplyContext, change) -> None:
        if new_builtin(self, change.key, ctx.live):  # a realm created in this apply has it already
            scope_id = scope_uuid(ctx, change.key)
            return self._change(ctx, change, scope_id, realm_type(ctx, scope_id))
        body = {"name": change.key, "protocol": OIDC, **representation(change)}
        scope_id = ctx.client.post(f"{ctx.base}/client-scopes", body, f"client scope '{change.key}'")
        ctx.remember(self.name, change.key, scope_id)
        new_type = next((d.after for d in change.diffs if d.field == "type"), None)
        set_type(ctx, change.key, scope_id, None, new_type)

    def update(self, ctx: ApplyContext, change) -> None:
        scope_id = scope_uuid(ctx, change.key)
        before = next((d.before for d in change.diffs if d.field == "type"), None)
        self._change(ctx, change, scope_id, before)

    def _change(self, ctx: ApplyContext, change, scope_id: str, type_before: str | None) -> None:
        body = representation(change)
        if body:
            ctx.client.put(f"{ctx.base}/client-scopes/{scope_id}", {"name": change.key, **body},
                           f"client scope '{change.key}'")
        for d in change.diffs:
            if d.field == "type":
                set_type(ctx, change.key, scope_id, type_before, d.after)

    def delete(self, ctx: ApplyContext, change) -> None:
        scope_id = scope_uuid(ctx, change.key)
        before = next((d.before for d in change.diffs if d.field == "type"), None)
        set_type(ctx, change.key, scope_id, before, None)  # Keycloak refuses to delete a realm default scope
        ctx.client.delete(f"{ctx.base}/client-scopes/{scope_id}", f"client scope '{change.key}'")

    def export(self, key, fields, ctx) -> None:
        """A built-in scope moved between the realm's lists is an entry with only its `type`."""
        protocol = ctx.live.objects[self.name][key].get("protocol")
        if protocol not in (None, OIDC, "saml"):
            return ctx.exclude(self.name, key, f"{protocol} client scope", "the file format takes openid-connect and saml")
        entry = ctx.entry(ctx.doc, "client_scopes", "name", key)
        entry.update({f: fields[f] for f in ("description", "type", "protocol", *SCOPE_ATTRIBUTES) if f in fields})
        attributes = {f.removeprefix("attributes."): v for f, v in fields.items() if f.startswith("attributes.")}
        attributes = {k: v for k, v in attributes.items() if k not in SCOPE_ATTRIBUTES.values()}
        if attributes:
            entry["attributes"] = attributes


def live_scope_attribute(field: str, value: str | None):
    if value is None or field == "consent_screen_text":
        return value
    if field == "gui_order":
        return int(value) if value.strip() else None
    return flag(value)


def representation(change) -> dict:
    """ClientScopeRepresentation fragment for the changed fields (Keycloak merges attributes)."""
    body: dict = {}
    attributes: dict = {}
    for d in change.diffs:
        if d.field in ("description", "protocol"):
            body[d.field] = d.after
        elif d.field in SCOPE_ATTRIBUTES:
            attributes[SCOPE_ATTRIBUTES[d.field]] = text(d.after)
        elif d.field.startswith("attributes."):
            attributes[d.field.removeprefix("attributes.")] = text(d.after)
    if attributes:
        body["attributes"] = attributes
    return body


def set_type(ctx: ApplyContext, name: str, scope_id: str, before: str | None, after: str | None) -> None:
    """Move a scope between the realm's default and optional lists."""
    what = f"realm {after or before} client scopes ('{name}')"
    if before in TYPE_LISTS and before != after:
        ctx.client.delete(f"{ctx.base}/{TYPE_LISTS[before]}/{scope_id}", what)
    if after in TYPE_LISTS and before != after:
        ctx.client.put(f"{ctx.base}/{TYPE_LISTS[after]}/{scope_id}", {}, what)


def realm_type(ctx: ApplyContext, scope_id: str) -> str:
    """Which realm list holds the scope now, asked of Keycloak (for a built-in scope of a realm made in this apply)."""
    for scope_type, path in TYPE_LISTS.items():
        if any(s.get("id") == scope_id for s in ctx.client.get(f"{ctx.base}/{path}", f"realm {scope_type} client scopes")):
            return scope_type
    return "none"


def scope_uuid(ctx: ApplyContext, name: str) -> str:
    """The server id of a client scope (all scopes are listed only when neither this apply nor the export knows it)."""
    return ctx.server_id(
        "client_scope", name, "clientScopes", "name",
        lambda: ctx.client.get(f"{ctx.base}/client-scopes", f"client scope '{name}'"),
        "add it under client_scopes: or use a built-in scope name",
    )


class ScopeRolesKind(RoleMappingsKind):
    """Role scope mappings of a client scope ("Scope" tab): the roles its tokens may carry.

    The export lists them from the role side: realm roles in `scopeMappings`, client roles
    per client in `clientScopeMappings`; entries naming a `client` (not a `clientScope`)
    are the scope mappings of clients, not ours.
    """

    name = "scope_roles"
    label = "scope roles"
    owner_label = "client scope"
    owner_section = ("client_scopes", "name")
    file_key = "scope_roles"

    def owners(self, spec):
        return [(s.name, s.scope_roles) for s in spec.client_scopes]

    def parent(self, key: str) -> tuple[str, str]:
        return ("client_scope", key)

    def live(self, raw) -> dict[str, Attrs]:
        export = raw.export
        realm_roles: dict[str, list[str]] = {s["name"]: [] for s in export.get("clientScopes", [])}
        client_roles: dict[str, dict[str, list[str]]] = {}
        for m in export.get("scopeMappings") or []:
            if m.get("clientScope") in realm_roles:
                realm_roles[m["clientScope"]] += m.get("roles") or []
        for client_id, mappings in (export.get("clientScopeMappings") or {}).items():
            for m in mappings:
                if m.get("clientScope") in realm_roles:
                    client_roles.setdefault(m["clientScope"], {}).setdefault(client_id, []).extend(m.get("roles") or [])
        return {name: {"roles": live_role_refs(None, roles, client_roles.get(name))} for name, roles in realm_roles.items()}

    def mappings_path(self, ctx: ApplyContext, name: str) -> str:
        return f"{ctx.base}/client-scopes/{scope_uuid(ctx, name)}/scope-mappings"


# shortcut flag -> mapper config key
FLAG_KEYS = {"access_token": "access.token.claim", "id_token": "id.token.claim",
             "introspection": "introspection.token.claim", "userinfo": "userinfo.token.claim", "full_path": "full.path"}
# mapper type a shortcut expands to -> (the shortcut's key, the config key it fills)
SHORTCUT_KEYS = {AUDIENCE_MAPPER: ("audience", "included.custom.audience"),
                 GROUP_MEMBERSHIP_MAPPER: ("group_membership", "claim.name")}
# mapper type -> the flags its shortcut writes, with the value it writes when the file leaves one out
# (Keycloak's defaults for the mapper type, in its server info on 26.7.3)
SHORTCUT_FLAGS = {
    AUDIENCE_MAPPER: {"access_token": True, "id_token": False, "introspection": True},
    GROUP_MEMBERSHIP_MAPPER: {"full_path": True, "access_token": True, "id_token": True, "introspection": True,
                              "userinfo": True},
}


def mapper_shortcut(name: str, attrs: Attrs) -> dict | None:
    """The shortcut form (`audience:`, `group_membership:`) of a live mapper, if that form gives exactly
    its fields (else None); flags at the value the shortcut implies are left out."""
    from kcprov.spec.models import ProtocolMapper

    mapper = attrs.get("protocol_mapper")
    if mapper not in SHORTCUT_KEYS:
        return None
    key, config_key = SHORTCUT_KEYS[mapper]
    value = attrs.get(f"config.{config_key}")
    if not value:
        return None
    short: dict = {key: value}
    for flag_field, default in SHORTCUT_FLAGS[mapper].items():
        written = attrs.get(f"config.{FLAG_KEYS[flag_field]}")
        if written in ("true", "false") and (written == "true") != default:
            short[flag_field] = written == "true"
    return short if mapper_attrs(ProtocolMapper(name=name, **short)) == attrs else None


def mapper_attrs(m) -> Attrs:
    """The flat shape of one mapper from the spec, shortcuts expanded."""
    if m.protocol_mapper:
        return {"protocol_mapper": m.protocol_mapper, **prefixed("config", m.config)}
    if m.group_membership:
        mapper, config = GROUP_MEMBERSHIP_MAPPER, {"claim.name": m.group_membership}
    else:
        mapper = AUDIENCE_MAPPER
        config = {"included.custom.audience": m.audience} if m.audience else {"included.client.audience": m.client_audience}
    for flag_field, default in SHORTCUT_FLAGS[mapper].items():
        value = getattr(m, flag_field)
        config[FLAG_KEYS[flag_field]] = text(default if value is None else value)
    return {"protocol_mapper": mapper, **prefixed("config", config)}


class MapperKind(Kind):
    """Protocol mappers of client scopes (owner "client_scope") or clients (owner "client")."""

    def __init__(self, owner: str):
        self.owner = owner
        self.name = f"{'scope' if owner == 'client_scope' else 'client'}_mapper"
        self.label = f"{'client scope' if owner == 'client_scope' else 'client'} mapper"
        self.stage = 2 if owner == "client_scope" else 3

    def _owners_spec(self, spec):
        if self.owner == "client_scope":
            return [(s.name, s.mappers) for s in spec.client_scopes]
        return [(c.client_id, c.mappers) for c in spec.clients]

    def desired(self, spec) -> dict[str, Attrs]:
        return {f"{owner}/{m.name}": mapper_attrs(m) for owner, mappers in self._owners_spec(spec) for m in mappers or []}

    def live(self, raw) -> dict[str, Attrs]:
        field, name = ("clientScopes", "name") if self.owner == "client_scope" else ("clients", "clientId")
        out = {}
        for owner in raw.export.get(field, []):
            for m in owner.get("protocolMappers") or []:
                out[f"{owner[name]}/{m['name']}"] = {"protocol_mapper": m.get("protocolMapper"),
                                                     **prefixed("config", m.get("config"))}
        return out

    def parent(self, key: str) -> tuple[str, str]:
        return (self.owner, key.split("/", 1)[0])

    def _base(self, ctx: ApplyContext, owner: str) -> str:
        if self.owner == "client_scope":
            return f"{ctx.base}/client-scopes/{scope_uuid(ctx, owner)}/protocol-mappers/models"
        return f"{ctx.base}/clients/{client_uuid(ctx, owner)}/protocol-mappers/models"

    def _live_rep(self, ctx: ApplyContext, owner: str, mapper: str) -> dict:
        field, name = ("clientScopes", "name") if self.owner == "client_scope" else ("clients", "clientId")
        for o in ctx.live.raw.export.get(field, []):
            if o[name] == owner:
                for m in o.get("protocolMappers") or []:
                    if m["name"] == mapper:
                        return m
        raise KeyError(mapper)

    def create(self, ctx: ApplyContext, change) -> None:
        owner, mapper = change.key.split("/", 1)
        builtin_owner = owner in BUILTIN_SCOPES if self.owner == "client_scope" else builtin_client(owner, ctx.realm)
        if not ctx.live.exists and builtin_owner:  # the realm is made in this apply: a built-in owner has its mappers
            found = next((m for m in ctx.client.get(self._base(ctx, owner), f"mappers of '{owner}'")
                          if m.get("name") == mapper), None)
            if found is not None:
                return self._put(ctx, change, owner, found)
        after = {d.field: d.after for d in change.diffs}
        body = {"name": mapper, "protocol": OIDC, "protocolMapper": after["protocol_mapper"],
                "config": {f.removeprefix("config."): v for f, v in after.items() if f.startswith("config.")}}
        ctx.client.post(self._base(ctx, owner), body, f"mapper '{change.key}'")

    def update(self, ctx: ApplyContext, change) -> None:
        owner, mapper = change.key.split("/", 1)
        self._put(ctx, change, owner, self._live_rep(ctx, owner, mapper))

    def _put(self, ctx: ApplyContext, change, owner: str, live_rep: dict) -> None:
        rep = dict(live_rep)
        config = dict(rep.get("config") or {})
        for d in change.diffs:
            if d.field == "protocol_mapper":
                rep["protocolMapper"] = d.after
            elif d.field.startswith("config."):
                config[d.field.removeprefix("config.")] = d.after
        rep["config"] = config
        ctx.client.put(f"{self._base(ctx, owner)}/{rep['id']}", rep, f"mapper '{change.key}'")

    def delete(self, ctx: ApplyContext, change) -> None:
        owner, mapper = change.key.split("/", 1)
        rep = self._live_rep(ctx, owner, mapper)
        ctx.client.delete(f"{self._base(ctx, owner)}/{rep['id']}", f"mapper '{change.key}'")

    def export(self, key, fields, ctx) -> None:
        """A custom-audience or group-membership mapper as its shortcut when that gives exactly its config;
        else the generic form. A built-in mapper (of a built-in scope) with only its changed config keys."""
        owner, name = key.split("/", 1)
        section, id_field = ("client_scopes", "name") if self.owner == "client_scope" else ("clients", "client_id")
        entry = ctx.entry(ctx.entry(ctx.doc, section, id_field, owner), "mappers", "name", name)
        attrs = ctx.live.objects[self.name][key]
        shortcut = mapper_shortcut(name, attrs) if ctx.base(self.name, key) is None else None
        if shortcut:
            entry.update(shortcut)
            return
        entry["protocol_mapper"] = attrs["protocol_mapper"]
        config = {f.removeprefix("config."): v for f, v in fields.items() if f.startswith("config.")}
        if config:
            entry["config"] = config
