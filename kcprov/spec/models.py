"""The realm file format as pydantic models: one realm per file, YAML keys = field names.

Contract with the diff engine: an optional field left at None means "not managed
by this file" and must never show as a change; only collections of sub-resources
(roles, scopes, clients, users, mappers, ...) default to empty lists. Checks that
need more than one object (references, duplicates) live in `kcprov.spec.checks`,
so these models stay usable on their own.

Input rules (a realm file is untrusted; names end up in Admin API URLs, tokens,
env files and terminals):
- Ids are ASCII, so a look-alike letter (Cyrillic 'а' U+0430 in 'clіent') or an
  invisible one cannot pass for another id: client_id, role names and MCP
  server names are letters, digits and `. _ - : @`, starting with a letter or
  digit, without '..'. Realm names are stricter (letters, digits, `. _ -`):
  Keycloak puts them in every URL path and refuses RFC 3986 reserved
  characters in them (its ReservedCharValidator). Scope names are OAuth scope
  tokens (RFC 6749) without `/ ? # %` or '..'.
- Usernames and display names are free text (any script), but without
  characters Keycloak's username-prohibited-characters validator refuses
  (usernames only), and without invisible format characters (zero-width,
  bidi: Unicode category Cf). Control characters never get this far: the YAML
  reader refuses them everywhere (`yamldoc`).
- Booleans are strict: only true and false. YAML 1.2 reads `on`, `yes`, `off`,
  `no` as text, and pydantic would otherwise turn that text back into a bool.
  A boolean where text is expected (`name: true`) is an error: quote it.
- Numbers written for text keep their spelling (`client_id: 0777` is "0777",
  `display_name: 1.10` is "1.10"): yamldoc's SourceInt/SourceFloat have the
  source text as str(), which coerce_numbers_to_str and Keycloak attribute
  strings use.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator

from kcprov.spec.fields import (
    ClientId,
    Duration,
    Flag,
    Label,
    MultiStrMap,
    Name,
    OAuthScope,
    RealmName,
    RoleName,
    ScopeName,
    ServerName,
    Spec,
    StrMap,
    Username,
    spec_error,
)
from kcprov.spec.events import Events
from kcprov.spec.flows import AuthenticationFlow, FlowBindings, FlowOverrides
from kcprov.spec.groups import Group
from kcprov.spec.identity_providers import IdentityProvider
from kcprov.spec.organizations import Organization
from kcprov.mcp_clients import CIMD_PRESETS, DCR_PRESETS, PRESET_NAMES
from kcprov.spec.quiet import KEY as QUIET_KEY, WarningId
from kcprov.spec.required_actions import RequiredAction
from kcprov.spec.smtp import Smtp
from kcprov.spec.user_profile import UserProfile

# ---------------------------------------------------------------- realm settings


class RealmSettings(Spec):
    """Friendly names for RealmRepresentation options.

    Every field is the snake_case of its RealmRepresentation key
    (access_token_lifespan -> accessTokenLifespan), so mapping is mechanical.
    """

    access_token_lifespan: Duration | None = Field(None, description="Access token lifespan. Keep it short (minutes) for MCP.")
    access_token_lifespan_for_implicit_flow: Duration | None = Field(None, description="Access token lifespan for the implicit flow.")
    access_code_lifespan: Duration | None = Field(None, description="How long an authorization code is valid.")
    access_code_lifespan_user_action: Duration | None = Field(None, description="Time a user has to finish a login action (e.g. update password).")
    access_code_lifespan_login: Duration | None = Field(None, description="Maximum time a user has to finish a login.")
    action_token_generated_by_user_lifespan: Duration | None = Field(None, description="Lifespan of user-initiated action tokens (e.g. forgot password).")
    action_token_generated_by_admin_lifespan: Duration | None = Field(None, description="Lifespan of admin-initiated action tokens.")
    sso_session_idle_timeout: Duration | None = Field(None, description="SSO session idle timeout.")
    sso_session_max_lifespan: Duration | None = Field(None, description="SSO session maximum lifespan.")
    sso_session_idle_timeout_remember_me: Duration | None = Field(None, description="SSO session idle timeout when 'remember me' is set.")
    sso_session_max_lifespan_remember_me: Duration | None = Field(None, description="SSO session maximum lifespan when 'remember me' is set.")
    client_session_idle_timeout: Duration | None = Field(None, description="Client session idle timeout (0 = use the SSO session value).")
    client_session_max_lifespan: Duration | None = Field(None, description="Client session maximum lifespan (0 = use the SSO session value).")
    offline_session_idle_timeout: Duration | None = Field(None, description="Offline session idle timeout.")
    offline_session_max_lifespan_enabled: Flag | None = Field(None, description="Limit offline sessions to offline_session_max_lifespan.")
    offline_session_max_lifespan: Duration | None = Field(None, description="Offline session maximum lifespan.")
    oauth2_device_code_lifespan: Duration | None = Field(None, description="Device authorization grant: lifespan of the device code.")
    oauth2_device_polling_interval: Duration | None = Field(None, description="Device authorization grant: minimum polling interval.")
    revoke_refresh_token: Flag | None = Field(None, description="Refresh token rotation: a refresh token can be used only refresh_token_max_reuse+1 times. MCP requires rotation for public clients.")
    refresh_token_max_reuse: int | None = Field(None, ge=0, description="How many times a refresh token may be reused when revoke_refresh_token is on (0 = single use).")
    ssl_required: Literal["none", "external", "all"] | None = Field(None, description="Require HTTPS: none, external (all but private addresses), or all.")
    registration_allowed: Flag | None = Field(None, description="Users may self-register on the login page.")
    registration_email_as_username: Flag | None = Field(None, description="Use the email as username on self-registration.")
    login_with_email_allowed: Flag | None = Field(None, description="Users may log in with their email.")
    duplicate_emails_allowed: Flag | None = Field(None, description="Several users may share an email.")
    verify_email: Flag | None = Field(None, description="Users must verify their email after first login.")
    reset_password_allowed: Flag | None = Field(None, description="Show a 'forgot password' link on the login page.")
    edit_username_allowed: Flag | None = Field(None, description="Users may change their username.")
    remember_me: Flag | None = Field(None, description="Show a 'remember me' checkbox on the login page.")
    brute_force_protected: Flag | None = Field(None, description="Temporarily lock accounts after repeated login failures.")
    permanent_lockout: Flag | None = Field(None, description="Lock accounts permanently instead of temporarily on brute force.")
    failure_factor: int | None = Field(None, ge=1, description="Login failures before brute-force lockout.")
    password_policy: str | None = Field(None, description="Keycloak password policy string, e.g. 'length(12) and notUsername'.")
    default_signature_algorithm: str | None = Field(None, description="Default token signature algorithm, e.g. RS256 or ES256.")
    login_theme: str | None = Field(None, description="Theme of the login pages.")
    account_theme: str | None = Field(None, description="Theme of the account console.")
    admin_theme: str | None = Field(None, description="Theme of the admin console.")
    email_theme: str | None = Field(None, description="Theme of emails.")
    internationalization_enabled: Flag | None = Field(None, description="Enable localisation of the login pages.")
    supported_locales: list[str] | None = Field(None, description="Locales offered when internationalization is enabled.")
    default_locale: str | None = Field(None, description="Default locale.")
    organizations_enabled: Flag | None = Field(None, description="Enable the Organizations feature for this realm.")
    attributes: StrMap | None = Field(None, description="Raw RealmRepresentation attributes for anything not modelled; only the keys given are managed.")


# ---------------------------------------------------------------- roles, scopes, mappers


class RealmRole(Spec):
    """A realm role."""

    name: RoleName = Field(description="Role name, unique in the realm.")
    description: str | None = Field(None, description="What holding the role allows.")


class ClientRole(Spec):
    """A role owned by a client."""

    name: RoleName = Field(description="Role name, unique within the client.")
    description: str | None = Field(None, description="What holding the role allows.")


def _role_from_string(value: Any) -> Any:
    """Client roles may be written as bare names."""
    return {"name": value} if isinstance(value, str) else value


class ProtocolMapper(Spec):
    """A protocol mapper on a client scope or a client.

    Exactly one of `audience` (custom audience), `client_audience` (audience of a
    client), `group_membership` (the user's groups in a claim) or
    `protocol_mapper` + `config` (any mapper, raw).
    """

    name: Name = Field(description="Mapper name, unique within its scope or client.")
    audience: str | None = Field(None, description="Shortcut: an Audience mapper adding this custom audience (e.g. the MCP server URL) to tokens.")
    client_audience: str | None = Field(None, description="Shortcut: an Audience mapper adding this client's client_id to tokens. Must name a client in the file.")
    group_membership: Name | None = Field(None, description="Shortcut: a Group Membership mapper (oidc-group-membership-mapper) putting the user's groups in this claim, e.g. groups.")
    full_path: Flag | None = Field(None, description="group_membership only: the claim lists group paths (/staff/mcp-admins), false: names (mcp-admins). Keycloak default: true.")
    protocol_mapper: str | None = Field(None, description="Generic form: the mapper type id, e.g. oidc-usermodel-realm-role-mapper.")
    config: StrMap | None = Field(None, description="Generic form: the mapper configuration as Keycloak stores it.")
    access_token: Flag | None = Field(None, description="Shortcuts only: add to the access token (Keycloak default: true).")
    id_token: Flag | None = Field(None, description="Shortcuts only: add to the ID token (Keycloak default: false for the audience shortcuts, true for group_membership).")
    introspection: Flag | None = Field(None, description="Shortcuts only: add to the introspection response (Keycloak default: true).")
    userinfo: Flag | None = Field(None, description="group_membership only: add to the userinfo response (Keycloak default: true).")

    @model_validator(mode="after")
    def _one_kind(self) -> ProtocolMapper:
        kinds = [k for k in ("audience", "client_audience", "group_membership", "protocol_mapper")
                 if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise spec_error(
                f"mapper '{self.name}' needs exactly one of audience, client_audience, group_membership or protocol_mapper"
                + (f", not {' and '.join(kinds)}" if kinds else ""),
                hint="audience: <URL> for a custom audience, client_audience: <client_id>, group_membership: <claim>, "
                "or protocol_mapper: <type> with config: {...}",
                at=kinds[1] if len(kinds) > 1 else None,
            )
        if self.protocol_mapper is not None:
            for flag in ("access_token", "id_token", "introspection", "userinfo", "full_path"):
                if getattr(self, flag) is not None:
                    raise spec_error(
                        f"'{flag}' applies to the shortcuts, not to protocol_mapper",
                        hint="set it in config instead, e.g. access.token.claim: true",
                        at=flag,
                    )
        elif self.config is not None:
            raise spec_error(
                "'config' applies to protocol_mapper only",
                hint="the shortcuts take access_token, id_token and introspection (group_membership also userinfo, full_path)",
                at="config",
            )
        if self.group_membership is None:
            for flag in ("userinfo", "full_path"):
                if getattr(self, flag) is not None and self.protocol_mapper is None:
                    raise spec_error(
                        f"'{flag}' applies to group_membership only",
                        hint="an Audience mapper has no such setting; remove it",
                        at=flag,
                    )
        return self


class ClientScope(Spec):
    """A client scope, e.g. one per MCP permission (mcp:tools)."""

    name: ScopeName = Field(description="Scope name as requested in `scope=`; unique in the realm.")
    description: str | None = Field(None, description="Description shown in the admin console.")
    type: Literal["default", "optional", "none"] | None = Field(None, description="Realm default client scope: default (added to new clients as default), optional, or none.")
    protocol: Literal["openid-connect", "saml"] | None = Field(None, description="Protocol; Keycloak default: openid-connect.")
    include_in_token_scope: Flag | None = Field(None, description="List the scope in the access token's `scope` claim.")
    display_on_consent_screen: Flag | None = Field(None, description="Show the scope on the consent screen.")
    consent_screen_text: str | None = Field(None, description="Text shown on the consent screen.")
    gui_order: int | None = Field(None, description="Order on the consent screen.")
    attributes: StrMap | None = Field(None, description="Raw ClientScopeRepresentation attributes; only the keys given are managed.")
    mappers: list[ProtocolMapper] = Field(default_factory=list, description="Protocol mappers of this scope.")
    scope_roles: dict[ClientId, list[RoleName]] | None = Field(None, description="Roles a token may carry when this scope is granted (the scope's role scope mappings): client_id -> client roles; the key `realm` holds realm roles. Needed for DCR clients, which Keycloak registers with full scope disabled. Keycloak then grants the scope only to users (and service accounts) holding one of these roles.")


# ---------------------------------------------------------------- client registration (DCR)


class RegistrationPolicy(Spec):
    """Client registration policies of one kind (anonymous or authenticated DCR)."""

    trusted_hosts: list[str] | None = Field(None, description="'Trusted Hosts' policy: hosts or IPs allowed to register clients.")
    host_sending_request_must_match: Flag | None = Field(None, description="'Trusted Hosts': the registering host must be trusted.")
    client_uris_must_match: Flag | None = Field(None, description="'Trusted Hosts': redirect and other client URIs must use a trusted host.")
    allowed_client_scopes: list[OAuthScope] | None = Field(None, description="'Allowed Client Scopes' policy: scopes a registered client may ask for.")
    allow_default_scopes: Flag | None = Field(None, description="'Allowed Client Scopes': also allow the realm's default scopes.")
    max_clients: int | None = Field(None, ge=1, description="'Max Clients Limit' policy: maximum number of clients in the realm.")
    allowed_web_origins: list[str] | None = Field(None, description="'Allowed Registration Web Origins' policy: browser origins that may register (MCP Inspector needs this).")


class ClientRegistration(Spec):
    """Dynamic Client Registration policies, per kind."""

    anonymous: RegistrationPolicy | None = Field(None, description="Policies for anonymous registration (no initial access token), the kind MCP clients use.")
    authenticated: RegistrationPolicy | None = Field(None, description="Policies for registration with an initial access token.")


# ---------------------------------------------------------------- client policies


class Executor(Spec):
    """One executor of a client profile, e.g. pkce-enforcer."""

    type: Name = Field(description="Executor provider id, e.g. pkce-enforcer, secure-client-authenticator, client-id-metadata-document.")
    config: MultiStrMap | None = Field(None, description="Executor configuration, e.g. {auto-configure: true}.")


class ClientProfile(Spec):
    """A client profile: a named set of executors."""

    name: Name = Field(description="Profile name, unique in the realm.")
    description: str | None = Field(None, description="What the profile enforces.")
    executors: list[Executor] = Field(default_factory=list, description="Executors applied to clients matched by a policy using this profile.")


class Condition(Spec):
    """One condition of a client policy, e.g. any-client."""

    type: Name = Field(description="Condition provider id, e.g. any-client, client-access-type, client-id-uri.")
    config: MultiStrMap | None = Field(None, description="Condition configuration.")


class ClientPolicy(Spec):
    """A client policy: when its conditions match, its profiles apply."""

    name: Name = Field(description="Policy name, unique in the realm.")
    description: str | None = Field(None, description="What the policy is for.")
    enabled: Flag | None = Field(None, description="Whether the policy is active.")
    conditions: list[Condition] = Field(default_factory=list, description="Conditions; all must match.")
    profiles: list[Name] = Field(default_factory=list, description="Profiles to apply: names from client_policies.profiles or Keycloak global profiles (e.g. fapi-2-security-profile).")


class ClientPolicies(Spec):
    """Realm settings → Client policies."""

    profiles: list[ClientProfile] = Field(default_factory=list, description="Client profiles defined in this realm.")
    policies: list[ClientPolicy] = Field(default_factory=list, description="Client policies of this realm.")


# ---------------------------------------------------------------- clients and users


#: JWK members that hold private key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1): never in a realm file.
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def _public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    """A JWK with public members only; the error names the member, never its value."""
    if not isinstance(jwk.get("kty"), str):
        raise spec_error("a JWK without 'kty'", hint="write the public key as printed by kcprov dev keypair")
    private = [m for m in PRIVATE_JWK_MEMBERS if m in jwk]
    if private:
        raise spec_error(
            f"this JWK holds private key material ({', '.join(private)})",
            hint="put only the public key in the file (kcprov dev keypair prints it); "
            "the private key stays with the client, and this one should be replaced: it has been written down",
            at=private[0],
        )
    return jwk


class Jwks(Spec):
    """A JWK Set (RFC 7517 §5) of public keys."""

    keys: list[Annotated[dict[str, Any], AfterValidator(_public_jwk)]] = Field(min_length=1, description="Public JWKs (kty, kid, alg, use and the public members).")


class Client(Spec):
    """An OIDC client."""

    client_id: ClientId = Field(description="The client_id, unique in the realm.")
    name: Label | None = Field(None, description="Display name.")
    description: str | None = Field(None, description="Description shown in the admin console.")
    enabled: Flag | None = Field(None, description="Whether the client can be used.")
    confidential: Flag | None = Field(None, description="Confidential client (client authentication on); Keycloak generates a secret unless `secret` is given. false = public client.")
    secret: SecretStr | None = Field(None, description="Client secret of a confidential client; use {{ env.NAME }}, never a literal. Never printed.")
    auth: Literal["client_secret", "private_key_jwt"] | None = Field(None, description="How a confidential client authenticates: client_secret (Keycloak default) or private_key_jwt (RFC 7523 signed assertion, Keycloak's client-jwt; needs jwks_url or jwks).")
    jwks_url: str | None = Field(None, description="private_key_jwt: URL Keycloak fetches the client's public keys from (attributes use.jwks.url, jwks.url).")
    jwks: Jwks | None = Field(None, description="private_key_jwt: the client's public keys inline, as a JWK Set {keys: [...]} (attributes use.jwks.string, jwks.string). Public members only.")
    sender_constraint: Literal["dpop", "none"] | None = Field(None, description="dpop: Keycloak issues this client only DPoP-bound access tokens (RFC 9449; attribute dpop.bound.access.tokens); none: plain bearer tokens.")
    service_account: Flag | None = Field(None, description="Enable the client credentials grant (service account).")
    standard_flow: Flag | None = Field(None, description="Enable the authorization code flow.")
    implicit_flow: Flag | None = Field(None, description="Enable the implicit flow (discouraged; removed in OAuth 2.1).")
    direct_access_grants: Flag | None = Field(None, description="Enable the resource owner password grant (discouraged; removed in OAuth 2.1).")
    device_authorization_grant: Flag | None = Field(None, description="Enable the OAuth 2.0 device authorization grant.")
    consent_required: Flag | None = Field(None, description="Users must consent to the scopes the client asks for.")
    front_channel_logout: Flag | None = Field(None, description="Use front-channel logout.")
    full_scope_allowed: Flag | None = Field(None, description="Put all of the user's roles in tokens (Keycloak default: true).")
    pkce: Literal["S256", "plain"] | None = Field(None, description="Require PKCE with this method (attribute pkce.code.challenge.method). MCP requires S256.")
    root_url: str | None = Field(None, description="Root URL prepended to relative URLs.")
    base_url: str | None = Field(None, description="Home URL of the client.")
    admin_url: str | None = Field(None, description="URL of the client's admin interface (back-channel).")
    redirect_uris: list[str] | None = Field(None, description="Valid redirect URIs; exact URIs (MCP: loopback or HTTPS, no wildcards).")
    post_logout_redirect_uris: list[str] | None = Field(None, description="Valid post-logout redirect URIs.")
    web_origins: list[str] | None = Field(None, description="Allowed CORS origins ('+' = the redirect URIs' origins).")
    default_scopes: list[OAuthScope] | None = Field(None, description="Client scopes always in this client's tokens: names from client_scopes or Keycloak built-ins.")
    optional_scopes: list[OAuthScope] | None = Field(None, description="Client scopes this client may request: names from client_scopes or Keycloak built-ins.")
    roles: list[Annotated[ClientRole, BeforeValidator(_role_from_string, json_schema_input_type=str | ClientRole)]] = Field(default_factory=list, description="Client roles: names, or {name, description} objects.")
    service_account_roles: dict[ClientId, list[RoleName]] | None = Field(None, description="Roles of the service account: client_id -> client roles; the key `realm` holds realm roles. Needs service_account: true.")
    mappers: list[ProtocolMapper] = Field(default_factory=list, description="Protocol mappers of this client.")
    authentication_flow_overrides: FlowOverrides | None = Field(None, description="Flows this client uses instead of the realm's (browser, direct grant).")
    attributes: StrMap | None = Field(None, description="Raw ClientRepresentation attributes; only the keys given are managed.")

    @field_validator("jwks_url")
    @classmethod
    def _absolute_jwks_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            raise spec_error(f"jwks_url {url!r} is not an absolute http(s) URL",
                             hint="write the URL Keycloak fetches the JWK Set from, e.g. https://svc.example.com/jwks.json")
        return url

    @model_validator(mode="after")
    def _public_has_no_credentials(self) -> Client:
        if self.confidential is False:
            for key in ("secret", "service_account"):
                if getattr(self, key) not in (None, False):
                    raise spec_error(
                        f"client '{self.client_id}' is public (confidential: false) but sets {key}",
                        hint=f"set confidential: true, or remove {key}",
                        at=key,
                    )
        if self.auth == "private_key_jwt":
            if self.confidential is False or self.secret is not None:
                key = "confidential" if self.confidential is False else "secret"
                raise spec_error(
                    f"client '{self.client_id}' authenticates with private_key_jwt but sets {key}",
                    hint="a private_key_jwt client is confidential and holds no secret: remove " + key,
                    at=key,
                )
            if (self.jwks_url is None) == (self.jwks is None):
                raise spec_error(
                    f"client '{self.client_id}' authenticates with private_key_jwt and needs exactly one of jwks_url or jwks",
                    hint="jwks_url: <https URL of the client's JWK Set>, or jwks: {keys: [<public JWK>]} "
                    "(kcprov dev keypair prints one)",
                    at="jwks" if self.jwks is not None else "auth",
                )
        else:
            for key in ("jwks_url", "jwks"):
                if getattr(self, key) is not None:
                    raise spec_error(
                        f"client '{self.client_id}' sets {key} but does not authenticate with private_key_jwt",
                        hint="add auth: private_key_jwt, or remove " + key,
                        at=key,
                    )
        if self.service_account_roles and not self.service_account:
            raise spec_error(
                f"client '{self.client_id}' has service_account_roles but no service account",
                hint="add service_account: true",
                at="service_account_roles",
            )
        return self


class User(Spec):
    """A user, typically for development realms."""

    username: Username = Field(description="Username, unique in the realm.")
    password: SecretStr | None = Field(None, description="Password; use {{ env.NAME | default('...') }}, never a literal. Never printed.")
    email: str | None = Field(None, description="Email address.")
    first_name: Label | None = Field(None, description="First name.")
    last_name: Label | None = Field(None, description="Last name.")
    enabled: Flag | None = Field(None, description="Whether the user can log in.")
    email_verified: Flag | None = Field(None, description="Whether the email counts as verified.")
    realm_roles: list[RoleName] | None = Field(None, description="Realm roles granted: names from roles, or offline_access, uma_authorization, default-roles-<realm>.")
    client_roles: dict[ClientId, list[RoleName]] | None = Field(None, description="Client roles granted: client_id -> role names.")
    attributes: MultiStrMap | None = Field(None, description="User attributes; only the keys given are managed.")
    groups: list[str] | None = Field(None, description="Groups the user is a member of, by path (/staff/mcp-admins); exactly these.")


# ---------------------------------------------------------------- MCP servers


class McpCimd(Spec):
    """Client ID Metadata Documents (Keycloak feature `cimd`) for this server's clients."""

    trusted_domains: list[str] | None = Field(None, description="Domains whose metadata documents are accepted as client_id.")
    allow_http: Flag | None = Field(None, description="Accept http:// client_id URLs (development only).")
    restrict_same_domain: Flag | None = Field(None, description="Redirect URIs must be on the client_id's domain.")
    only_confidential: Flag | None = Field(None, description="Accept only confidential clients.")
    accept_public_client_with_confidential_grant_types: Flag | None = Field(None, description="Accept public clients whose document lists confidential-only grant types (Claude Desktop needs this).")
    required_properties: list[str] | None = Field(None, description="Properties the metadata document must contain.")


class McpClientEntry(Spec):
    """One way clients reach an MCP server; exactly one key per entry."""

    dcr: RegistrationPolicy | None = Field(None, description="Allow anonymous Dynamic Client Registration; the server's scopes are added to allowed_client_scopes.")
    cimd: McpCimd | None = Field(None, description="Allow Client ID Metadata Documents.")
    preset: Literal[PRESET_NAMES] | None = Field(None, description="Known MCP client with the settings it needs (docs/mcp-clients.md): "  # type: ignore[valid-type]
                                                   "CIMD: " + ", ".join(CIMD_PRESETS) + "; DCR: " + ", ".join(DCR_PRESETS) + ".")
    client: Client | None = Field(None, description="A pre-registered client that gets the server's scopes.")

    @model_validator(mode="after")
    def _one_kind(self) -> McpClientEntry:
        kinds = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise spec_error(
                "each mcp_servers clients entry needs exactly one of dcr, cimd, preset or client"
                + (f", not {' and '.join(kinds)}" if kinds else ""),
                hint="write one list item per kind, e.g. '- preset: vscode'",
                at=kinds[1] if len(kinds) > 1 else None,
            )
        return self


class Downstream(Spec):
    """An API the MCP server calls on the user's behalf, with a token it gets by token exchange.

    The MCP server never forwards the caller's token (MCP "no token
    passthrough"): it exchanges it (RFC 8693, Keycloak's standard token
    exchange) for one whose audience is this API and whose `sub` is still the user.
    """

    client_id: ClientId = Field(description="The API's audience: a client in the file, or one kcprov makes (confidential, no flows: it only receives tokens).")
    scopes: list[OAuthScope] = Field(default_factory=list, description="Client scopes the exchanged token asks for: names from client_scopes (or built-ins), or new names kcprov makes as plain scopes.")
    url: str | None = Field(None, description="Where the MCP server reaches the API (written to the env file): absolute http(s), no query or fragment, no comma.")

    @field_validator("url")
    @classmethod
    def _plain_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment \
                or "," in url or any(ch.isspace() for ch in url):
            raise spec_error(f"downstream url {url!r} is not a plain absolute http(s) URL",
                             hint="write the API's base URL, e.g. https://orders.internal.example.com "
                             "(no query, fragment, comma or space)")
        return url


class McpServer(Spec):
    """An MCP server (a protected resource) and how clients get tokens for it.

    Expanded into scopes, mappers, clients and policies by a later step; here it
    is only described and checked. After validation, token_validation,
    audience_binding, introspection_client and admin_tools hold their effective
    values, so the expansion step applies no defaults of its own.
    """

    name: ServerName = Field(description="Server name, unique in the realm; used to name generated objects.")
    url: str = Field(description="Canonical resource URI (RFC 8707), the `resource` clients send: absolute http(s), no fragment.")
    extra_audiences: list[str] | None = Field(None, description="More audiences to put in this server's tokens, e.g. the server's origin.")
    scopes: dict[ScopeName, str] = Field(min_length=1, description="Scope name -> consent text, in order; the first is the base scope.")
    tool_scopes: dict[Name, ScopeName] | None = Field(None, description="Tool name -> the scope it requires (a key of scopes).")
    admin_role: RoleName | None = Field(None, description="Realm role the admin tools also require; must be in roles.")
    admin_tools: list[Name] | None = Field(None, description="Tools that require admin_role. Default: tools whose scope name contains 'admin'.")
    token_validation: Literal["jwt", "introspection"] = Field("jwt", description="How the server validates tokens: jwt (local, default) or introspection.")
    introspection_client: ClientId | None = Field(None, description="Confidential client the server uses for introspection. Default: '<name>-introspector' when token_validation is introspection.")
    audience_binding: Literal["mapper", "resource-indicators"] = Field("mapper", description="How tokens get the server's audience: mapper (audience mapper per scope, default) or resource-indicators (Keycloak feature).")
    access_token_lifespan: Duration | None = Field(None, description="Access token lifespan for this server's clients.")
    clients: list[McpClientEntry] = Field(default_factory=list, description="How clients reach this server: dcr, cimd, preset or client entries.")
    downstream: list[Downstream] = Field(default_factory=list, description="APIs the server calls on the user's behalf with tokens from standard token exchange (never the caller's token): kcprov makes the exchange client (client_id = the server url, the audience every user token of the server has) and the audiences the exchange needs.")
    sender_constraint: Literal["dpop"] | None = Field(None, description="dpop: the server's pre-registered clients (client entries) get DPoP-bound tokens (RFC 9449) and the server requires Authorization: DPoP with a proof.")
    env_file: str | None = Field(None, description="Write the server's settings (issuer, audience, client secret) to this .env file. Relative to the current working directory, not to the realm file.")

    @field_validator("url")
    @classmethod
    def _canonical_uri(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise spec_error(
                f"MCP server url {url!r} is not an absolute http(s) URL",
                hint="write the full URL clients call, e.g. https://mcp.example.com/mcp",
            )
        if parts.fragment or url.endswith("#"):
            raise spec_error(
                f"MCP server url {url!r} has a fragment",
                hint="a canonical resource URI (RFC 8707) has no #fragment; remove it",
            )
        return url

    @model_validator(mode="after")
    def _consistent(self) -> McpServer:
        for tool, scope in (self.tool_scopes or {}).items():
            if scope not in self.scopes:
                raise spec_error(
                    f"tool '{tool}' requires scope '{scope}', which is not in this server's scopes",
                    hint=f"add it under scopes, or use one of: {', '.join(self.scopes)}",
                    at="tool_scopes",
                )
        unknown = [t for t in self.admin_tools or () if t not in (self.tool_scopes or {})]
        if unknown:
            raise spec_error(
                f"admin_tools names tools missing from tool_scopes: {', '.join(unknown)}",
                hint="list each admin tool in tool_scopes with the scope it requires",
                at="admin_tools",
            )
        if self.token_validation == "introspection":
            if self.introspection_client is None:
                self.introspection_client = f"{self.name}-introspector"
        elif self.introspection_client is not None:
            raise spec_error(
                "introspection_client is set but token_validation is jwt",
                hint="add token_validation: introspection, or remove introspection_client",
                at="introspection_client",
            )
        if self.admin_tools is None:
            self.admin_tools = [t for t, s in (self.tool_scopes or {}).items() if "admin" in s]
        return self


# ---------------------------------------------------------------- the realm


class RealmSpec(Spec):
    """One realm file: the desired state of one Keycloak realm.

    Top-level keys starting with `x-` are ignored, as in Docker Compose, so a
    file can hold YAML anchors (`x-spa: &spa {...}`) to merge into entries;
    except kcprov's own `x-kcprov-quiet-warnings` (kcprov.spec.quiet says why).
    """

    model_config = ConfigDict(json_schema_extra={"patternProperties": {"^x-": {}}})

    @model_validator(mode="before")
    @classmethod
    def _drop_extension_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-") and k != QUIET_KEY)}
        return data

    realm: RealmName = Field(description="Realm name.")
    display_name: Label | None = Field(None, description="Name shown on the login page.")
    enabled: Flag | None = Field(None, description="Whether the realm accepts logins.")
    settings: RealmSettings | None = Field(None, description="Realm options (tokens, sessions, login, themes).")
    smtp: Smtp | None = Field(None, description="The SMTP server the realm sends email through.")
    events: Events | None = Field(None, description="Which user and admin events Keycloak records, for how long, and who listens.")
    user_profile: UserProfile | None = Field(None, description="The declarative user profile: attributes, validations, permissions, unmanaged-attribute policy.")
    roles: list[RealmRole] = Field(default_factory=list, description="Realm roles.")
    default_roles: dict[ClientId, list[RoleName]] | None = Field(None, description="Default roles every user gets (the composites of default-roles-<realm>): client_id -> client roles; the key `realm` holds realm roles. Keycloak's: {realm: [offline_access, uma_authorization], account: [manage-account, view-profile]}.")
    groups: list[Group] = Field(default_factory=list, description="Groups, nested with `subgroups`; members get the group's roles.")
    default_groups: list[str] | None = Field(None, description="Groups every new user joins, by path (/staff/mcp-admins).")
    client_scopes: list[ClientScope] = Field(default_factory=list, description="Client scopes, e.g. one per MCP permission.")
    client_registration: ClientRegistration | None = Field(None, description="Dynamic Client Registration policies.")
    client_policies: ClientPolicies | None = Field(None, description="Client profiles and policies (e.g. enforce PKCE).")
    authentication_flows: list[AuthenticationFlow] = Field(default_factory=list, description="Authentication flows defined in this realm (Keycloak's built-in flows are never deleted).")
    flow_bindings: FlowBindings | None = Field(None, description="Which flow the realm uses for browser login, direct grant, registration, reset credentials, client authentication and first broker login.")
    required_actions: list[RequiredAction] = Field(default_factory=list, description="Required actions: enabled, default for new users, priority, config.")
    identity_providers: list[IdentityProvider] = Field(default_factory=list, description="Identity providers users log in through (OIDC, SAML, social), with their mappers.")
    clients: list[Client] = Field(default_factory=list, description="OIDC clients.")
    users: list[User] = Field(default_factory=list, description="Users (development realms).")
    organizations: list[Organization] = Field(default_factory=list, description="Organizations with their domains and members (needs settings.organizations_enabled).")
    mcp_servers: list[McpServer] = Field(default_factory=list, description="MCP servers, each expanded into the objects above by a later step.")
    quiet_warnings: list[WarningId] = Field(default_factory=list, alias=QUIET_KEY, description="Plan warnings not to show, by the id in brackets after each (e.g. [dcr-default-scopes]).")
