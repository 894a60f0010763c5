"""Identity providers and their mappers, read from the partial export (no request of their own).

An identity provider's flat fields are its top-level representation fields, its
`client_secret`, and one `config.<key>` per Keycloak config key (the file's
friendly keys expand to those in `kcprov.spec.identity_providers`), so only the
keys the file gives are compared.

The client secret, verified on Keycloak 26.7.3: the Admin API and the export
never return it (`clientSecret` reads `**********`); a PUT sending `**********`
keeps the stored secret, a PUT whose config lacks the key drops it. So updates
send the live config back with the mask in it, and kcprov cannot compare the
secret itself. Instead, whenever it writes a secret it also writes a salted
scrypt fingerprint of it (config `kcprov.secretFingerprint`); a plan compares the
file's secret with that fingerprint, without any request. The secret is
therefore written on create, and again whenever the file's differs from the one
kcprov last wrote (a rotation); a secret set by hand in the console is not seen.
A provider with a secret but no fingerprint (made by hand, then adopted or
exported) cannot be compared: its secret counts as the file's, so the plan of
an export is empty, and the first update kcprov makes to it for any other
reason writes the file's secret with a fingerprint, from when on a rotation shows.

Keycloak ignores a changed providerId in an update (answers 204, keeps the old
one), so a changed `provider_id` is refused at apply, not silently lost.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os

from pydantic import ValidationError

from kcprov.errors import KeycloakApiError
from kcprov.keycloak import seg
from kcprov.resources.base import ApplyContext, Attrs, Kind, drop_none, flag, prefixed
from kcprov.secret import Secret
from kcprov.spec.identity_providers import (
    NAME_ID_FORMATS, OIDC_KEYS, OIDC_PROVIDERS, SAML, SAML_KEYS, SECRET_KEY, SYNC_MODE, IdentityProviderMapper,
    idp_config, mapper_config,
)

FINGERPRINT = "kcprov.secretFingerprint"
# spec field -> IdentityProviderRepresentation field
FIELDS = {
    "display_name": "displayName",
    "enabled": "enabled",
    "trust_email": "trustEmail",
    "store_token": "storeToken",
    "link_only": "linkOnly",
    "hide_on_login": "hideOnLogin",
    "first_broker_login_flow": "firstBrokerLoginFlowAlias",
    "post_broker_login_flow": "postBrokerLoginFlowAlias",
}
BOOLEANS = ("enabled", "trust_email", "store_token", "link_only", "hide_on_login")  # left out of JSON when false
# what Keycloak reads for a config key it does not hold (IdentityProviderModel, OIDCIdentityProviderConfig)
ABSENT_CONFIG = {SYNC_MODE: "LEGACY"}
ABSENT_OIDC_CONFIG = {"pkceEnabled": "false", "validateSignature": "false", "useJwksUrl": "false"}
# representation fields the flat shape covers, that Keycloak keeps by itself, or the organization kind writes
REPRESENTED = {"alias", "internalId", "providerId", "config", "types", "organizationId", *FIELDS.values()}
# a new provider is enabled and does not trust the provider's email; its mappers apply at first login only
CREATE_DEFAULTS = {"enabled": True, "trust_email": False, f"config.{SYNC_MODE}": "IMPORT"}
# friendly keys of `oidc:`/`saml:` that are booleans ("true"/"false" in the config)
FLAG_SETTINGS = {"validate_signature", "use_jwks_url", "backchannel_logout", "disable_userinfo", "want_assertions_signed",
                 "want_assertions_encrypted", "want_authn_requests_signed", "post_binding_response",
                 "post_binding_authn_request", "post_binding_logout"}
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def fingerprint(secret: str, salt: bytes | None = None) -> str:
    """`scrypt:<salt>:<digest>` of a secret (base64): what kcprov keeps to recognise the secret it wrote."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(secret.encode(), salt=salt, **SCRYPT)
    return f"scrypt:{base64.b64encode(salt).decode()}:{base64.b64encode(digest).decode()}"


def fingerprint_matches(secret: str, stored: str) -> bool:
    try:
        method, salt, _ = stored.split(":")
        return method == "scrypt" and hmac.compare_digest(fingerprint(secret, base64.b64decode(salt)), stored)
    except ValueError:  # not one kcprov wrote
        return False


def _providers(export: dict | None) -> list[dict]:
    return (export or {}).get("identityProviders") or []


def _provider_rep(ctx: ApplyContext, alias: str) -> dict:
    return next(p for p in _providers(ctx.live.raw.export) if p["alias"] == alias)


def _path(ctx: ApplyContext, alias: str) -> str:
    return f"{ctx.base}/identity-provider/instances/{seg(alias)}"


class IdentityProviderKind(Kind):
    name = "identity_provider"
    label = "identity provider"
    stage = 2
    reads = frozenset({"identityProviders"})

    def desired(self, spec) -> dict[str, Attrs]:
        out = {}
        for p in spec.identity_providers:
            attrs = drop_none({"provider_id": p.provider_id, **{f: getattr(p, f) for f in FIELDS}})
            secret = p.oidc.client_secret if p.oidc is not None else None
            if secret is not None:
                attrs["client_secret"] = Secret(secret.get_secret_value())
            attrs.update(prefixed("config", idp_config(p)))
            out[p.alias] = attrs
        return out

    def read(self, client, raw, desired, owned) -> None:
        """No request: the file's secrets that match the fingerprint kcprov stored with the secret it wrote, or
        that nothing can be compared with (a stored secret without a fingerprint)."""
        matched = {}
        for rep in _providers(raw.export):
            wanted = desired.get(self.name, {}).get(rep["alias"], {}).get("client_secret")
            config = rep.get("config") or {}
            if wanted is None or SECRET_KEY not in config:
                continue
            if FINGERPRINT not in config or fingerprint_matches(wanted.reveal(), config[FINGERPRINT]):
                matched[rep["alias"]] = wanted
        raw.extra[self.name] = matched

    def live(self, raw) -> dict[str, Attrs]:
        matched = raw.extra.get(self.name, {})
        out = {}
        for rep in _providers(raw.export):
            config = dict(rep.get("config") or {})
            secret = config.pop(SECRET_KEY, None)
            config.pop(FINGERPRINT, None)
            absent = {**ABSENT_CONFIG, **(ABSENT_OIDC_CONFIG if rep.get("providerId") in OIDC_PROVIDERS else {})}
            attrs: Attrs = {"provider_id": rep.get("providerId")}
            attrs.update({f: rep.get(r, False) if f in BOOLEANS else rep.get(r) for f, r in FIELDS.items()})
            attrs["client_secret"] = matched.get(rep["alias"], Secret(secret)) if secret is not None else None
            attrs.update(prefixed("config", {**absent, **config}))
            out[rep["alias"]] = attrs
        return out

    def create_defaults(self, key, attrs, desired, live) -> Attrs:
        """Enabled, email not trusted, sync mode import; an OpenID Connect provider with PKCE S256, and
        signatures checked against the JWKS endpoint when the file gives one (Keycloak's own create
        checks no signature)."""
        defaults = dict(CREATE_DEFAULTS)
        if attrs.get("provider_id", "oidc") in OIDC_PROVIDERS:
            if "config.pkceEnabled" not in attrs:
                defaults.update({"config.pkceEnabled": "true", "config.pkceMethod": "S256"})
            if "config.jwksUrl" in attrs:
                defaults.update({"config.validateSignature": "true", "config.useJwksUrl": "true"})
        return defaults

    def create(self, ctx: ApplyContext, change) -> None:
        after = {d.field: d.after for d in change.diffs}
        body: dict = {"alias": change.key, "providerId": after["provider_id"], "config": {}}
        self._merge(body, after)
        ctx.client.post(f"{ctx.base}/identity-provider/instances", body, f"identity provider '{change.key}'")

    def update(self, ctx: ApplyContext, change) -> None:
        rep = _provider_rep(ctx, change.key)
        after = {d.field: d.after for d in change.diffs}
        if "provider_id" in after:
            raise KeycloakApiError(
                f"identity provider '{change.key}' is a {rep.get('providerId')} provider; Keycloak cannot change "
                f"it to {after['provider_id']}",
                hint="give the new provider another alias (and remove the old one), or keep provider_id")
        body = {**rep, "config": dict(rep.get("config") or {})}  # the stored secret stays: its mask is sent back
        wanted = ctx.desired.get(self.name, {}).get(change.key, {}).get("client_secret")
        if wanted is not None and FINGERPRINT not in body["config"]:
            after.setdefault("client_secret", wanted)  # unknown until now: from here on kcprov knows it
        self._merge(body, after)
        ctx.client.put(_path(ctx, change.key), body, f"identity provider '{change.key}'")

    @staticmethod
    def _merge(body: dict, after: Attrs) -> None:
        for field, value in after.items():
            if field in FIELDS:
                body[FIELDS[field]] = value
            elif field == "client_secret":
                body["config"][SECRET_KEY] = value.reveal()
                body["config"][FINGERPRINT] = fingerprint(value.reveal())
            elif field.startswith("config."):
                body["config"][field.removeprefix("config.")] = value

    def delete(self, ctx: ApplyContext, change) -> None:
        ctx.client.delete(_path(ctx, change.key), f"identity provider '{change.key}'")

    def export(self, key, fields, ctx) -> None:
        """Friendly keys where they say exactly what Keycloak holds, raw config for the rest; a secret is an
        env reference (its value cannot be exported: Keycloak never returns it). Keys a create gives anyway
        are left out."""
        attrs = ctx.live.objects[self.name][key]
        provider = attrs["provider_id"]
        entry = ctx.entry(ctx.doc, "identity_providers", "alias", key)
        if provider != "oidc":
            entry["provider_id"] = provider
        given = {f: v for f, v in attrs.items() if f in ("provider_id", "config.jwksUrl")}  # what the defaults hang on
        created = {**dict.fromkeys(BOOLEANS, False), **self.create_defaults(key, given, {}, ctx.live)}
        entry.update({f: fields[f] for f in FIELDS if f in fields and fields[f] != created.get(f)})
        config = {f.removeprefix("config."): v for f, v in fields.items()
                  if f.startswith("config.") and created.get(f) != v}
        block = "saml" if provider == SAML else "oidc"
        settings = friendly_settings(config, provider)
        if attrs.get("client_secret") is not None:
            settings["client_secret"] = ref = ctx.secret_ref("identity provider", key)
            ctx.not_exported(self.label, key, f"the value of its client_secret (Keycloak never returns it: set "
                                              f"{ref.removeprefix('{{ env.').removesuffix(' }}')} yourself)")
        if SYNC_MODE in config:
            entry["sync_mode"] = config.pop(SYNC_MODE).lower()
        if settings:
            entry[block] = settings
        config = {k: v for k, v in config.items() if not k.startswith("kc.org")}  # the organization's link
        if config:
            entry["config"] = config
        rep = ctx.raw("identityProviders", "alias", key)
        for field in sorted(set(rep) - REPRESENTED):
            if rep[field] not in (None, False, [], {}):
                ctx.not_exported(self.label, key, field)


def friendly_settings(config: dict[str, str], provider: str) -> dict:
    """Take the config keys an `oidc:`/`saml:` key says exactly out of `config`, as that block's keys."""
    keys = SAML_KEYS if provider == SAML else OIDC_KEYS
    settings: dict = {}
    for field, key in keys.items():
        value = config.get(key)
        if value is None or (field == "pkce" and provider not in OIDC_PROVIDERS):
            continue
        if field == "pkce":
            method = config.get("pkceMethod")
            if value == "false":
                settings[field] = "none"
            elif value == "true" and method in ("S256", "plain"):
                settings[field] = method
                del config["pkceMethod"]
            else:
                continue
        elif field == "default_scopes":
            settings[field] = value.split()
        elif field == "name_id_format":
            names = {urn: name for name, urn in NAME_ID_FORMATS.items()}
            if value not in names:
                continue
            settings[field] = names[value]
        elif field == "principal_type":
            if value not in ("SUBJECT", "ATTRIBUTE", "FRIENDLY_ATTRIBUTE"):
                continue
            settings[field] = value.lower()
        elif field == "client_auth_method":
            if value not in ("client_secret_post", "client_secret_basic", "client_secret_jwt", "private_key_jwt"):
                continue
            settings[field] = value
        elif field in FLAG_SETTINGS:
            if value not in ("true", "false"):
                continue
            settings[field] = flag(value)
        else:
            settings[field] = value
        del config[key]
    return settings


# ---------------------------------------------------------------- mappers


def _mappers(export: dict | None) -> list[dict]:
    return (export or {}).get("identityProviderMappers") or []


class IdentityProviderMapperKind(Kind):
    """Mappers of an identity provider (key `<alias>/<name>`): `type` and one `config.<key>` per config key."""

    name = "identity_provider_mapper"
    label = "identity provider mapper"
    stage = 5  # after roles and groups, which mappers name
    reads = frozenset({"identityProviderMappers"})

    def desired(self, spec) -> dict[str, Attrs]:
        out = {}
        for p in spec.identity_providers:
            for m in p.mappers:
                mapper_type, config = mapper_config(m, p.provider_id)
                out[f"{p.alias}/{m.name}"] = {"type": mapper_type, **prefixed("config", config)}
        return out

    def live(self, raw) -> dict[str, Attrs]:
        return {f"{m['identityProviderAlias']}/{m['name']}": {
            "type": m.get("identityProviderMapper"), **prefixed("config", {**ABSENT_CONFIG, **(m.get("config") or {})})}
            for m in _mappers(raw.export)}

    def parent(self, key: str) -> tuple[str, str]:
        return ("identity_provider", key.split("/", 1)[0])

    def create_defaults(self, key, attrs, desired, live) -> Attrs:
        return {f"config.{SYNC_MODE}": "INHERIT"}  # follow the provider's sync_mode (absent, Keycloak reads LEGACY)

    def _base(self, ctx: ApplyContext, alias: str) -> str:
        return f"{_path(ctx, alias)}/mappers"

    def _rep(self, ctx: ApplyContext, key: str) -> dict:
        alias, name = key.split("/", 1)
        return next(m for m in _mappers(ctx.live.raw.export) if m["identityProviderAlias"] == alias and m["name"] == name)

    def create(self, ctx: ApplyContext, change) -> None:
        alias, name = change.key.split("/", 1)
        after = {d.field: d.after for d in change.diffs}
        body = {"name": name, "identityProviderAlias": alias, "identityProviderMapper": after["type"],
                "config": {f.removeprefix("config."): v for f, v in after.items() if f.startswith("config.")}}
        ctx.client.post(self._base(ctx, alias), body, f"identity provider mapper '{change.key}'")

    def update(self, ctx: ApplyContext, change) -> None:
        rep = self._rep(ctx, change.key)
        rep = {**rep, "config": dict(rep.get("config") or {})}
        for d in change.diffs:
            if d.field == "type":
                rep["identityProviderMapper"] = d.after
            else:
                rep["config"][d.field.removeprefix("config.")] = d.after
        ctx.client.put(f"{self._base(ctx, rep['identityProviderAlias'])}/{rep['id']}", rep,
                       f"identity provider mapper '{change.key}'")

    def delete(self, ctx: ApplyContext, change) -> None:
        rep = self._rep(ctx, change.key)
        ctx.client.delete(f"{self._base(ctx, rep['identityProviderAlias'])}/{rep['id']}",
                          f"identity provider mapper '{change.key}'")

    def export(self, key, fields, ctx) -> None:
        """A shortcut where it gives exactly the mapper's type and config; else type + config."""
        alias, name = key.split("/", 1)
        attrs = ctx.live.objects[self.name][key]
        provider = ctx.live.objects["identity_provider"].get(alias, {}).get("provider_id", "oidc")
        entry = ctx.entry(ctx.entry(ctx.doc, "identity_providers", "alias", alias), "mappers", "name", name)
        config = {f.removeprefix("config."): v for f, v in attrs.items() if f.startswith("config.")}
        sync_mode = config.pop(SYNC_MODE)
        if sync_mode != "INHERIT":
            entry["sync_mode"] = sync_mode.lower()
        short = mapper_shortcut(name, attrs["type"], config, provider, client_roles(ctx))
        if short:
            entry.update(short)
            return
        entry["type"] = attrs["type"]
        if config:
            entry["config"] = config


def client_roles(ctx) -> set[tuple[str, str]]:
    return {tuple(k.split("/", 1)) for k in ctx.live.objects.get("client_role", {})}


def role_ref(value: str, roles: set[tuple[str, str]]):
    """Keycloak's `clientId.roleName` back to {client, role} when such a client role exists, else a realm role."""
    for i, char in enumerate(value):
        if char == "." and (value[:i], value[i + 1:]) in roles:
            return {"client": value[:i], "role": value[i + 1:]}
    return value


def _single_match(raw: str | None) -> dict | None:
    """The one {key, value} of an advanced mapper's claims/attributes list, if it is exactly one."""
    try:
        found = json.loads(raw or "")
    except ValueError:
        return None
    if isinstance(found, list) and len(found) == 1 and isinstance(found[0], dict) and set(found[0]) == {"key", "value"}:
        return found[0]
    return None


def mapper_shortcut(name: str, mapper_type: str, config: dict[str, str], provider: str,
                    roles: set[tuple[str, str]]) -> dict | None:
    """The shortcut form of a live mapper (config without syncMode), if that form gives exactly its type and config."""
    source = "attribute" if provider == SAML else "claim"
    role = role_ref(config.get("role", ""), roles)
    candidates = {
        "oidc-hardcoded-role-idp-mapper": {"hardcoded_role": role},
        "oidc-hardcoded-group-idp-mapper": {"hardcoded_group": config.get("group")},
        "oidc-role-idp-mapper": {"claim_to_role": {"claim": config.get("claim"), "value": config.get("claim.value"),
                                                   "role": role}},
        "saml-role-idp-mapper": {"claim_to_role": {"attribute": config.get("attribute.name"),
                                                   "value": config.get("attribute.value"), "role": role}},
        "oidc-user-attribute-idp-mapper": {"attribute_importer": {"claim": config.get("claim"),
                                                                  "user_attribute": config.get("user.attribute")}},
        "saml-user-attribute-idp-mapper": {"attribute_importer": {"attribute": config.get("attribute.name"),
                                                                  "user_attribute": config.get("user.attribute")}},
    }
    for group_type, list_key in (("oidc-advanced-group-idp-mapper", "claims"), ("saml-advanced-group-idp-mapper", "attributes")):
        match = _single_match(config.get(list_key))
        if match:
            candidates[group_type] = {"claim_to_group": {source: match["key"], "value": match["value"],
                                                         "group": config.get("group")}}
    short = candidates.get(mapper_type)
    if short is None:
        return None
    try:
        model = IdentityProviderMapper(name=name, **short)
    except ValidationError:
        return None
    return short if mapper_config(model, provider) == (mapper_type, config) else None
