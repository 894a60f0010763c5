"""Identity providers (brokering to the company SSO, SAML, social logins) and their mappers.

The realm file's part of this kind (its resource kind is `kcprov.resources.identity_providers`).
Keycloak keeps almost everything of an identity provider in one string map
(`IdentityProviderRepresentation.config`, keys verified on Keycloak 26.7.3); the
friendly `oidc:` and `saml:` blocks and `sync_mode` are names for the common keys
(`OIDC_KEYS`, `SAML_KEYS`), raw `config:` holds the rest, and one key may be
given only one way. `idp_config` and `mapper_config` turn the file's keys into
Keycloak's (the resource kind compares and writes those, and recognises them back
on export). The client secret is the only secret: it stays a SecretStr and is
never part of `config:` (its keys are plain text, shown in plans).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from kcprov.spec.fields import ClientId, Flag, Label, Name, OAuthScope, RoleName, Spec, StrMap, _name_rule, spec_error
from kcprov.spec.findings import Finding, unique, unknown
from kcprov.spec.known import client_roles, flow_aliases, group_paths, realm_roles

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec

OIDC_PROVIDERS = frozenset({"oidc", "keycloak-oidc"})
"""Providers that send OpenID Connect claims (the claim mappers take them); social providers have their own mappers."""
SAML = "saml"
MASKED = "**********"
"""What Keycloak shows for a stored client secret; sent back in an update it means "keep the stored one"."""

# friendly key of `oidc:` -> Keycloak config key (OIDCIdentityProviderConfig, OAuth2IdentityProviderConfig)
OIDC_KEYS = {
    "issuer": "issuer",
    "authorization_url": "authorizationUrl",
    "token_url": "tokenUrl",
    "userinfo_url": "userInfoUrl",
    "jwks_url": "jwksUrl",
    "logout_url": "logoutUrl",
    "client_id": "clientId",
    "client_auth_method": "clientAuthMethod",
    "default_scopes": "defaultScope",
    "pkce": "pkceEnabled",  # and pkceMethod
    "validate_signature": "validateSignature",
    "use_jwks_url": "useJwksUrl",
    "backchannel_logout": "backchannelSupported",
    "disable_userinfo": "disableUserInfo",
}
# friendly key of `saml:` -> Keycloak config key (SAMLIdentityProviderConfig)
SAML_KEYS = {
    "idp_entity_id": "idpEntityId",
    "sp_entity_id": "entityId",
    "single_sign_on_url": "singleSignOnServiceUrl",
    "single_logout_url": "singleLogoutServiceUrl",
    "name_id_format": "nameIDPolicyFormat",
    "principal_type": "principalType",
    "principal_attribute": "principalAttribute",
    "want_assertions_signed": "wantAssertionsSigned",
    "want_assertions_encrypted": "wantAssertionsEncrypted",
    "want_authn_requests_signed": "wantAuthnRequestsSigned",
    "validate_signature": "validateSignature",
    "signing_certificate": "signingCertificate",
    "post_binding_response": "postBindingResponse",
    "post_binding_authn_request": "postBindingAuthnRequest",
    "post_binding_logout": "postBindingLogout",
}
NAME_ID_FORMATS = {
    "persistent": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "transient": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "email": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "unspecified": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    "kerberos": "urn:oasis:names:tc:SAML:2.0:nameid-format:kerberos",
}
SYNC_MODE = "syncMode"  # config key of the IdP and of each mapper
SECRET_KEY = "clientSecret"

IdpAlias = Annotated[str, Field(min_length=1), _name_rule(
    "alias", r"[A-Za-z0-9._-]",
    "use ASCII letters, digits and . _ -, starting with a letter or digit (Keycloak puts it in URLs), e.g. company-sso",
)]


class OidcSettings(Spec):
    """The OpenID Connect (and OAuth 2 social provider) settings Keycloak keeps in the provider's config."""

    issuer: str | None = Field(None, description="Issuer the ID tokens must name (config issuer).")
    authorization_url: str | None = Field(None, description="Authorization endpoint of the SSO (config authorizationUrl).")
    token_url: str | None = Field(None, description="Token endpoint of the SSO (config tokenUrl).")
    userinfo_url: str | None = Field(None, description="Userinfo endpoint (config userInfoUrl).")
    jwks_url: str | None = Field(None, description="JWKS endpoint with the SSO's signing keys (config jwksUrl).")
    logout_url: str | None = Field(None, description="End-session endpoint (config logoutUrl).")
    client_id: str | None = Field(None, description="Client id of this realm at the SSO (config clientId).")
    client_secret: SecretStr | None = Field(None, description="Client secret at the SSO; use {{ env.NAME }}, never a literal. Never printed; written when it differs from the one kcprov last wrote (see docs/identity-providers.md).")
    client_auth_method: Literal["client_secret_post", "client_secret_basic", "client_secret_jwt", "private_key_jwt"] | None = Field(None, description="How Keycloak authenticates at the token endpoint (config clientAuthMethod; Keycloak's default client_secret_post).")
    default_scopes: list[OAuthScope] | None = Field(None, description="Scopes asked for at login (config defaultScope, space separated), e.g. [openid, profile, email].")
    pkce: Literal["S256", "plain", "none"] | None = Field(None, description="PKCE towards the SSO (config pkceEnabled/pkceMethod); kcprov creates OpenID Connect providers with S256.")
    validate_signature: Flag | None = Field(None, description="Check the signature of tokens from the SSO (config validateSignature); kcprov creates providers that have a jwks_url with true.")
    use_jwks_url: Flag | None = Field(None, description="Take the signing keys from jwks_url (config useJwksUrl).")
    backchannel_logout: Flag | None = Field(None, description="The SSO supports back-channel logout (config backchannelSupported).")
    disable_userinfo: Flag | None = Field(None, description="Do not call the userinfo endpoint (config disableUserInfo).")


class SamlSettings(Spec):
    """The SAML settings Keycloak keeps in the provider's config."""

    idp_entity_id: str | None = Field(None, description="Entity id of the SAML identity provider (config idpEntityId).")
    sp_entity_id: str | None = Field(None, description="Entity id of this realm as service provider (config entityId; Keycloak's default: the realm URL).")
    single_sign_on_url: str | None = Field(None, description="Single sign-on service URL of the IdP (config singleSignOnServiceUrl).")
    single_logout_url: str | None = Field(None, description="Single logout service URL (config singleLogoutServiceUrl).")
    name_id_format: Literal["persistent", "transient", "email", "unspecified", "kerberos"] | None = Field(None, description="NameID policy format asked for (config nameIDPolicyFormat, the URN of this format).")
    principal_type: Literal["subject", "attribute", "friendly_attribute"] | None = Field(None, description="What identifies the user: the subject NameID, or an attribute by name or friendly name (config principalType).")
    principal_attribute: str | None = Field(None, description="The attribute naming the user, with principal_type attribute or friendly_attribute (config principalAttribute).")
    want_assertions_signed: Flag | None = Field(None, description="Require signed assertions (config wantAssertionsSigned).")
    want_assertions_encrypted: Flag | None = Field(None, description="Require encrypted assertions (config wantAssertionsEncrypted).")
    want_authn_requests_signed: Flag | None = Field(None, description="Sign authentication requests (config wantAuthnRequestsSigned).")
    validate_signature: Flag | None = Field(None, description="Check the IdP's signatures against signing_certificate (config validateSignature).")
    signing_certificate: str | None = Field(None, description="The IdP's signing certificate, base64 DER (PEM body) (config signingCertificate).")
    post_binding_response: Flag | None = Field(None, description="The IdP answers with HTTP-POST binding (config postBindingResponse).")
    post_binding_authn_request: Flag | None = Field(None, description="Send authentication requests with HTTP-POST binding (config postBindingAuthnRequest).")
    post_binding_logout: Flag | None = Field(None, description="Send logout requests with HTTP-POST binding (config postBindingLogout).")


class ClientRoleRef(Spec):
    """A client role, as mappers name one."""

    client: ClientId = Field(description="client_id of the client holding the role.")
    role: RoleName = Field(description="Role name.")


RoleRef = RoleName | ClientRoleRef
"""A realm role by name, or a client role as {client, role} (Keycloak stores `clientId.roleName`)."""


class _Match(Spec):
    """What a claim or attribute mapper reads: an OpenID Connect claim or a SAML attribute."""

    claim: Name | None = Field(None, description="Claim of the OpenID Connect token (oidc, keycloak-oidc providers).")
    attribute: Name | None = Field(None, description="Attribute of the SAML assertion, by name (saml providers).")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.claim is None) == (self.attribute is None):
            raise spec_error("give exactly one of claim (OpenID Connect) or attribute (SAML)",
                             hint="claim: for oidc and keycloak-oidc providers, attribute: for saml")
        return self


class ClaimToRole(_Match):
    """Grant a role when the claim (attribute) has a value."""

    value: str = Field(description="The value the claim or attribute must have.")
    role: RoleRef = Field(description="Realm role name, or {client, role} for a client role.")


class ClaimToGroup(_Match):
    """Make the user a member of a group when the claim (attribute) has a value."""

    value: str = Field(description="The value the claim or attribute must have.")
    group: Name = Field(description="Group path, e.g. /staff/mcp-admins.")


class AttributeImporter(_Match):
    """Copy a claim (attribute) into a user attribute."""

    user_attribute: Name = Field(description="User attribute to set, e.g. department (or email, firstName, lastName).")


SHORTCUTS = ("hardcoded_role", "hardcoded_group", "claim_to_role", "claim_to_group", "attribute_importer")


class IdentityProviderMapper(Spec):
    """One mapper of an identity provider: a shortcut, or any mapper type with its raw config."""

    name: Name = Field(description="Mapper name, unique within the identity provider.")
    hardcoded_role: RoleRef | None = Field(None, description="Grant this role to every user logging in through the provider (oidc-hardcoded-role-idp-mapper).")
    hardcoded_group: Name | None = Field(None, description="Put every user logging in through the provider in this group, by path (oidc-hardcoded-group-idp-mapper).")
    claim_to_role: ClaimToRole | None = Field(None, description="Grant a role when a claim (OIDC) or attribute (SAML) has a value (oidc-role-idp-mapper, saml-role-idp-mapper).")
    claim_to_group: ClaimToGroup | None = Field(None, description="Join a group when a claim (OIDC) or attribute (SAML) has a value (oidc-advanced-group-idp-mapper, saml-advanced-group-idp-mapper).")
    attribute_importer: AttributeImporter | None = Field(None, description="Copy a claim (OIDC) or attribute (SAML) into a user attribute (oidc-user-attribute-idp-mapper, saml-user-attribute-idp-mapper).")
    type: Name | None = Field(None, description="Any mapper type (identityProviderMapper), e.g. github-user-attribute-mapper; with config.")
    config: StrMap | None = Field(None, description="Raw mapper config, with type only.")
    sync_mode: Literal["inherit", "import", "legacy", "force"] | None = Field(None, description="When the mapper applies: inherit (the provider's sync_mode), import (first login only), force (every login), legacy. kcprov creates mappers with inherit.")

    @model_validator(mode="after")
    def _one_kind(self):
        given = [k for k in (*SHORTCUTS, "type") if getattr(self, k) is not None]
        if len(given) != 1:
            what = "two kinds: " + " and ".join(given) if given else "no kind"
            raise spec_error(f"mapper '{self.name}' has {what}",
                             hint=f"give exactly one of {', '.join(SHORTCUTS)} or type (with config)",
                             at=given[1] if len(given) > 1 else None)
        if self.config is not None and self.type is None:
            raise spec_error(f"mapper '{self.name}': config goes with type, not with {given[0]}",
                             hint="remove config, or write the mapper as type + config", at="config")
        if SYNC_MODE in (self.config or {}) and self.sync_mode is not None:
            raise spec_error(f"mapper '{self.name}' sets its sync mode twice (sync_mode and config.syncMode)",
                             hint="keep sync_mode", at="config")
        return self

    @property
    def shortcut(self) -> str | None:
        return next((k for k in SHORTCUTS if getattr(self, k) is not None), None)


class IdentityProvider(Spec):
    """An identity provider users log in through: OpenID Connect, SAML, or a Keycloak social provider."""

    alias: IdpAlias = Field(description="Alias, unique in the realm; in the broker URLs (/realms/<realm>/broker/<alias>/endpoint).")
    provider_id: Name = Field("oidc", description="oidc (default), keycloak-oidc, saml, or a social provider: github, google, microsoft, gitlab, facebook, ... Cannot change once created.")
    display_name: Label | None = Field(None, description="Name on the login page's button.")
    enabled: Flag | None = Field(None, description="Whether users can log in through it (kcprov creates it enabled).")
    trust_email: Flag | None = Field(None, description="Take the provider's email as verified (kcprov creates it with false).")
    store_token: Flag | None = Field(None, description="Store the provider's tokens for the user.")
    link_only: Flag | None = Field(None, description="Only for linking existing accounts, not for login.")
    hide_on_login: Flag | None = Field(None, description="No button on the login page (still usable with kc_idp_hint).")
    first_broker_login_flow: Name | None = Field(None, description="Flow after a user's first login through it; unset, the realm's first broker login binding.")
    post_broker_login_flow: Name | None = Field(None, description="Flow after every login through it (e.g. to require OTP).")
    sync_mode: Literal["import", "legacy", "force"] | None = Field(None, description="When mappers update the user: import (first login only), force (every login), legacy (config syncMode). kcprov creates providers with import.")
    oidc: OidcSettings | None = Field(None, description="OpenID Connect settings (also client_id, client_secret, default_scopes of social providers).")
    saml: SamlSettings | None = Field(None, description="SAML settings (provider_id: saml).")
    config: StrMap | None = Field(None, description="Raw IdentityProviderRepresentation config; only the keys given are managed.")
    mappers: list[IdentityProviderMapper] = Field(default_factory=list, description="Mappers: roles, groups and attributes from what the provider sends.")

    @model_validator(mode="after")
    def _consistent(self):
        if self.saml is not None and self.provider_id != SAML:
            raise spec_error(f"identity provider '{self.alias}' has saml: but provider_id {self.provider_id}",
                             hint="set provider_id: saml, or use oidc:", at="saml")
        if self.oidc is not None and self.provider_id == SAML:
            raise spec_error(f"identity provider '{self.alias}' is SAML but has oidc:",
                             hint="write its settings under saml:", at="oidc")
        raw = self.config or {}
        if SECRET_KEY in raw:
            raise spec_error(f"identity provider '{self.alias}': clientSecret in config would be shown in plans",
                             hint='write it as oidc: {client_secret: "{{ env.NAME }}"}', at="config")
        if "hideOnLoginPage" in raw:  # Keycloak 26 moves it to hideOnLogin and drops the key: never in sync
            raise spec_error(f"identity provider '{self.alias}': config hideOnLoginPage is Keycloak's old key",
                             hint="write hide_on_login: true (or false)", at="config")
        secret = self.oidc.client_secret if self.oidc else None
        if secret is not None and secret.get_secret_value() == MASKED:
            raise spec_error(f"identity provider '{self.alias}': client_secret is Keycloak's mask {MASKED}",
                             hint="Keycloak reads it as 'keep the stored secret'; give the real secret", at="oidc")
        friendly = friendly_config(self)
        for key in raw:
            if key in friendly:
                raise spec_error(f"identity provider '{self.alias}' sets config key {key} twice "
                                 f"(in config: and as {friendly[key]})", hint=f"keep {friendly[key]}", at="config")
        return self


def friendly_config(idp: IdentityProvider) -> dict[str, str]:
    """Config key -> the friendly key of the file that sets it."""
    found = {SYNC_MODE: "sync_mode"} if idp.sync_mode is not None else {}
    for block, keys in (("oidc", OIDC_KEYS), ("saml", SAML_KEYS)):
        settings = getattr(idp, block)
        for field, key in keys.items():
            if settings is not None and getattr(settings, field) is not None:
                found[key] = f"{block}.{field}"
                if field == "pkce" and settings.pkce != "none":
                    found["pkceMethod"] = f"{block}.{field}"
    return found


def _text(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def idp_config(idp: IdentityProvider) -> dict[str, str]:
    """The Keycloak config keys the file gives (friendly and raw), as Keycloak stores them."""
    config = dict(idp.config or {})
    if idp.sync_mode is not None:
        config[SYNC_MODE] = idp.sync_mode.upper()
    for block, keys in (("oidc", OIDC_KEYS), ("saml", SAML_KEYS)):
        settings = getattr(idp, block)
        for field, key in keys.items():
            value = getattr(settings, field) if settings is not None else None
            if value is None:
                continue
            if field == "pkce":
                config[key] = _text(value != "none")
                if value != "none":
                    config["pkceMethod"] = value
            elif field == "default_scopes":
                config[key] = " ".join(value)
            elif field == "name_id_format":
                config[key] = NAME_ID_FORMATS[value]
            elif field == "principal_type":
                config[key] = value.upper()
            else:
                config[key] = _text(value)
    return config


def role_value(role: str | ClientRoleRef) -> str:
    """A role reference as Keycloak's mappers store it: `name`, or `clientId.roleName`."""
    return role if isinstance(role, str) else f"{role.client}.{role.role}"


def mapper_config(mapper: IdentityProviderMapper, provider_id: str) -> tuple[str, dict[str, str]]:
    """(mapper type, config) of a mapper of a provider, shortcuts expanded (types verified on 26.7.3)."""
    config: dict[str, str] = dict(mapper.config or {})
    if mapper.sync_mode is not None:
        config[SYNC_MODE] = mapper.sync_mode.upper()
    saml = provider_id == SAML
    if mapper.type is not None:
        return mapper.type, config
    if mapper.hardcoded_role is not None:
        return "oidc-hardcoded-role-idp-mapper", {**config, "role": role_value(mapper.hardcoded_role)}
    if mapper.hardcoded_group is not None:
        return "oidc-hardcoded-group-idp-mapper", {**config, "group": mapper.hardcoded_group}
    if mapper.claim_to_role is not None:
        m = mapper.claim_to_role
        if saml:
            return "saml-role-idp-mapper", {**config, "attribute.name": m.attribute or "", "attribute.value": m.value,
                                            "role": role_value(m.role)}
        return "oidc-role-idp-mapper", {**config, "claim": m.claim or "", "claim.value": m.value,
                                        "role": role_value(m.role)}
    if mapper.claim_to_group is not None:
        m = mapper.claim_to_group
        match = json.dumps([{"key": m.attribute if saml else m.claim, "value": m.value}], separators=(",", ":"))
        if saml:
            return "saml-advanced-group-idp-mapper", {**config, "attributes": match,
                                                      "are.attribute.values.regex": "false", "group": m.group}
        return "oidc-advanced-group-idp-mapper", {**config, "claims": match, "are.claim.values.regex": "false",
                                                  "group": m.group}
    m = mapper.attribute_importer
    if saml:
        return "saml-user-attribute-idp-mapper", {**config, "attribute.name": m.attribute or "",
                                                  "user.attribute": m.user_attribute}
    return "oidc-user-attribute-idp-mapper", {**config, "claim": m.claim or "", "user.attribute": m.user_attribute}


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Unique aliases and mapper names; the flows, roles and groups named exist; shortcuts fit the provider."""
    idps = spec.identity_providers
    yield from unique(((("identity_providers", i, "alias"), p.alias) for i, p in enumerate(idps)), "identity provider alias")
    flows = flow_aliases(spec)
    realm, clients, groups = realm_roles(spec), client_roles(spec), group_paths(spec)
    for i, idp in enumerate(idps):
        path = ("identity_providers", i)
        for key in ("first_broker_login_flow", "post_broker_login_flow"):
            flow = getattr(idp, key)
            if flow is not None and flow not in flows:
                yield unknown((*path, key), "authentication flow", flow, flows, "define it under authentication_flows")
        yield from unique((((*path, "mappers", j, "name"), m.name) for j, m in enumerate(idp.mappers)), "mapper",
                          owner=f" of identity provider '{idp.alias}'")
        for j, mapper in enumerate(idp.mappers):
            yield from _check_mapper(idp, mapper, (*path, "mappers", j), realm, clients, groups)


def _check_mapper(idp: IdentityProvider, mapper: IdentityProviderMapper, path, realm, clients, groups) -> Iterator[Finding]:
    shortcut = mapper.shortcut
    value = getattr(mapper, shortcut) if shortcut else None
    if isinstance(value, _Match):
        if idp.provider_id not in OIDC_PROVIDERS | {SAML}:
            yield Finding((*path, shortcut), f"{shortcut} needs an OpenID Connect or SAML provider, "
                          f"not {idp.provider_id}", "use type: with the provider's own mapper "
                          f"(e.g. {idp.provider_id}-user-attribute-mapper) and config")
        elif idp.provider_id == SAML and value.claim is not None:
            yield Finding((*path, shortcut, "claim"), f"identity provider '{idp.alias}' is SAML: it sends attributes, "
                          "not claims", "write attribute: instead of claim:")
        elif idp.provider_id != SAML and value.attribute is not None:
            yield Finding((*path, shortcut, "attribute"), f"identity provider '{idp.alias}' is OpenID Connect: it "
                          "sends claims, not SAML attributes", "write claim: instead of attribute:")
    role = mapper.hardcoded_role if shortcut == "hardcoded_role" else getattr(value, "role", None)
    role_path = (*path, shortcut) if shortcut == "hardcoded_role" else (*path, shortcut, "role")
    if isinstance(role, str) and role not in realm:
        yield unknown(role_path, "realm role", role, realm, "define it under roles, or write {client: ..., role: ...}")
    elif isinstance(role, ClientRoleRef):
        if role.client not in clients:
            yield unknown((*role_path, "client"), "client", role.client, clients, "define it under clients")
        elif role.role not in clients[role.client]:
            yield unknown((*role_path, "role"), "role", role.role, clients[role.client],
                          f"add it to the roles of client '{role.client}'", f" of client '{role.client}'")
    group = mapper.hardcoded_group if shortcut == "hardcoded_group" else getattr(value, "group", None)
    if group is not None and group not in groups:
        group_path = (*path, shortcut) if shortcut == "hardcoded_group" else (*path, shortcut, "group")
        yield unknown(group_path, "group", group, groups, "define it under groups (paths start with /)")
