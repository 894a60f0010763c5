"""Expanding `mcp_servers:` entries into the primitives the engine knows.

`expand_mcp_servers(spec)` is pure: it returns a new RealmSpec whose primitive
sections (client_scopes, clients, client_registration, client_policies,
settings) also hold what each MCP server needs, plus `groups`, which names the
MCP server every generated object came from so plans can show them under it.

What one server becomes (Keycloak's MCP guide, checked against Keycloak 26.7.3):

* one client scope per MCP scope: realm type `optional`, shown on the consent
  screen with the server's text, listed in the token's `scope` claim;
* audience binding, on each of those scopes (a DCR or CIMD client only gets the
  scopes it asks for, so the audience has to ride on them, not on a realm
  default scope -- keycloak#50807 drops those for DCR clients before 26.8):
  - a client-audience mapper naming the resource client `<server>-resource`,
    whose `resource_url` attribute is the server URL. With Keycloak's
    `resource-indicators` feature on, a token request with `resource=<url>` is
    accepted only when a client in the token's audience has that
    `resource_url`, and the audience then becomes exactly `[<url>]`. Without a
    resource client Keycloak answers `invalid_target` to every MCP client
    (they MUST send `resource`), so both binding modes create it;
  - `mapper` mode only: a custom audience mapper per URL (the server URL and
    each extra audience), so tokens carry the URL also when the feature is off;
* `admin_role`: on each admin scope (a scope that admin tools require, not the
  base scope and not required by any other tool) the role as a role scope
  mapping (`scope_roles`) and a realm-roles mapper. Anonymous DCR clients are
  registered with full scope disabled and, before 26.8, without the `roles`
  scope, so this is how their tokens carry `realm_access.roles` = the admin
  role. Keycloak grants a scope with role mappings only to users holding one
  of its roles, so the admin scope is granted to admins only (checked on
  26.7.3: others get the token without it); the base scope gets no mappings;
* `token_validation: introspection`: a confidential service-account client the
  server introspects with. Keycloak (26.7+) refuses introspection by a client
  that is not in the token's audience, and with resource indicators the
  audience is exactly the server URL, so the client gets
  `allow.token.introspection.without.audience.check` (the server still checks
  `aud` itself);
* `downstream` APIs (standard token exchange V2, RFC 8693; no token
  passthrough): a dedicated confidential exchange client whose client_id is
  the server URL, with `standard.token.exchange.enabled` and nothing else (no
  flows, no service account: its secret can only exchange, never mint tokens
  of its own, unlike the introspection client's). Keycloak exchanges only a
  token whose `aud` holds the requester's client_id, and the URL is the one
  audience every user token of the server has in both binding modes (with
  resource indicators `aud` is exactly the URL). Per API a default scope
  `<server>-downstream-<api>` with a client-audience mapper (an audience the
  requester's own tokens cannot carry is refused: 400 "Requested audience not
  available"), and the APIs' scopes as optional scopes; each API missing from
  the file becomes a confidential client with no flows, each scope missing a
  plain one (realm type none). Checked on 26.7.3, both binding modes;
* realm settings the MCP spec needs, where the file does not set them:
  refresh token rotation (A47) and short access tokens (A46; the shortest
  lifespan any server asks for, 5 minutes by default);
* PKCE S256 for every client: profile and policy `mcp-pkce` (`pkce-enforcer`
  with auto-configure on: with it off, Keycloak refuses to create or register
  any client that does not already carry S256, DCR clients included);
* `dcr` entries and the `mcp-inspector` preset: the realm's anonymous
  registration policies (trusted hosts, allowed client scopes = the servers'
  scopes + offline_access, which the MCP SDK adds when Keycloak advertises it,
  allowed registration web origins);
* `cimd` entries and the vscode / claude-code / claude-desktop presets: a client
  profile with the `client-id-metadata-document` executor and a client policy
  with the `client-id-uri` condition, both named `<server>-<kind>`;
* `client` entries: the client, with the server's scopes added to its optional
  scopes (the client asks for them with `scope=`, like every MCP client), and
  with `sender_constraint: dpop` when the server has it (and the client writes
  none): the server then refuses tokens that are not DPoP-bound. DCR and CIMD
  clients are not bound by this (they are not in the file).

Values the file writes itself always win over kcprov's defaults; two values
the file writes for the same thing must agree, or expansion fails with a
SpecError naming both places. Identical duplicates merge silently.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from kcprov.spec.findings import Finding
from kcprov.spec.known import BUILTIN_SCOPES
from kcprov.spec.models import (
    Client,
    ClientPolicies,
    ClientPolicy,
    ClientProfile,
    ClientRegistration,
    ClientScope,
    McpCimd,
    McpServer,
    ProtocolMapper,
    RealmSettings,
    RealmSpec,
    RegistrationPolicy,
)
from kcprov.mcp_clients import CIMD_PRESETS, CLAUDE_COMBINED, DCR_PRESETS, CimdPreset
from kcprov.spec.problems import Problem, SpecError
from kcprov.spec.yamldoc import Path

Groups = dict[tuple[str, str], str]

# ---------------------------------------------------------------- fixed names and values

PKCE_NAME = "mcp-pkce"
DEFAULT_ACCESS_TOKEN_LIFESPAN = 300
RESOURCE_CLIENT_SUFFIX = "-resource"
RESOURCE_URL_ATTRIBUTE = "resource_url"
INTROSPECTION_WITHOUT_AUDIENCE = "allow.token.introspection.without.audience.check"
SDK_EXTRA_SCOPES = ("offline_access",)
"""Scopes the MCP SDK adds to the DCR request beyond the server's (SEP-2207: offline_access
when the AS lists it in scopes_supported, which Keycloak does)."""
INTROSPECTION_DEFAULT_SCOPES = ("basic", "roles")
"""Keycloak default scopes the introspection client keeps (sub, service-account roles)."""

NO_LOGINS = {"standard_flow": False, "implicit_flow": False, "direct_access_grants": False}
"""What a generated client that never logs a user in sets: the resource, introspection, exchange and API clients."""
TOKEN_EXCHANGE_ATTRIBUTE = "standard.token.exchange.enabled"
EXCHANGE_DEFAULT_SCOPES = ("basic", "roles")
"""Keycloak default scopes the exchange client keeps: `sub` (basic) and the user's roles, for the API to authorise per user."""

# RegistrationPolicy option -> the registration policy component holding it (see
# kcprov.resources.registration; the plan key is "anonymous/<provider>").
REGISTRATION_PROVIDERS = {
    "trusted_hosts": "trusted-hosts",
    "host_sending_request_must_match": "trusted-hosts",
    "client_uris_must_match": "trusted-hosts",
    "allowed_client_scopes": "allowed-client-templates",
    "allow_default_scopes": "allowed-client-templates",
    "max_clients": "max-clients",
    "allowed_web_origins": "registration-web-origins",
}

# Mapper names on each generated scope.
AUDIENCE_MAPPER = "mcp-audience"
RESOURCE_AUDIENCE_MAPPER = "mcp-resource-audience"
DOWNSTREAM_AUDIENCE_MAPPER = "downstream"  # on <server>-downstream-<api>, a default scope of the exchange client
REALM_ROLES_MAPPER = "mcp-realm-roles"  # admin scopes only
REALM_ROLES_CONFIG = {"claim.name": "realm_access.roles", "jsonType.label": "String", "multivalued": "true",
                      "access.token.claim": "true", "id.token.claim": "false", "introspection.token.claim": "true"}

# client-id-metadata-document executor (Keycloak 26.6+, feature `cimd`); keys read from
# AbstractClientIdMetadataDocumentExecutorFactory / ClientIdMetadataDocumentExecutorFactory.
CIMD_EXECUTOR = "client-id-metadata-document"
CIMD_ALLOW_HTTP = "cimd-allow-http-scheme"
CIMD_TRUSTED_DOMAINS = "cimd-allow-permitted-domains"
CIMD_RESTRICT_SAME_DOMAIN = "cimd-restrict-same-domain"
CIMD_REQUIRED_PROPERTIES = "cimd-required-properties"
CIMD_ONLY_CONFIDENTIAL = "only-allow-confidential-client"
# Keycloak 26.8+ only (26.7 stores and ignores them):
CIMD_ACCEPT_PUBLIC_CONFIDENTIAL_GRANTS = "accept-public-client-with-confidential-client-only-grant"
CIMD_RESOURCE_ALLOW_LIST = "cimd-resource-indicator-allow-list"
CIMD_26_8_KEYS = (CIMD_ACCEPT_PUBLIC_CONFIDENTIAL_GRANTS, CIMD_RESOURCE_ALLOW_LIST)
# client-id-uri condition (ClientIdUriSchemeConditionFactory).
CIMD_CONDITION = "client-id-uri"
CONDITION_SCHEME = "client-id-uri-scheme"
CONDITION_TRUSTED_DOMAINS = "client-id-uri-allow-permitted-domains"


def resource_client_id(server: McpServer) -> str:
    """The client that represents the server for RFC 8707 (`resource_url` = its URL)."""
    return f"{server.name}{RESOURCE_CLIENT_SUFFIX}"


def exchange_client_id(server: McpServer) -> str:
    """The confidential client the server exchanges user tokens with: client_id = the server URL.

    Keycloak exchanges a subject token only for a client whose client_id is in the
    token's `aud`, and with the resource-indicators feature on, a token MCP clients
    get (they send `resource`) has exactly `aud` = [server URL], whatever mappers
    add. The URL is the one audience every user token of the server carries in
    both binding modes (mapper mode: the `mcp-audience` mapper), so the exchange
    client is named by it and needs no audience mapper of its own.
    """
    return server.url


def audience_scope(server: McpServer, api: str) -> str:
    """The exchange client's default scope that makes `api` an audience it may request.

    Keycloak grants an exchange only for an audience the requester's own tokens
    could carry (else 400 "Requested audience not available"). A scope, not a
    mapper on the client: the client_id is a URL, and a client mapper's key
    (`<client_id>/<mapper>`) would not survive the slash.
    """
    return f"{server.name}-{DOWNSTREAM_AUDIENCE_MAPPER}-{api}"


def admin_scopes(server: McpServer) -> list[str]:
    """Scopes that get `admin_role` as role scope mapping: required by admin tools only, never the base scope.

    A scope with role mappings is granted only to holders of those roles, so a scope that
    other tools (or every client, the base scope) need must stay unmapped.
    """
    if not server.admin_role:
        return []
    tools = server.tool_scopes or {}
    admin = set(server.admin_tools or ())
    shared = {scope for tool, scope in tools.items() if tool not in admin}
    wanted = {tools[t] for t in admin}
    return [s for s in list(server.scopes)[1:] if s in wanted and s not in shared]


def audiences(server: McpServer) -> list[str]:
    """Audiences the server accepts: its URL first, then the extra audiences."""
    return list(dict.fromkeys([server.url, *(server.extra_audiences or [])]))


# ---------------------------------------------------------------- errors


@dataclass(frozen=True, order=True)
class ExpansionProblem(Problem):
    """A conflict found while expanding; `file` names the realm, `message` the YAML path."""

    def __str__(self) -> str:
        text = f"{self.file}: error: {self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class McpExpansionError(SpecError):
    """The MCP servers of a realm file contradict each other or the file's own objects."""

    def __init__(self, realm: str, findings: list[Finding]):
        self.findings = findings
        super().__init__([
            ExpansionProblem(f"realm '{realm}'", 0, 0, f"{dotted(f.path)}: {f.message}"
                             + (f" (also at {dotted(f.first)})" if f.first else ""), f.hint)
            for f in findings
        ])


def dotted(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# ---------------------------------------------------------------- public API


def expand_mcp_servers(spec: RealmSpec) -> tuple[RealmSpec, Groups]:
    """The realm with every MCP server expanded into primitives, and the server of each object.

    Raises McpExpansionError (a SpecError) when two things the file writes contradict.
    """
    if not spec.mcp_servers:
        return spec, {}
    expansion = _Expansion(spec)
    expansion.run()
    if expansion.findings:
        raise McpExpansionError(spec.realm, expansion.findings)
    return expansion.result(), expansion.groups


def expansion_findings(spec: RealmSpec) -> list[Finding]:
    """Conflicts expansion would raise, as path findings (for `kcprov validate` to locate)."""
    if not spec.mcp_servers:
        return []
    expansion = _Expansion(spec)
    expansion.run()
    return expansion.findings


# ---------------------------------------------------------------- the expansion


@dataclass
class _Cimd:
    """One CIMD profile + policy pair before overlapping ones are merged."""

    name: str
    server: str
    path: Path
    label: str
    executor: dict[str, Any]
    schemes: list[str]
    client_id_domains: list[str]
    resources: list[str] = field(default_factory=list)


@dataclass
class _Sourced:
    value: Any
    path: Path


class _Expansion:
    def __init__(self, spec: RealmSpec):
        self.spec = spec
        self.findings: list[Finding] = []
        self.groups: Groups = {}
        self.scopes: dict[str, ClientScope] = {s.name: s for s in spec.client_scopes}
        self.scope_paths: dict[str, Path] = {s.name: ("client_scopes", i) for i, s in enumerate(spec.client_scopes)}
        self.scope_owner: dict[str, str] = {}
        self.clients: dict[str, Client] = {c.client_id: c for c in spec.clients}
        self.client_paths: dict[str, Path] = {c.client_id: ("clients", i) for i, c in enumerate(spec.clients)}
        policies = spec.client_policies or ClientPolicies()
        self.profiles: dict[str, ClientProfile] = {p.name: p for p in policies.profiles}
        self.profile_paths: dict[str, Path] = {p.name: ("client_policies", "profiles", i)
                                               for i, p in enumerate(policies.profiles)}
        self.policies: dict[str, ClientPolicy] = {p.name: p for p in policies.policies}
        self.policy_paths: dict[str, Path] = {p.name: ("client_policies", "policies", i)
                                              for i, p in enumerate(policies.policies)}
        self.registration: RegistrationPolicy | None = None
        self.settings: RealmSettings | None = spec.settings
        self.cimd: list[_Cimd] = []

    # -- helpers -------------------------------------------------------------------
    def conflict(self, path: Path, message: str, hint: str, first: Path | None = None) -> None:
        self.findings.append(Finding(path, message, hint, first))

    def label(self, kind: str, key: str, server: str) -> None:
        self.groups.setdefault((kind, key), server)

    # -- driver --------------------------------------------------------------------
    def run(self) -> None:
        for i, server in enumerate(self.spec.mcp_servers):
            base: Path = ("mcp_servers", i)
            self.add_scopes(server, base)
            self.add_resource_client(server, base)
            if server.token_validation == "introspection":
                self.add_introspection_client(server, base)
            if server.downstream:
                self.add_downstream(server, base)
            for j, entry in enumerate(server.clients):
                where = (*base, "clients", j)
                if entry.client is not None:
                    self.add_client_entry(server, entry.client, (*where, "client"))
                elif entry.cimd is not None:
                    self.add_cimd(server, entry.cimd, (*where, "cimd"))
                elif entry.preset in CIMD_PRESETS:
                    self.add_preset(server, entry.preset, (*where, "preset"))
        self.add_registration()
        self.add_cimd_policies()
        self.add_pkce()
        self.add_settings()

    def result(self) -> RealmSpec:
        original = self.spec.client_registration
        registration = original
        if self.registration is not None:
            registration = ClientRegistration(
                anonymous=self.registration, authenticated=original.authenticated if original else None
            )
        policies = self.spec.client_policies
        if self.profiles or self.policies:
            policies = ClientPolicies(profiles=list(self.profiles.values()), policies=list(self.policies.values()))
        return self.spec.model_copy(update={
            "client_scopes": list(self.scopes.values()),
            "clients": list(self.clients.values()),
            "client_registration": registration,
            "client_policies": policies,
            "settings": self.settings,
        })

    # -- scopes --------------------------------------------------------------------
    def add_scopes(self, server: McpServer, base: Path) -> None:
        mappers = [ProtocolMapper(name=RESOURCE_AUDIENCE_MAPPER, client_audience=resource_client_id(server))]
        if server.audience_binding == "mapper":
            for n, audience in enumerate(audiences(server), start=1):
                name = AUDIENCE_MAPPER if n == 1 else f"{AUDIENCE_MAPPER}-{n}"
                mappers.append(ProtocolMapper(name=name, audience=audience))
        admin = admin_scopes(server)
        admin_mappers = [ProtocolMapper(name=REALM_ROLES_MAPPER, protocol_mapper="oidc-usermodel-realm-role-mapper",
                                        config=REALM_ROLES_CONFIG)]
        for name, text in server.scopes.items():
            path = (*base, "scopes", name)
            if name in self.scope_owner:
                self.conflict(path, f"scope '{name}' is also a scope of MCP server '{self.scope_owner[name]}'",
                              "each MCP server needs its own scope names: a scope carries its server's audience",
                              self.scope_paths[name])
                continue
            generated = ClientScope(
                name=name,
                description=f"MCP server '{server.name}' ({server.url})",
                type="optional",
                protocol="openid-connect",
                include_in_token_scope=True,
                display_on_consent_screen=True,
                consent_screen_text=text,
                mappers=[*mappers, *admin_mappers] if name in admin else mappers,
                scope_roles={"realm": [server.admin_role]} if name in admin else None,
            )
            self.scope_owner[name] = server.name
            self.put_scope(server, generated, path)
            if name in admin:
                self.label("scope_roles", name, server.name)

    # -- clients -------------------------------------------------------------------
    def add_resource_client(self, server: McpServer, base: Path) -> None:
        generated = Client(
            client_id=resource_client_id(server),
            name=f"MCP server {server.name}",
            description=f"The resource server {server.url} (RFC 8707 resource indicator); no logins",
            confidential=True,
            **NO_LOGINS,
            service_account=False,
            attributes={RESOURCE_URL_ATTRIBUTE: server.url},
        )
        self.put_client(server, generated, base)

    def add_introspection_client(self, server: McpServer, base: Path) -> None:
        base_scope = next(iter(server.scopes))
        generated = Client(
            client_id=server.introspection_client,
            name=f"MCP server {server.name} (token introspection)",
            confidential=True,
            service_account=True,
            **NO_LOGINS,
            default_scopes=[*INTROSPECTION_DEFAULT_SCOPES, base_scope],
            attributes={INTROSPECTION_WITHOUT_AUDIENCE: "true"},
        )
        self.put_client(server, generated, (*base, "introspection_client"), defaults={"name", "default_scopes"})

    # -- downstream APIs (standard token exchange) -----------------------------------
    def add_downstream(self, server: McpServer, base: Path) -> None:
        """The exchange client, each downstream API's client and scopes; refuses setups that defeat the exchange."""
        exchanger = exchange_client_id(server)
        if not self.downstream_servable(server, base):
            return
        # model_construct: the client_id is the server URL (validated as one), outside the file's ClientId rule.
        generated = Client.model_construct(
            client_id=exchanger,
            name=f"MCP server {server.name} (token exchange)",
            description=f"Exchanges the tokens {server.url} receives for tokens of the APIs it calls; no logins",
            confidential=True,
            service_account=False,
            **NO_LOGINS,
            default_scopes=[*EXCHANGE_DEFAULT_SCOPES, *(audience_scope(server, d.client_id) for d in server.downstream)],
            optional_scopes=list(dict.fromkeys(s for d in server.downstream for s in d.scopes)) or None,
            attributes={TOKEN_EXCHANGE_ATTRIBUTE: "true"},
        )
        self.put_client(server, generated, (*base, "downstream"), defaults={"name", "description"})
        for j, downstream in enumerate(server.downstream):
            where = (*base, "downstream", j)
            self.put_scope(server, ClientScope(
                name=audience_scope(server, downstream.client_id),
                description=f"kcprov: MCP server '{server.name}' may exchange tokens for {downstream.client_id}",
                type="none",
                protocol="openid-connect",
                include_in_token_scope=False,
                display_on_consent_screen=False,
                mappers=[ProtocolMapper(name=DOWNSTREAM_AUDIENCE_MAPPER, client_audience=downstream.client_id)],
            ), (*where, "client_id"))
            if downstream.client_id not in self.clients:
                self.put_client(server, Client(
                    client_id=downstream.client_id,
                    name=f"API {downstream.client_id}",
                    description=f"Receives tokens MCP server {server.name} gets by token exchange; no logins",
                    confidential=True,
                    service_account=False,
                    **NO_LOGINS,
                ), (*where, "client_id"))
            for scope in downstream.scopes:
                if scope not in self.scopes and scope not in BUILTIN_SCOPES:
                    self.put_scope(server, ClientScope(
                        name=scope,
                        description=f"Asked for by MCP server '{server.name}' in tokens for {downstream.client_id}",
                        type="none",
                        protocol="openid-connect",
                        include_in_token_scope=True,
                        display_on_consent_screen=False,
                    ), (*where, "scopes"))

    def put_scope(self, server: McpServer, generated: ClientScope, path: Path) -> None:
        """A generated scope, merged with the file's scope of that name (which must agree with it), and its labels."""
        name = generated.name
        if name in self.scopes:
            self.scopes[name] = self.fill(self.scopes[name], generated, self.scope_paths[name], path,
                                          f"client scope '{name}'", defaults={"description"})
        else:
            self.scopes[name] = generated
            self.scope_paths[name] = path
        self.label("client_scope", name, server.name)
        for mapper in generated.mappers:
            self.label("scope_mapper", f"{name}/{mapper.name}", server.name)

    def downstream_servable(self, server: McpServer, base: Path) -> bool:
        """Record a finding for each downstream setup that would defeat the exchange; False if any.

        (A URL-named exchange client cannot be public or clash with the introspection
        client: a client_id in the file cannot hold '/'.)
        """
        before = len(self.findings)
        owners = {scope: other.name for other in self.spec.mcp_servers for scope in other.scopes}
        itself = {resource_client_id(server), server.introspection_client}
        seen: dict[str, int] = {}
        for j, downstream in enumerate(server.downstream):
            where = (*base, "downstream", j, "client_id")
            cid = downstream.client_id
            if cid in seen:
                self.conflict(where, f"downstream '{cid}' is listed twice",
                              "list each API once, with all the scopes it needs", (*base, "downstream", seen[cid], "client_id"))
            seen.setdefault(cid, j)
            if cid in itself:
                self.conflict(where, f"downstream '{cid}' is MCP server '{server.name}' itself: a token "
                              "exchanged for its own audience is the passthrough token exchange exists to avoid",
                              "name the client of the API the server calls")
            client = self.clients.get(cid)
            if client is not None and client.confidential is False:
                self.conflict(where, f"downstream '{cid}' is a public client (confidential: false): an API only "
                              "receives tokens, while a public client is an app anyone may log in with, no secret "
                              "needed (Keycloak would accept it as the audience; kcprov does not)",
                              f"make client '{cid}' confidential with no flows, or name another client",
                              self.client_paths[cid])
            for scope in downstream.scopes:
                if scope in owners:
                    self.conflict((*base, "downstream", j, "scopes"),
                                  f"downstream scope '{scope}' is a scope of MCP server '{owners[scope]}': "
                                  "it carries that server's audience, so the exchanged token would be accepted there too",
                                  "give the API scopes of its own")
        return len(self.findings) == before

    def add_client_entry(self, server: McpServer, client: Client, path: Path) -> None:
        defaults = set(client.default_scopes or ())
        optional = list(client.optional_scopes or ())
        optional += [s for s in server.scopes if s not in defaults and s not in optional]
        update: dict[str, Any] = {"optional_scopes": optional}
        if server.sender_constraint is not None:
            if client.sender_constraint not in (None, server.sender_constraint):
                self.conflict((*path, "sender_constraint"),
                              f"client '{client.client_id}' has sender_constraint {client.sender_constraint} but MCP "
                              f"server '{server.name}' requires {server.sender_constraint}-bound tokens",
                              "remove sender_constraint from the client; the server's applies")
            update["sender_constraint"] = server.sender_constraint  # the server refuses unbound tokens
        self.put_client(server, client.model_copy(update=update), path, user_written=True)

    def put_client(self, server: McpServer, generated: Client, path: Path, defaults: Iterable[str] = (),
                   user_written: bool = False) -> None:
        cid = generated.client_id
        if cid in self.clients:
            # optional scopes of a pre-registered client accumulate (one client may serve several servers)
            self.clients[cid] = self.fill(self.clients[cid], generated, self.client_paths[cid], path,
                                          f"client '{cid}'", defaults=set(defaults),
                                          unions={"optional_scopes"} if user_written else set())
        else:
            self.clients[cid] = generated
            self.client_paths[cid] = path
        self.label("client", cid, server.name)
        client = self.clients[cid]
        for mapper in client.mappers:
            self.label("client_mapper", f"{cid}/{mapper.name}", server.name)
        for role in client.roles:
            self.label("client_role", f"{cid}/{role.name}", server.name)
        if client.service_account_roles is not None:
            self.label("service_account_roles", cid, server.name)

    # -- merging -------------------------------------------------------------------
    def fill(self, existing: BaseModel, generated: BaseModel, first: Path, path: Path, what: str,
             defaults: set[str] = frozenset(), unions: set[str] = frozenset()) -> Any:
        """`existing` with the fields it leaves unset taken from `generated`.

        Fields both set must agree (lists as sets; `mappers` by name; `attributes`
        key by key), except `defaults` (kcprov's suggestions: existing wins) and
        `unions` (lists that accumulate).
        """
        identity = "client_id" if isinstance(generated, Client) else "name"
        update: dict[str, Any] = {}
        for name in type(generated).model_fields:
            mine, theirs = getattr(existing, name), getattr(generated, name)
            if name == identity or theirs is None or theirs == []:
                continue
            if mine is None or mine == []:
                update[name] = theirs
            elif name in unions:
                update[name] = list(dict.fromkeys([*mine, *theirs]))
            elif name == "mappers":
                merged = {m.name: m for m in mine}
                for m in theirs:
                    if m.name in merged and merged[m.name] != m:
                        self.conflict((*path, "mappers"), f"{what}: mapper '{m.name}' is defined differently",
                                      "give the mapper another name, or write it the way kcprov generates it",
                                      (*first, "mappers"))
                    merged.setdefault(m.name, m)
                update[name] = list(merged.values())
            elif name == "attributes":
                clash = [k for k, v in theirs.items() if k in mine and mine[k] != v]
                if clash:
                    self.conflict((*path, name), f"{what}: attribute {', '.join(clash)} differs from what "
                                  "the MCP server needs", "remove it from the file; kcprov sets it", first)
                update[name] = {**theirs, **mine}
            elif name in defaults or _same(mine, theirs):
                continue
            else:
                self.conflict((*path, name),
                              f"{what}: {name} is {_show(mine)} in one place and {_show(theirs)} in another",
                              f"remove {name} from one of them, or make both the same", (*first, name))
        return existing.model_copy(update=update) if update else existing

    # -- dynamic client registration ---------------------------------------------------
    def add_registration(self) -> None:
        dcr_servers: list[tuple[McpServer, Path]] = []
        entries: list[tuple[RegistrationPolicy, Path, str]] = []
        presets: list[tuple[str, Path]] = []
        for i, server in enumerate(self.spec.mcp_servers):
            for j, entry in enumerate(server.clients):
                where = ("mcp_servers", i, "clients", j)
                if entry.dcr is not None:
                    entries.append((entry.dcr, (*where, "dcr"), server.name))
                    dcr_servers.append((server, where))
                elif entry.preset in DCR_PRESETS:
                    presets.append((entry.preset, (*where, "preset")))
                    dcr_servers.append((server, where))
        if not dcr_servers:
            return
        primitive = self.spec.client_registration.anonymous if self.spec.client_registration else None
        sources: list[tuple[RegistrationPolicy, Path]] = []
        if primitive is not None:
            sources.append((primitive, ("client_registration", "anonymous")))
        sources += [(policy, path) for policy, path, _ in entries]

        agreed: dict[str, Any] = {}
        for option in ("trusted_hosts", "host_sending_request_must_match", "client_uris_must_match",
                       "allow_default_scopes", "max_clients"):
            seen: _Sourced | None = None
            for policy, path in sources:
                value = getattr(policy, option)
                if value is None:
                    continue
                if seen is None:
                    seen = _Sourced(value, path)
                elif not _same(seen.value, value):
                    self.conflict((*path, option),
                                  f"{option} {_show(value)} contradicts {_show(seen.value)}: the realm has one "
                                  "anonymous registration policy for all MCP servers",
                                  f"write the same {option} everywhere, or set it in one place only", (*seen.path, option))
            if seen is not None:
                agreed[option] = seen.value

        trusted = list(agreed.get("trusted_hosts") or [])
        for name, _ in presets:
            trusted += [h for h in DCR_PRESETS[name].trusted_hosts if h not in trusted]
        from_anywhere = [(name, path) for name, path in presets if DCR_PRESETS[name].from_anywhere]
        if from_anywhere and agreed.get("host_sending_request_must_match") is True:
            name, path = from_anywhere[0]
            self.conflict(path, f"preset {name}: {DCR_PRESETS[name].label} registers from the user's machine or its "
                          "vendor's servers, never from a trusted host, so host_sending_request_must_match: true "
                          "refuses it", "remove host_sending_request_must_match (the preset turns it off), or the preset")
        elif from_anywhere:
            agreed["host_sending_request_must_match"] = False
        scopes: list[str] = []
        for policy, _ in sources:
            scopes += policy.allowed_client_scopes or []
        for server, _ in dcr_servers:
            scopes += list(server.scopes)
        scopes += SDK_EXTRA_SCOPES
        origins: list[str] = []
        for policy, _ in sources:
            origins += policy.allowed_web_origins or []
        for name, _ in presets:
            origins += DCR_PRESETS[name].web_origins
        self.registration = RegistrationPolicy(
            trusted_hosts=trusted or None,
            host_sending_request_must_match=agreed.get("host_sending_request_must_match"),
            client_uris_must_match=agreed.get("client_uris_must_match", True),
            allowed_client_scopes=list(dict.fromkeys(scopes)),
            allow_default_scopes=agreed.get("allow_default_scopes", True),
            max_clients=agreed.get("max_clients"),
            allowed_web_origins=list(dict.fromkeys(origins)) or None,
        )
        owner = dcr_servers[0][0].name
        for option in self.registration.model_dump(exclude_none=True):
            self.label("registration_policy", f"anonymous/{REGISTRATION_PROVIDERS[option]}", owner)

    # -- client ID metadata documents ---------------------------------------------------
    def add_cimd(self, server: McpServer, cimd: McpCimd, path: Path) -> None:
        domains = list(cimd.trusted_domains or [])
        executor: dict[str, Any] = {
            CIMD_ALLOW_HTTP: bool(cimd.allow_http),
            CIMD_TRUSTED_DOMAINS: domains,
            CIMD_RESTRICT_SAME_DOMAIN: bool(cimd.restrict_same_domain),
            CIMD_ONLY_CONFIDENTIAL: bool(cimd.only_confidential),
        }
        if cimd.required_properties:
            executor[CIMD_REQUIRED_PROPERTIES] = list(cimd.required_properties)
        if cimd.accept_public_client_with_confidential_grant_types is not None:
            executor[CIMD_ACCEPT_PUBLIC_CONFIDENTIAL_GRANTS] = cimd.accept_public_client_with_confidential_grant_types
        schemes = ["http", "https"] if cimd.allow_http else ["https"]
        self.cimd.append(_Cimd(f"{server.name}-cimd", server.name, path, "client ID metadata documents",
                               executor, schemes, domains, [server.url]))

    def add_preset(self, server: McpServer, preset: str, path: Path) -> None:
        self.cimd.append(self.preset_cimd(server.name, preset, CIMD_PRESETS[preset], path, [server.url]))

    @staticmethod
    def preset_cimd(server: str, kind: str, preset: CimdPreset, path: Path, resources: list[str]) -> _Cimd:
        executor: dict[str, Any] = {
            CIMD_ALLOW_HTTP: False,
            CIMD_TRUSTED_DOMAINS: list(preset.trusted_domains),
            CIMD_RESTRICT_SAME_DOMAIN: preset.restrict_same_domain,
            CIMD_ONLY_CONFIDENTIAL: False,
        }
        if preset.accept_public_client_with_confidential_grant_types is not None:
            executor[CIMD_ACCEPT_PUBLIC_CONFIDENTIAL_GRANTS] = preset.accept_public_client_with_confidential_grant_types
        return _Cimd(f"{server}-{kind}", server, path, preset.label, executor, ["https"],
                     list(preset.client_id_domains), list(resources))

    def add_cimd_policies(self) -> None:
        items = self.combine_claude(self.cimd)
        merged: list[_Cimd] = []
        for item in items:
            for kept in merged:
                if not _domains_overlap(kept.client_id_domains, item.client_id_domains):
                    continue
                if kept.executor == item.executor and kept.schemes == item.schemes \
                        and sorted(kept.client_id_domains) == sorted(item.client_id_domains):
                    kept.resources = list(dict.fromkeys([*kept.resources, *item.resources]))
                else:
                    self.conflict(item.path, f"{item.label} client_ids on {', '.join(item.client_id_domains)} are "
                                  f"also accepted by '{kept.name}' with other settings: Keycloak would apply both "
                                  "profiles and each can reject what the other accepts",
                                  "give the MCP servers the same entry (same preset or same cimd settings), or "
                                  "list the domain on one server only", kept.path)
                break
            else:
                merged.append(item)
        for item in merged:
            executor = {**item.executor, CIMD_RESOURCE_ALLOW_LIST: item.resources}
            profile = ClientProfile.model_validate({
                "name": item.name,
                "description": f"kcprov: accept {item.label} (MCP server {item.server})",
                "executors": [{"type": CIMD_EXECUTOR, "config": executor}],
            })
            policy = ClientPolicy.model_validate({
                "name": item.name,
                "description": f"kcprov: client_id URLs of {item.label} (MCP server {item.server})",
                "enabled": True,
                "conditions": [{"type": CIMD_CONDITION, "config": {
                    CONDITION_SCHEME: item.schemes, CONDITION_TRUSTED_DOMAINS: item.client_id_domains}}],
                "profiles": [item.name],
            })
            self.put_policy_pair(item.server, profile, policy, item.path)

    def combine_claude(self, items: list[_Cimd]) -> list[_Cimd]:
        """Claude Code + Claude Desktop anywhere in the realm: one profile for both (guide's note)."""
        code = [c for c in items if c.name.endswith("-claude-code") and c.path[-1] == "preset"]
        desktop = [c for c in items if c.name.endswith("-claude-desktop") and c.path[-1] == "preset"]
        if not code or not desktop:
            return items
        first = min(code + desktop, key=lambda c: c.path)
        resources = list(dict.fromkeys(r for c in code + desktop for r in c.resources))
        combined = self.preset_cimd(first.server, "claude", CLAUDE_COMBINED, first.path, resources)
        out: list[_Cimd] = []
        for c in items:
            if c in code or c in desktop:
                if combined not in out:
                    out.append(combined)
            else:
                out.append(c)
        return out

    def put_policy_pair(self, server: str, profile: ClientProfile, policy: ClientPolicy, path: Path) -> None:
        for kind, obj, store, paths in (("client_profile", profile, self.profiles, self.profile_paths),
                                        ("client_policy", policy, self.policies, self.policy_paths)):
            if obj.name in store and store[obj.name] != obj:
                self.conflict(path, f"client {kind.split('_')[1]} '{obj.name}' is already defined differently",
                              f"rename the {kind.replace('_', ' ')} in the file; kcprov generates '{obj.name}'",
                              paths[obj.name])
                continue
            store.setdefault(obj.name, obj)
            paths.setdefault(obj.name, path)
            self.label(kind, obj.name, server)

    # -- PKCE ------------------------------------------------------------------------
    def add_pkce(self) -> None:
        profile = ClientProfile.model_validate({
            "name": PKCE_NAME,
            "description": "kcprov: PKCE with S256 for every client (MCP authorization)",
            "executors": [{"type": "pkce-enforcer", "config": {"auto-configure": True}}],
        })
        policy = ClientPolicy.model_validate({
            "name": PKCE_NAME,
            "description": "kcprov: PKCE with S256 for every client (MCP authorization)",
            "enabled": True,
            "conditions": [{"type": "any-client", "config": {}}],
            "profiles": [PKCE_NAME],
        })
        self.put_policy_pair(self.spec.mcp_servers[0].name, profile, policy, ("mcp_servers", 0))

    # -- realm settings ------------------------------------------------------------------
    def add_settings(self) -> None:
        lifespans = [s.access_token_lifespan for s in self.spec.mcp_servers if s.access_token_lifespan is not None]
        wanted = {
            "revoke_refresh_token": True,
            "refresh_token_max_reuse": 0,
            "access_token_lifespan": min(lifespans, default=DEFAULT_ACCESS_TOKEN_LIFESPAN),
        }
        current = self.settings or RealmSettings()
        update = {k: v for k, v in wanted.items() if getattr(current, k) is None}
        if update:
            self.settings = current.model_copy(update=update)
            self.label("realm", self.spec.realm, self.spec.mcp_servers[0].name)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return sorted(map(str, a)) == sorted(map(str, b))
    return a == b


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def _domains_overlap(a: list[str], b: list[str]) -> bool:
    return any(x == y or fnmatch.fnmatch(x, y) or fnmatch.fnmatch(y, x) for x in a for y in b)
