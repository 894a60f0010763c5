"""Plan-time checks: setups that will not work, or not the way the MCP spec wants.

Pure functions of the realm file, Keycloak's `GET /admin/serverinfo` answer
(None when unknown) and the Keycloak URL. `errors` are setups that cannot
work (apply would fail, or no MCP client could ever get a usable token);
`warnings` are legal but risky or surprising. Each message names the MCP
server (when there is one) and says what to do.

Facts behind them were checked against Keycloak 26.7.3:
* with the `resource-indicators` feature, a token request carrying
  `resource=<url>` is refused (`invalid_target`) unless a client in the
  token's audience has `resource_url` = url; the audience then becomes
  exactly `[url]` (extra audiences are dropped);
* without the feature, Keycloak ignores `resource`;
* before 26.8.0 a DCR client that asks for scopes gets only `basic` as default
  scope (keycloak#50807), and anonymous DCR clients are registered with full
  scope disabled, so their tokens carry only roles that their scopes map (role
  scope mappings; a scope with some is granted only to holders of one of them);
* client credentials with `resource=` answers HTTP 500 on 26.7.3 (a refresh
  token is expected by the resource-indicators post-processor);
* the CIMD executor options `accept-public-client-with-confidential-client-only-grant`
  and `cimd-resource-indicator-allow-list` exist from 26.8 on; 26.7 ignores them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from kcprov.errors import KcprovError
from kcprov.plan.changes import PlanWarning
from kcprov.mcp_clients import CIMD_PRESETS, DCR_PRESETS
from kcprov.spec.expand import DEFAULT_ACCESS_TOKEN_LIFESPAN, admin_scopes, audiences
from kcprov.spec.models import Client, McpServer, RealmSpec
from kcprov.spec.user_profile import allows
from kcprov.urls import is_loopback

FIXED_DCR_VERSION = (26, 8, 0)
CIMD_FEATURE = "CIMD"
RESOURCE_INDICATORS_FEATURE = "RESOURCE_INDICATORS"


@dataclass(frozen=True)
class SetupIssue:
    """One finding; `id` is stable (a warning's is in kcprov.spec.quiet.WARNINGS: files and CI scripts name it)."""

    id: str
    level: Literal["error", "warning"]
    message: str
    hint: str | None = None
    server: str | None = None

    def __str__(self) -> str:
        where = f"MCP server '{self.server}': " if self.server else ""
        return f"{where}{self.message}" + (f" ({self.hint})" if self.hint else "")


class SetupError(KcprovError):
    """The realm file describes an MCP setup this Keycloak cannot serve."""


def check_setup(spec: RealmSpec, server_info: dict | None, url: str) -> list[SetupIssue]:
    """Every issue, errors first."""
    found: list[SetupIssue] = []
    if server_info is not None:
        found += _feature_issues(spec, server_info)
        found += _version_issues(spec, server_info)
    found += _url_issues(spec, url)
    found += _audience_issues(spec)
    found += _registration_issues(spec, url)
    found += _token_issues(spec)
    found += _profile_issues(spec)
    return sorted(found, key=lambda i: i.level != "error")


def warnings(spec: RealmSpec, server_info: dict | None, url: str) -> list[PlanWarning]:
    """One per warning, for the plan's `warning:` lines; those the file silences (x-kcprov-quiet-warnings) left out."""
    return [PlanWarning(i.id, str(i)) for i in check_setup(spec, server_info, url)
            if i.level == "warning" and i.id not in spec.quiet_warnings]


def errors(spec: RealmSpec, server_info: dict | None, url: str) -> list[str]:
    """One line per setup that cannot work."""
    return [str(i) for i in check_setup(spec, server_info, url) if i.level == "error"]


def raise_for_errors(spec: RealmSpec, server_info: dict | None, url: str) -> None:
    """SetupError listing every error, if there is one."""
    found = errors(spec, server_info, url)
    if found:
        raise SetupError(
            f"realm '{spec.realm}' cannot work on Keycloak at {url}:\n  " + "\n  ".join(found),
            hint="fix the realm file or the Keycloak features, then run `kcprov plan` again",
        )


# ---------------------------------------------------------------- server info


def keycloak_version(server_info: dict) -> tuple[int, ...] | None:
    """(26, 7, 3) from systemInfo.version ("26.7.3", "26.8.0-SNAPSHOT"); None if unknown."""
    text = str((server_info.get("systemInfo") or {}).get("version") or "")
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(p or 0) for p in match.groups()) if match else None


def feature_enabled(server_info: dict, name: str) -> bool | None:
    """Whether a feature (CIMD, RESOURCE_INDICATORS) is on; None if the answer does not say."""
    for feature in server_info.get("features") or []:
        if str(feature.get("name", "")).upper() == name:
            return bool(feature.get("enabled"))
    profile = server_info.get("profileInfo") or {}
    known = {f for key in ("disabledFeatures", "experimentalFeatures", "previewFeatures") for f in profile.get(key) or []}
    if name in known:
        return name not in (profile.get("disabledFeatures") or [])
    return None


def _cimd_entries(server: McpServer) -> list[str]:
    return [f"preset {e.preset}" if e.preset else "cimd" for e in server.clients
            if e.cimd is not None or e.preset in CIMD_PRESETS]


def _dcr_used(server: McpServer) -> bool:
    return any(e.dcr is not None or e.preset in DCR_PRESETS for e in server.clients)


def _feature_issues(spec: RealmSpec, info: dict) -> list[SetupIssue]:
    found = []
    cimd, indicators = feature_enabled(info, CIMD_FEATURE), feature_enabled(info, RESOURCE_INDICATORS_FEATURE)
    for server in spec.mcp_servers:
        kinds = _cimd_entries(server)
        if kinds and cimd is False:
            found.append(SetupIssue("cimd-feature-off",
                "error", f"{', '.join(kinds)} needs Keycloak's 'cimd' feature, which is off: the "
                "client-id-metadata-document executor and client-id-uri condition do not exist, apply would fail",
                "start Keycloak with --features=cimd (kcprov dev up does), or remove those clients entries", server.name))
        if server.audience_binding == "resource-indicators" and indicators is False:
            found.append(SetupIssue("resource-indicators-feature-off",
                "error", "audience_binding is resource-indicators but Keycloak's 'resource-indicators' feature is "
                f"off: Keycloak ignores `resource` and no token would carry the audience {server.url}",
                "start Keycloak with --features=resource-indicators, or use audience_binding: mapper", server.name))
        if server.audience_binding == "mapper" and indicators and server.extra_audiences:
            found.append(SetupIssue("resource-indicators-audience",
                "warning", "Keycloak's 'resource-indicators' feature is on: tokens requested with "
                f"resource={server.url} (MCP clients always send it) carry only that audience, not "
                f"{', '.join(server.extra_audiences)}", "the server must accept its URL as audience", server.name))
    return found


def _version_issues(spec: RealmSpec, info: dict) -> list[SetupIssue]:
    version = keycloak_version(info)
    if version is None or version >= FIXED_DCR_VERSION:
        return []
    shown = ".".join(map(str, version))
    found = []
    dcr_servers = [s for s in spec.mcp_servers if _dcr_used(s)]
    primitive_dcr = bool(spec.client_registration and spec.client_registration.anonymous)
    if dcr_servers:
        found.append(SetupIssue("dcr-default-scopes",
            "warning", f"Keycloak {shown} (< 26.8.0) gives a DCR client that asks for scopes only 'basic' as default "
            "scope (keycloak#50807): realm default scopes (profile, email, roles) never reach it. The audience "
            "still does: kcprov puts the audience mappers on the server's optional scopes "
            f"({', '.join(dcr_servers[0].scopes)}), which the client requests",
            "Keycloak 26.8.0 fixes it", dcr_servers[0].name))
    if dcr_servers or primitive_dcr:
        for scope in spec.client_scopes:
            if scope.type == "default" and any(m.audience or m.client_audience for m in scope.mappers):
                found.append(SetupIssue("dcr-default-scope-audience",
                    "warning", f"client scope '{scope.name}' is a realm default scope with an audience mapper: on "
                    f"Keycloak {shown} DCR clients that ask for scopes do not get it (keycloak#50807), so their tokens "
                    "lack that audience", "make it an optional scope the client requests (or an MCP server scope)"))
    for server in spec.mcp_servers:
        for entry in server.clients:
            accept = entry.preset == "claude-desktop" or (
                entry.cimd is not None and entry.cimd.accept_public_client_with_confidential_grant_types)
            if accept:
                found.append(SetupIssue("claude-desktop-grant",
                    "warning", f"Keycloak {shown} ignores 'accept public client with confidential-only grant types' "
                    "(new in 26.8): Claude Desktop's metadata document (jwt-bearer grant) is rejected",
                    "use Keycloak 26.8 or later for Claude Desktop", server.name))
        if feature_enabled(info, RESOURCE_INDICATORS_FEATURE) and any(
                e.client is not None and e.client.service_account for e in server.clients):
            found.append(SetupIssue("client-credentials-resource",
                "warning", f"Keycloak {shown} answers HTTP 500 to client credentials requests that carry "
                "`resource=` (resource-indicators feature on, seen on 26.7.3)",
                "let service-account clients omit `resource` and ask for the scope instead; "
                f"the audience {server.url} comes from the scope", server.name))
    return found


# ---------------------------------------------------------------- URLs


def _insecure(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname)


def _all_clients(spec: RealmSpec) -> list[tuple[Client, str | None]]:
    found: list[tuple[Client, str | None]] = [(c, None) for c in spec.clients]
    for server in spec.mcp_servers:
        found += [(e.client, server.name) for e in server.clients if e.client is not None]
    return found


def _url_issues(spec: RealmSpec, url: str) -> list[SetupIssue]:
    found = []
    issuer = f"{url.rstrip('/')}/realms/{spec.realm}"
    if spec.mcp_servers and _insecure(issuer):
        found.append(SetupIssue("issuer-http",
            "warning", f"the issuer {issuer} is plain http on a non-loopback host: MCP requires HTTPS for every "
            "authorization server endpoint (OAuth 2.1 §1.5)", "put Keycloak behind HTTPS"))
    for server in spec.mcp_servers:
        if _insecure(server.url):
            found.append(SetupIssue("server-url-http",
                "warning", f"url {server.url} is plain http on a non-loopback host: MCP clients refuse it, and the "
                "reference server refuses to start with OAUTH_STRICT=true", "serve the MCP server over HTTPS",
                server.name))
        canonical = _canonical(server.url)
        if canonical != server.url:
            found.append(SetupIssue("server-url-not-canonical",
                "warning", f"url {server.url} is not in canonical form ({canonical}): clients compare the resource "
                "metadata's `resource` with the URL they called character for character",
                f"write url: {canonical}", server.name))
        if any(e.cimd is not None and e.cimd.allow_http for e in server.clients) and not is_loopback(
                urlsplit(url).hostname):
            found.append(SetupIssue("cimd-allow-http",
                "warning", "cimd allow_http accepts http:// client_id documents: development only",
                "remove allow_http outside development", server.name))
    for client, server in _all_clients(spec):
        for uri in client.redirect_uris or []:
            if "*" in uri:
                found.append(SetupIssue("redirect-uri-wildcard",
                    "warning", f"client '{client.client_id}' has the wildcard redirect URI {uri}: MCP requires exact "
                    "redirect URI matching (OAuth 2.1 §7.12)", "list each redirect URI exactly", server))
            elif _insecure(uri):
                found.append(SetupIssue("redirect-uri-http",
                    "warning", f"client '{client.client_id}' has the redirect URI {uri}: MCP allows only loopback "
                    "or HTTPS redirect URIs (OAuth 2.1 §1.5)", "use https:// or a loopback address", server))
    return found


def _canonical(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port in (None, default) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{parts.path}{query}"


# ---------------------------------------------------------------- audiences


def _audience_issues(spec: RealmSpec) -> list[SetupIssue]:
    found = []
    expected = {a: s.name for s in spec.mcp_servers for a in audiences(s)}
    for server in spec.mcp_servers:
        for extra in server.extra_audiences or []:
            if extra != server.url and extra.rstrip("/") == server.url.rstrip("/"):
                found.append(SetupIssue("extra-audience-slash",
                    "warning", f"extra audience {extra} differs from the url {server.url} only by a trailing '/'",
                    "audiences are compared exactly; remove it or fix the spelling", server.name))
    mappers = [(f"client scope '{s.name}'", m) for s in spec.client_scopes for m in s.mappers]
    mappers += [(f"client '{c.client_id}'", m) for c, _ in _all_clients(spec) for m in c.mappers]
    for owner, mapper in mappers:
        audience = mapper.audience
        if not audience or audience in expected:
            continue
        for server in spec.mcp_servers:
            if _same_origin(audience, server.url):
                found.append(SetupIssue("audience-mismatch",
                    "warning", f"{owner} adds the audience {audience}, which does not match the MCP server url "
                    f"{server.url}: the server accepts only tokens whose aud is its url (or an extra audience)",
                    f"use audience: {server.url}, or add {audience} to extra_audiences", server.name))
                break
    return found


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


# ---------------------------------------------------------------- registration and tokens


def _preset_issues(server: McpServer) -> list[SetupIssue]:
    """What the DCR presets of ``server`` cost: registration open to any host, and why not CIMD where it exists."""
    found = []
    for name in dict.fromkeys(e.preset for e in server.clients if e.preset in DCR_PRESETS):
        preset = DCR_PRESETS[name]
        if preset.cimd_refused:
            found.append(SetupIssue("preset-cimd-refused",
                "warning", f"preset {name}: {preset.cimd_refused}, so {preset.label} is registered by DCR (redirect "
                f"{preset.redirect_uri})", "nothing to do; switch to its metadata document once Keycloak accepts it",
                server.name))
        if preset.from_anywhere:
            found.append(SetupIssue("preset-registers-from-anywhere",
                "warning", f"preset {name}: {preset.label} registers from the user's machine or its vendor's servers, "
                "so anonymous registration accepts requests from any host (host_sending_request_must_match: false); "
                f"the registered redirect URIs must still be on {', '.join(preset.trusted_hosts)}",
                "expected for a DCR client; prefer a CIMD client or a pre-registered client where one exists",
                server.name))
    return found


def _registration_issues(spec: RealmSpec, url: str) -> list[SetupIssue]:
    found = []
    primitive = spec.client_registration.anonymous if spec.client_registration else None
    explicit_hosts = bool(primitive and primitive.trusted_hosts)
    for server in spec.mcp_servers:
        for entry in server.clients:
            if entry.dcr is not None and entry.dcr.trusted_hosts:
                explicit_hosts = True
    for server in spec.mcp_servers:
        if any(e.dcr is not None for e in server.clients) and not explicit_hosts and not any(
                e.preset in DCR_PRESETS for s in spec.mcp_servers for e in s.clients):
            found.append(SetupIssue("dcr-no-trusted-hosts",
                "warning", "dcr has no trusted_hosts: Keycloak's anonymous registration then refuses every host",
                "list the hosts MCP clients register from, e.g. trusted_hosts: [localhost, 127.0.0.1]", server.name))
        for entry in server.clients:
            if entry.cimd is not None and not entry.cimd.trusted_domains:
                found.append(SetupIssue("cimd-no-trusted-domains",
                    "warning", "cimd has no trusted_domains: Keycloak accepts no client_id document",
                    "list the domains of the client_id URLs (and of their redirect URIs)", server.name))
        found += _preset_issues(server)
        mapped = admin_scopes(server)
        unmapped = [t for t in server.admin_tools or [] if (server.tool_scopes or {})[t] not in mapped]
        if server.admin_role and _dcr_used(server) and unmapped:
            scopes = sorted({(server.tool_scopes or {})[t] for t in unmapped})
            found.append(SetupIssue("dcr-admin-role",
                "warning", f"DCR clients are registered with full scope disabled (Keycloak's anonymous 'Full Scope "
                f"Disabled' policy): their tokens carry only the roles their scopes map, and kcprov maps "
                f"'{server.admin_role}' only onto scopes that admin tools alone require. {', '.join(scopes)} "
                f"{'is' if len(scopes) == 1 else 'are'} also needed without the role (the base scope or another "
                f"tool's), so tools that require '{server.admin_role}' ({', '.join(unmapped)}) refuse DCR clients",
                "give the admin tools a scope of their own (e.g. mcp:admin), or use a pre-registered client "
                "(clients: - client: ...) for administration", server.name))
        if server.admin_tools and not server.admin_role:
            found.append(SetupIssue("admin-tools-no-role",
                "warning", f"admin tools {', '.join(server.admin_tools)} have no admin_role: only their scope "
                "protects them", "set admin_role to a realm role", server.name))
    return found


def _token_issues(spec: RealmSpec) -> list[SetupIssue]:
    found = []
    settings = spec.settings
    if spec.mcp_servers and settings is not None:
        lifespans = [s.access_token_lifespan for s in spec.mcp_servers if s.access_token_lifespan is not None]
        wanted = min(lifespans, default=DEFAULT_ACCESS_TOKEN_LIFESPAN)
        if settings.access_token_lifespan is not None and settings.access_token_lifespan > wanted:
            found.append(SetupIssue("token-lifespan",
                "warning", f"settings.access_token_lifespan is {settings.access_token_lifespan}s, longer than the "
                f"{wanted}s the MCP servers ask for: MCP wants short-lived access tokens",
                "remove settings.access_token_lifespan (kcprov then uses the servers' value) or shorten it"))
        if settings.revoke_refresh_token is False:
            found.append(SetupIssue("refresh-token-rotation",
                "warning", "settings.revoke_refresh_token is false: MCP requires refresh token rotation for public "
                "clients", "set it to true, with refresh_token_max_reuse: 0"))
        if settings.refresh_token_max_reuse:
            found.append(SetupIssue("refresh-token-reuse",
                "warning", f"settings.refresh_token_max_reuse is {settings.refresh_token_max_reuse}: a rotated "
                "refresh token can be replayed", "set it to 0"))
    if spec.mcp_servers:
        for client, server in _all_clients(spec):
            if client.pkce == "plain":
                found.append(SetupIssue("pkce-plain",
                    "warning", f"client '{client.client_id}' sets pkce: plain, but the realm's mcp-pkce policy "
                    "enforces S256 (Keycloak rewrites it on every update)", "write pkce: S256", server))
    return found


def _profile_issues(spec: RealmSpec) -> list[SetupIssue]:
    """User attributes the file's user profile neither declares nor lets admins write: Keycloak 26 drops them
    (unless the realm's profile, made outside this file, allows them)."""
    dropped = sorted({(u.username, a) for u in spec.users for a in u.attributes or {} if not allows(spec.user_profile, a)})
    if not dropped:
        return []
    shown = ", ".join(f"{user}.{attribute}" for user, attribute in dropped)
    return [SetupIssue("undeclared-user-attribute",
        "warning", f"user attributes {shown} are not declared in user_profile: Keycloak drops undeclared "
        "attributes unless the realm's unmanaged-attribute policy is ENABLED or ADMIN_EDIT",
        "declare them under user_profile.attributes, or set user_profile.unmanaged_attribute_policy: ADMIN_EDIT")]
