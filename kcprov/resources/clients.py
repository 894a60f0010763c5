"""OIDC clients (flows, URIs, scopes, secret) and their service-account role mappings.

A client's `secret` is compared only when the file sets one, read from the
client-secret endpoint (the export masks it) and carried as a Secret so it is
never shown. A confidential client without `secret:` gets one from Keycloak.

Creating a client, kcprov writes every security-relevant field, the ones the
file leaves out included (shown in the plan as `(default)`), because Keycloak's
Admin API defaults are neither safe nor stable: an OpenID Connect client posted
without them is public with the password grant on, and a body carrying only
`optionalClientScopes` gets no default scopes at all (no `basic`: no `sub` in
tokens; no `roles`: no role claims). The values (OAuth 2.1 and Keycloak's
console as the yardstick):

- `default_scopes`/`optional_scopes`: the realm's default/optional client scope
  lists, as an import or the console would give (`realm_scope_types`), their
  OpenID Connect scopes only (Keycloak never attaches a SAML one to the client).
  Both lists go in the create body, which Keycloak then honours exactly (see
  `scopes_after_create`): a create is one request, two with a client role.
- `direct_access_grants: false`, `implicit_flow: false`: both grants are removed
  in OAuth 2.1.
- `standard_flow: true` with `pkce: S256` (OAuth 2.1 requires PKCE for the code
  flow; a redirect URI is still needed before anyone can log in).
- `confidential`: true when the file sets a `secret` or `service_account: true`
  (both need client authentication), else false (a public client holds no secret
  to leak; MCP clients are public and use PKCE). `service_account: false`.
- `device_authorization_grant: false`, `consent_required: false`,
  `front_channel_logout: false`: Keycloak's own values, written so the plan
  shows them.
- `full_scope_allowed: true`: Keycloak's default, kept because `false` silently
  drops every role claim not scope-mapped (an MCP server's `admin_role` check
  would then refuse everyone); shown, so a reviewer can ask for `false`.

Like every default, these are set once: later plans compare only what the file
writes, so a field changed by hand is left alone.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from kcprov.secret import Secret
from kcprov.resources.base import ApplyContext, Attrs, Kind, Objects, drop_none, flag, new_builtin, prefixed, text, without_ids
from kcprov.resources.flows import flow_id
from kcprov.resources.roles import ADMIN_REALM, RoleMappingsKind, builtin_client, client_uuid, live_role_refs
from kcprov.resources.scopes import NEW_REALM_TYPES, OIDC, realm_scope_types, scope_uuid

if TYPE_CHECKING:
    from kcprov.state import LiveState

TEMPLATE = "kcprov-template"  # the export baseline's bare client (kcprov.export.baseline)

# spec field -> ClientRepresentation field (booleans)
FLAGS = {
    "enabled": "enabled",
    "service_account": "serviceAccountsEnabled",
    "standard_flow": "standardFlowEnabled",
    "implicit_flow": "implicitFlowEnabled",
    "direct_access_grants": "directAccessGrantsEnabled",
    "consent_required": "consentRequired",
    "front_channel_logout": "frontchannelLogout",
    "full_scope_allowed": "fullScopeAllowed",
}
TEXTS = {"name": "name", "description": "description", "root_url": "rootUrl", "base_url": "baseUrl", "admin_url": "adminUrl"}
# spec field -> client attribute; values as the flat shape holds them
ATTRIBUTE_FIELDS = {
    "pkce": "pkce.code.challenge.method",
    "device_authorization_grant": "oauth2.device.authorization.grant.enabled",
    "post_logout_redirect_uris": "post.logout.redirect.uris",
    "jwks_url": "jwks.url",
    "jwks": "jwks.string",
    "sender_constraint": "dpop.bound.access.tokens",
}
# private_key_jwt key sources: Keycloak reads a source only when its switch is "true"; writing one turns
# the other off (checked on 26.7.3: the other's value stays behind, unused)
KEY_SOURCE_SWITCHES = {"jwks_url": "use.jwks.url", "jwks": "use.jwks.string"}
# spec `auth` -> clientAuthenticatorType
AUTHENTICATORS = {"client_secret": "client-secret", "private_key_jwt": "client-jwt"}


def canonical_jwks(jwks: dict | str) -> str:
    """A JWK Set as one canonical JSON string, so the file's and Keycloak's spellings compare equal."""
    if isinstance(jwks, str):
        try:
            jwks = json.loads(jwks)
        except ValueError:
            return jwks  # not JSON (hand-edited): shown as it is, and differs from any file value
    return json.dumps(jwks, sort_keys=True, separators=(",", ":"))


def attribute_value(field: str, value):
    """Flat value -> client attribute string."""
    if field == "post_logout_redirect_uris":
        return "##".join(value)
    if field == "sender_constraint":
        return text(value == "dpop")
    return text(value)


def attribute_field(field: str, raw: str | None):
    """Client attribute string -> flat value."""
    if field == "sender_constraint":
        return "dpop" if raw == "true" else "none"
    if raw in (None, ""):
        return [] if field == "post_logout_redirect_uris" else None
    if field == "post_logout_redirect_uris":
        return sorted(raw.split("##"))
    if field == "device_authorization_grant":
        return flag(raw)
    if field == "jwks":
        return canonical_jwks(raw)
    return raw
SETS = {"redirect_uris": "redirectUris", "web_origins": "webOrigins"}
# attributes behind spec fields, or kept by Keycloak itself: never written under `attributes:`
MANAGED_ATTRIBUTES = {*ATTRIBUTE_FIELDS.values(), *KEY_SOURCE_SWITCHES.values(), "client.secret.creation.time"}
SCOPE_SETS = {"default_scopes": "defaultClientScopes", "optional_scopes": "optionalClientScopes"}
SCOPE_ENDPOINTS = {"default_scopes": "default-client-scopes", "optional_scopes": "optional-client-scopes"}
SCOPE_TYPES = {"default_scopes": "default", "optional_scopes": "optional"}  # the realm list each one defaults to
SERVICE_ACCOUNT_SCOPE = "service_account"  # Keycloak adds it to a client with a service account
# the OpenID Connect scopes of a realm Keycloak 26 creates (its SAML ones are role_list, saml_organization, AuthnContextClassRef)
NEW_REALM_OIDC_SCOPES = {name: {"protocol": OIDC}
                         for name in (*NEW_REALM_TYPES["default"], *NEW_REALM_TYPES["optional"], SERVICE_ACCOUNT_SCOPE)}
# `authentication_flow_overrides.<key>` = flow alias ('' = none); Keycloak keeps flow ids under these keys
OVERRIDES = "authentication_flow_overrides"
OVERRIDE_KEYS = ("browser", "direct_grant")
# ClientRepresentation fields the flat shape covers (or that differ per client by nature: ids, secret)
REPRESENTED = {"id", "clientId", "protocol", "publicClient", "clientAuthenticatorType", "attributes", "protocolMappers", "secret",
               "authenticationFlowBindingOverrides",
               *FLAGS.values(), *TEXTS.values(), *SETS.values(), *SCOPE_SETS.values()}


# fields left out of the file, as a create sets them (see the module docstring)
CREATE_DEFAULTS = {
    "standard_flow": True,
    "implicit_flow": False,
    "direct_access_grants": False,
    "service_account": False,
    "device_authorization_grant": False,
    "consent_required": False,
    "front_channel_logout": False,
    "full_scope_allowed": True,
}


def sorted_or_none(values) -> list | None:
    return None if values is None else sorted(values)


class ClientKind(Kind):
    name = "client"
    label = "client"
    stage = 2
    absent_means = {"device_authorization_grant": False}  # OAuth2DeviceConfig: off unless the attribute says true

    def desired(self, spec) -> dict[str, Attrs]:
        out = {}
        for c in spec.clients:
            attrs = {f: getattr(c, f) for f in (*FLAGS, *TEXTS)}
            attrs["confidential"] = c.confidential
            attrs["secret"] = Secret(c.secret.get_secret_value()) if c.secret is not None else None
            attrs.update({f: getattr(c, f) for f in ("auth", "pkce", "device_authorization_grant", "jwks_url", "sender_constraint")})
            attrs["jwks"] = canonical_jwks(c.jwks.model_dump()) if c.jwks is not None else None
            attrs.update({f: sorted_or_none(getattr(c, f)) for f in (*SETS, *SCOPE_SETS, "post_logout_redirect_uris")})
            if c.authentication_flow_overrides is not None:
                attrs.update({f"{OVERRIDES}.{k}": getattr(c.authentication_flow_overrides, k) for k in OVERRIDE_KEYS})
            attrs = drop_none(attrs)
            attrs.update(prefixed("attributes", c.attributes))
            out[c.client_id] = attrs
        return out

    def read(self, client, raw, desired, owned) -> None:
        """The secrets the file sets, to compare them (the export masks them): one request a client."""
        by_client_id = {c["clientId"]: c for c in raw.export.get("clients", [])}
        for client_id, attrs in desired.get(self.name, {}).items():
            if "secret" in attrs and client_id in by_client_id:
                secret = client.client_secret(raw.name, by_client_id[client_id]["id"], client_id)
                if secret:
                    raw.secrets[client_id] = secret

    def live(self, raw) -> dict[str, Attrs]:
        out = {}
        flows = {f["id"]: f["alias"] for f in raw.export.get("authenticationFlows") or []}
        for c in raw.export.get("clients", []):
            attributes = c.get("attributes") or {}
            attrs: Attrs = {f: c.get(rep) for f, rep in {**FLAGS, **TEXTS}.items()}
            attrs["confidential"] = not c.get("publicClient", False)
            authenticator = c.get("clientAuthenticatorType") or "client-secret"
            attrs["auth"] = next((a for a, kc in AUTHENTICATORS.items() if kc == authenticator), authenticator)
            secret = raw.secrets.get(c["clientId"])
            attrs["secret"] = Secret(secret) if secret is not None else None
            attrs.update({f: attribute_field(f, attributes.get(a)) for f, a in ATTRIBUTE_FIELDS.items()})
            attrs.update({f: None for f, switch in KEY_SOURCE_SWITCHES.items() if attributes.get(switch) != "true"})
            attrs.update({f: sorted(c.get(rep) or []) for f, rep in {**SETS, **SCOPE_SETS}.items()})
            attrs.update(prefixed("attributes", attributes))
            overrides = c.get("authenticationFlowBindingOverrides") or {}
            attrs.update({f"{OVERRIDES}.{k}": flows.get(overrides[k], overrides[k]) if overrides.get(k) else ""
                          for k in OVERRIDE_KEYS})
            out[c["clientId"]] = attrs
        return out

    def is_builtin(self, key: str, realm: str) -> bool:
        return builtin_client(key, realm)

    def refuses_changes(self, key: str, realm: str) -> bool:
        # the realm's admin client (and master's per-realm admin clients): Keycloak answers 403 to updates
        return key == "realm-management" or (realm == ADMIN_REALM and key.endswith("-realm"))

    def create_defaults(self, key, attrs, desired, live) -> Attrs:
        if new_builtin(self, key, live):
            return {}  # a built-in client keeps what Keycloak gave it; only the file's fields change
        defaults: Attrs = {**CREATE_DEFAULTS,
                           "confidential": "secret" in attrs or attrs.get("service_account") is True
                           or attrs.get("auth") == "private_key_jwt"}
        if attrs.get("standard_flow", CREATE_DEFAULTS["standard_flow"]):
            defaults["pkce"] = "S256"
        scope_types = realm_scope_types(desired, live)
        oidc = oidc_scopes(desired, live)  # a realm's lists hold its SAML scopes too: an OpenID Connect client gets none
        defaults.update({field: [n for n in scope_types[t] if n in oidc] for field, t in SCOPE_TYPES.items()})
        return defaults

    def create(self, ctx: ApplyContext, change) -> None:
        after = {d.field: d.after for d in change.diffs}
        if new_builtin(self, change.key, ctx.live):  # a realm created in this apply has it already
            uuid = client_uuid(ctx, change.key)
            current = ctx.client.get(f"{ctx.base}/clients/{uuid}", f"client '{change.key}'")
            return self._change(ctx, change.key, uuid, after, {f: current.get(r) or [] for f, r in SCOPE_SETS.items()})
        body = {"clientId": change.key, "protocol": "openid-connect", **representation(after), **flow_overrides(ctx, after)}
        uuid = ctx.client.post(f"{ctx.base}/clients", body, f"client '{change.key}'")
        ctx.remember(self.name, change.key, uuid)
        # Keycloak keeps what it likes of the scope lists in a create body; converge to the plan's
        # (no request when it keeps exactly those, the usual case).
        created = scopes_after_create(ctx, after)
        for field in SCOPE_SETS:
            set_scopes(ctx, change.key, uuid, field, created[field], after[field])

    def update(self, ctx: ApplyContext, change) -> None:
        self._change(ctx, change.key, client_uuid(ctx, change.key), {d.field: d.after for d in change.diffs},
                     {d.field: d.before or [] for d in change.diffs if d.field in SCOPE_SETS})

    def _change(self, ctx: ApplyContext, client_id: str, uuid: str, after: Attrs, scopes_before: dict) -> None:
        fields = {f: v for f, v in after.items() if f not in SCOPE_SETS}
        if fields:
            ctx.client.put(f"{ctx.base}/clients/{uuid}",
                           {"clientId": client_id, **representation(fields), **flow_overrides(ctx, fields)},
                           f"client '{client_id}'")
        for field in SCOPE_SETS:
            if field in after:
                set_scopes(ctx, client_id, uuid, field, scopes_before.get(field, []), after[field])

    def delete(self, ctx: ApplyContext, change) -> None:
        ctx.client.delete(f"{ctx.base}/clients/{client_uuid(ctx, change.key)}", f"client '{change.key}'")

    def export(self, key, fields, ctx) -> None:
        """OpenID Connect clients only. Default/optional scopes are written when they are not the
        realm's lists (their OpenID Connect scopes: what a create gives). A confidential client's
        secret is an env reference (never a built-in's: Keycloak generates theirs). Representation
        fields no spec field covers are listed when they differ from the baseline."""
        rep = ctx.raw("clients", "clientId", key)
        protocol = rep.get("protocol") or "openid-connect"
        if protocol != "openid-connect":
            return ctx.exclude(self.name, key, f"{protocol} client", "kcprov manages OpenID Connect clients only")
        attrs = ctx.live.objects[self.name][key]
        known = ctx.base(self.name, key)
        builtin = known is not None or self.is_builtin(key, ctx.realm)
        entry = ctx.entry(ctx.doc, "clients", "client_id", key)
        entry.update({f: fields[f] for f in (*TEXTS, "confidential", *FLAGS, *ATTRIBUTE_FIELDS, *SETS) if f in fields})
        if fields.get("auth") in AUTHENTICATORS:
            entry["auth"] = fields["auth"]
        elif "auth" in fields:
            ctx.not_exported(self.label, key, f"clientAuthenticatorType {fields['auth']}")
        if "jwks" in fields:
            try:
                entry["jwks"] = json.loads(fields["jwks"])
            except ValueError:
                del entry["jwks"]
                ctx.not_exported(self.label, key, "jwks.string (not JSON)")
        if attrs["confidential"] and not builtin and attrs["auth"] != "private_key_jwt":  # bearer-only ones hold one too
            entry["secret"] = ctx.secret_ref("client", key)
        oidc = {n for n, a in ctx.live.objects["client_scope"].items() if a.get("protocol") in (None, "openid-connect")}
        realm_lists = {t: [n for n in names if n in oidc] for t, names in realm_scope_types({}, ctx.live).items()}
        left_out = {k for kind, k in ctx.excluded if kind == "client_scope"}  # scopes the file cannot hold
        for field, scope_type in SCOPE_TYPES.items():
            kept = [n for n in attrs[field] if n not in left_out]
            differs = field in fields if builtin else kept != realm_lists[scope_type]
            if differs or ctx.everything:
                entry[field] = kept
                for name in sorted(set(attrs[field]) & left_out):
                    ctx.not_exported(self.label, key, f"{field} '{name}' (a client scope not exported)")
        attributes = {f.removeprefix("attributes."): v for f, v in fields.items() if f.startswith("attributes.")}
        attributes = {k: v for k, v in attributes.items() if k not in MANAGED_ATTRIBUTES}
        if attributes:
            entry["attributes"] = attributes
        overrides = {k: fields[f"{OVERRIDES}.{k}"] for k in OVERRIDE_KEYS if f"{OVERRIDES}.{k}" in fields}
        if overrides:
            entry[OVERRIDES] = overrides
        reference = ctx.base_raw("clients", "clientId", key if builtin else TEMPLATE)
        for field in sorted(set(rep) - REPRESENTED):
            if without_ids(rep[field]) != without_ids(reference.get(field)):
                ctx.not_exported(self.label, key, field)


def representation(after: Attrs) -> dict:
    """ClientRepresentation fragment for the given flat fields (Keycloak merges it)."""
    body: dict = {}
    attributes: dict = {}
    for field, value in after.items():
        if field in FLAGS:
            body[FLAGS[field]] = value
        elif field in TEXTS:
            body[TEXTS[field]] = value
        elif field in SETS:
            body[SETS[field]] = value
        elif field in SCOPE_SETS:
            body[SCOPE_SETS[field]] = value
        elif field == "confidential":
            body["publicClient"] = not value
            body.setdefault("clientAuthenticatorType", AUTHENTICATORS["client_secret"])  # `auth` wins
        elif field == "auth":
            body["clientAuthenticatorType"] = AUTHENTICATORS.get(value, value)
        elif field == "secret":
            body["secret"] = value.reveal()
        elif field in ATTRIBUTE_FIELDS:
            attributes[ATTRIBUTE_FIELDS[field]] = attribute_value(field, value)
            if field in KEY_SOURCE_SWITCHES:
                attributes.update({switch: text(f == field) for f, switch in KEY_SOURCE_SWITCHES.items()})
        elif field.startswith("attributes."):
            attributes[field.removeprefix("attributes.")] = text(value)
    if attributes:
        body["attributes"] = attributes
    return body


def flow_overrides(ctx: ApplyContext, after: Attrs) -> dict:
    """authenticationFlowBindingOverrides for the override fields of `after`, aliases as flow ids
    (the flow may be made earlier in the same apply). Keycloak merges this map: a key left out keeps
    its flow, and '' removes one."""
    aliases = {f.removeprefix(f"{OVERRIDES}."): v for f, v in after.items() if f.startswith(f"{OVERRIDES}.")}
    if not aliases:
        return {}
    return {"authenticationFlowBindingOverrides": {k: flow_id(ctx, a) if a else "" for k, a in aliases.items()}}


def scopes_after_create(ctx: ApplyContext, after: Attrs) -> dict[str, list[str]]:
    """The default/optional scopes Keycloak gives a client created with `after`'s lists in its body.

    Known without asking (checked on Keycloak 26.7.3): when the body carries both lists,
    Keycloak attaches exactly the listed scopes that exist with the client's protocol
    (OpenID Connect) and adds none of the realm's; it drops, without an error, a scope
    of another protocol or one that does not exist; and it adds `service_account` to the
    defaults of a client with a service account. A scope whose protocol is not known here
    counts as dropped: `set_scopes` then attaches it (or fails naming it), as it would
    after reading the client back.
    """
    oidc = oidc_scopes(ctx.desired, ctx.live)
    created = {field: [name for name in after[field] if name in oidc] for field in SCOPE_SETS}
    if after.get("service_account") and SERVICE_ACCOUNT_SCOPE in oidc:
        created["default_scopes"].append(SERVICE_ACCOUNT_SCOPE)
    return created


def oidc_scopes(desired: Objects, live: LiveState) -> set[str]:
    """The OpenID Connect client scopes the realm holds once the file's scopes are applied
    (scopes come before clients): the live ones, a new realm's built-ins, the file's."""
    held = live.objects.get("client_scope", {}) if live.exists else NEW_REALM_OIDC_SCOPES
    protocols = {name: attrs.get("protocol") for name, attrs in held.items()}
    for name, attrs in desired.get("client_scope", {}).items():
        protocols[name] = attrs.get("protocol", protocols.get(name, OIDC))  # a new scope is OpenID Connect
    return {name for name, protocol in protocols.items() if protocol == OIDC}


def set_scopes(ctx: ApplyContext, client_id: str, uuid: str, field: str, before, after) -> None:
    """Attach and detach default/optional client scopes one by one (the only API Keycloak has)."""
    endpoint = f"{ctx.base}/clients/{uuid}/{SCOPE_ENDPOINTS[field]}"
    what = f"{field.replace('_', ' ')} of client '{client_id}'"
    for name in sorted(set(before) - set(after)):
        ctx.client.delete(f"{endpoint}/{scope_uuid(ctx, name)}", what)
    for name in sorted(set(after) - set(before)):
        ctx.client.put(f"{endpoint}/{scope_uuid(ctx, name)}", {}, what)


class ServiceAccountRolesKind(RoleMappingsKind):
    """Role mappings of a client's service account user; the flat field is `roles`."""

    name = "service_account_roles"
    label = "service account roles"
    owner_label = "client"
    owner_section = ("clients", "client_id")
    file_key = "service_account_roles"

    def owners(self, spec):
        return [(c.client_id, c.service_account_roles) for c in spec.clients]

    def parent(self, key: str) -> tuple[str, str]:
        return ("client", key)

    def live(self, raw) -> dict[str, Attrs]:
        return {
            u["serviceAccountClientId"]: {"roles": live_role_refs(raw.name, u.get("realmRoles"), u.get("clientRoles"))}
            for u in raw.export.get("users") or []
            if u.get("serviceAccountClientId")
        }

    def mappings_path(self, ctx: ApplyContext, client_id: str) -> str:
        for u in (ctx.live.raw.export or {}).get("users") or []:
            if u.get("serviceAccountClientId") == client_id:
                return f"{ctx.base}/users/{u['id']}/role-mappings"
        user = ctx.client.get(f"{ctx.base}/clients/{client_uuid(ctx, client_id)}/service-account-user",
                              f"service account of client '{client_id}'")
        return f"{ctx.base}/users/{user['id']}/role-mappings"
