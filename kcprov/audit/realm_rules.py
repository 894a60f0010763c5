"""Realm-scope audit rules: a realm file after `mcp_servers:` expansion, or a live realm read back as one.

A check sees a `RealmView` and yields `(message, where)`. `where` names an
object of the expanded realm, `(kind, key, *field_path)`:

    ("client", "web", "redirect_uris", 0)     ("client_scope", "mcp:tools", "mappers", 1)
    ("realm", None, "access_token_lifespan")  ("registration", "anonymous", "trusted_hosts")
    ("mcp_server", "calculator", "scopes", "offline_access")
    ("client_profile", NAME) ("client_policy", NAME) ("identity_provider", ALIAS, ...)
    ("smtp", None, ...) ("events", None, ...)

and the view turns it into a `Location`: in a file, the line of the object
itself when the file writes it (the field's line when it is there), else the
line inside the MCP server entry it was expanded from (the scope under
`scopes:`, the `client:`/`cimd:`/`preset:`/`dcr:` item, or the server's
`- name:` line); for a live realm, the object's name.

The value a setting has when the realm spec leaves it out: the value a realm
kcprov creates from the file has, i.e. kcprov's create defaults
(`kcprov.resources.clients.CREATE_DEFAULTS`: no password grant, no implicit
flow, full scope allowed, PKCE S256 on code-flow clients, public unless a
secret or service account says otherwise) and Keycloak's new-realm values
(checked on 26.7.3: 300 s access tokens, refresh token rotation off, SSL
required for external addresses, events off, a 200-client limit on anonymous
registration that accepts no host). An export (the source of a live view)
writes exactly the fields that differ from those, so a live view reads the
same way; `kcprov.audit.live` writes the realm settings and registration
policies with their effective values, and `RealmView.absent` names the
fields a live object lacks although kcprov's create would write them (a
client without PKCE). Where neither is certain the rule says nothing; each
rule's docstring says what an unset field counts as.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from kcprov.audit.rules import REALM_CHECKS, RULES, Finding, Location, Severity, realm_rule
from kcprov.mcp_clients import CIMD_PRESETS, DCR_PRESETS
from kcprov.resources.clients import CREATE_DEFAULTS as CLIENT_CREATE_DEFAULTS
from kcprov.spec.expand import (
    CIMD_ALLOW_HTTP,
    CIMD_EXECUTOR,
    CIMD_TRUSTED_DOMAINS,
    PKCE_NAME,
    SDK_EXTRA_SCOPES,
    Groups,
    audiences,
    expand_mcp_servers,
    resource_client_id,
)
from kcprov.spec.identity_providers import OIDC_PROVIDERS, SAML
from kcprov.spec.models import Client, ClientScope, ProtocolMapper, RealmSpec, RegistrationPolicy
from kcprov.spec.problems import display_path
from kcprov.spec.yamldoc import Path as YamlPath

Where = tuple[Any, ...]
"""(kind, key, *field_path): an object of the expanded realm (see the module docstring)."""
SourceMap = Callable[[YamlPath], tuple[int, int]]
"""1-based (line, column) of the key at a YAML path of the file, or of its longest prefix present."""

# ---------------------------------------------------------------- Keycloak facts (checked on 26.7.3)

NEW_REALM = {"access_token_lifespan": 300, "revoke_refresh_token": False, "refresh_token_max_reuse": 0,
             "ssl_required": "external"}
"""RealmRepresentation values of a realm created with only its name."""
MAX_ACCESS_TOKEN_LIFESPAN = 900  # 15 minutes: the bound for "short-lived" (A46)
ACCESS_TOKEN_LIFESPAN_ATTRIBUTE = "access.token.lifespan"  # per-client override (seconds)
PKCE_ENFORCER = "pkce-enforcer"
GLOBAL_PKCE_PROFILES = frozenset({
    "fapi-1-baseline", "fapi-2-security-profile", "fapi-2-message-signing", "fapi-2-dpop-security-profile",
    "fapi-2-dpop-message-signing", "oauth-2-1-for-confidential-client", "oauth-2-1-for-public-client",
})
"""Keycloak's global client profiles holding a pkce-enforcer executor."""
AUDIENCE_MAPPER_TYPE = "oidc-audience-mapper"
OIDC_BASIC_SCOPES = frozenset({"openid", "profile", "email", "basic", "roles", "web-origins", "acr"})
"""Keycloak's built-in login scopes: no resource audience, fine for any registered client."""
GENERIC_AUDIENCES = frozenset({"api", "account", "all", "any", "default", "resource", "resources", "mcp", "*"})
ADMIN_CLIENT = "realm-management"
CIMD_CLIENT_PRESETS = frozenset(CIMD_PRESETS)  # presets that identify themselves with a metadata document
OBJECT_LABELS = {
    "realm": "realm settings", "client": "client", "client_scope": "client scope",
    "registration": "client registration", "client_profile": "client profile", "client_policy": "client policy",
    "identity_provider": "identity provider", "mcp_server": "mcp server", "smtp": "SMTP server", "events": "events",
}


# ---------------------------------------------------------------- the view


@dataclass
class RealmView:
    """What the realm rules look at: the expanded realm, the file's own `mcp_servers:`, and a locator."""

    spec: RealmSpec  # as written (mcp_servers: canonical URLs, scopes, entries)
    expanded: RealmSpec  # after expand_mcp_servers: the objects Keycloak holds
    groups: Groups  # (kind, key) -> MCP server name of every object expansion made or completed
    locate: Callable[[Where], Location]
    live: bool = False  # True: read from Keycloak (the "live"-scope rules run too)
    keycloak_version: str | None = None  # None offline
    features: set[str] | None = None  # Keycloak features enabled; None offline
    absent: frozenset[tuple[str, str, str]] = frozenset()
    """Live only: (kind, key, spec field) an object lacks where kcprov's create would write a value, e.g.
    ("client", "web", "pkce") for a client without PKCE. An export leaves such a field out (it lists it
    as unset), which would read as the create value; these read as absent."""

    @classmethod
    def from_file(cls, path: str | Path, spec: RealmSpec, source_map: SourceMap) -> RealmView:
        """A view of a loaded realm file; `source_map` locates YAML paths of that file (after templating,
        in source lines)."""
        expanded, groups = expand_mcp_servers(spec)
        file = display_path(Path(path))
        origins = _origins(spec)

        def locate(where: Where) -> Location:
            line, column = source_map(_yaml_path(spec, expanded, origins, groups, where))
            return Location(file=file, line=line, column=column)

        return cls(spec, expanded, groups, locate)

    @classmethod
    def from_live(cls, realm: str, spec: RealmSpec, keycloak_version: str | None = None,
                  features: set[str] | None = None, absent: Iterable[tuple[str, str, str]] = ()) -> RealmView:
        """A view of a live realm; `spec` is its export (fields differing from a new realm, `--mcp`
        recognition applied so kcprov's MCP servers are audited as servers), `absent` as the field says."""
        expanded, groups = expand_mcp_servers(spec)

        def locate(where: Where) -> Location:
            kind, key = where[0], where[1]
            label = OBJECT_LABELS.get(kind, str(kind))
            return Location(realm=realm, resource=f"{label} '{key}'" if key else label)

        return cls(spec, expanded, groups, locate, live=True, keycloak_version=keycloak_version, features=features,
                   absent=frozenset(absent))

    # -- effective values ------------------------------------------------------------
    def value(self, kind: str, key: str, name: str, written: Any, created: Any) -> Any:
        """A field as written, else None where `absent` says so, else `created` (kcprov's create value)."""
        if written is not None:
            return written
        return None if (kind, key, name) in self.absent else created

    def pkce(self, client: Client) -> str | None:
        """A client's PKCE method; kcprov's create writes S256 on code-flow clients."""
        return self.value("client", client.client_id, "pkce", client.pkce,
                          "S256" if _flag(client, "standard_flow") else None)

    def setting(self, name: str) -> Any:
        value = getattr(self.expanded.settings, name, None) if self.expanded.settings else None
        return NEW_REALM.get(name) if value is None else value

    def anonymous_dcr(self) -> RegistrationPolicy | None:
        """The anonymous registration policy when it lets some host register (else None).

        Keycloak's new realm has a Trusted Hosts policy with no host that must match: closed."""
        registration = self.expanded.client_registration
        policy = registration.anonymous if registration else None
        if policy is None:
            return None
        if policy.host_sending_request_must_match is False or policy.trusted_hosts:
            return policy
        return None

    def mcp_scopes(self) -> dict[str, str | None]:
        """Scope name -> its MCP server: the servers' scopes, and scopes named mcp:... / mcp.... (None)."""
        out: dict[str, str | None] = {}
        for server in self.spec.mcp_servers:
            out.update(dict.fromkeys(server.scopes, server.name))
        for scope in self.expanded.client_scopes:
            if scope.name.startswith(("mcp:", "mcp.")):
                out.setdefault(scope.name, None)
        return out

    def client_scopes(self) -> dict[str, ClientScope]:
        return {s.name: s for s in self.expanded.client_scopes}

    def cimd_policies(self) -> list[str]:
        policies = self.expanded.client_policies
        return [p.name for p in (policies.policies if policies else [])
                if p.enabled is not False and any(c.type == "client-id-uri" for c in p.conditions)]


def _origins(spec: RealmSpec) -> dict[tuple[str, Any], YamlPath]:
    """(kind, key) -> the YAML path of the entry that writes or generates it; the file's own entries first."""
    out: dict[tuple[str, Any], YamlPath] = {}
    for section, kind, name in (("clients", "client", "client_id"), ("client_scopes", "client_scope", "name"),
                                ("identity_providers", "identity_provider", "alias")):
        for i, item in enumerate(getattr(spec, section)):
            out.setdefault((kind, getattr(item, name)), (section, i))
    if spec.client_policies:
        for section, kind in (("profiles", "client_profile"), ("policies", "client_policy")):
            for i, item in enumerate(getattr(spec.client_policies, section)):
                out.setdefault((kind, item.name), ("client_policies", section, i))
    for sub in ("anonymous", "authenticated"):
        if spec.client_registration and getattr(spec.client_registration, sub) is not None:
            out[("registration", sub)] = ("client_registration", sub)
    for kind in ("smtp", "events"):
        out[(kind, None)] = (kind,)
    for i, server in enumerate(spec.mcp_servers):
        base: YamlPath = ("mcp_servers", i)
        out.setdefault(("mcp_server", server.name), base)
        for name in server.scopes:
            out.setdefault(("client_scope", name), (*base, "scopes", name))
        out.setdefault(("client", resource_client_id(server)), base)
        if server.introspection_client:
            out.setdefault(("client", server.introspection_client), (*base, "introspection_client"))
        for j, entry in enumerate(server.clients):
            where = (*base, "clients", j)
            if entry.client is not None:
                out.setdefault(("client", entry.client.client_id), (*where, "client"))
            elif entry.cimd is not None:
                for kind in ("client_profile", "client_policy"):
                    out.setdefault((kind, f"{server.name}-cimd"), (*where, "cimd"))
            elif entry.preset in CIMD_PRESETS:
                names = [f"{server.name}-{entry.preset}"]
                if entry.preset.startswith("claude-"):
                    names.append(f"{server.name}-claude")  # the combined Claude Code + Desktop pair
                for kind in ("client_profile", "client_policy"):
                    for name in names:
                        out.setdefault((kind, name), (*where, "preset"))
            if entry.dcr is not None or entry.preset in DCR_PRESETS:
                out.setdefault(("registration", "anonymous"), (*where, "dcr" if entry.dcr is not None else "preset"))
    if spec.mcp_servers:
        for kind in ("client_profile", "client_policy"):
            out.setdefault((kind, PKCE_NAME), ("mcp_servers", 0))
    return out


def _yaml_path(spec: RealmSpec, expanded: RealmSpec, origins: dict[tuple[str, Any], YamlPath],
               groups: Groups, where: Where) -> YamlPath:
    kind, key, rest = where[0], where[1], tuple(where[2:])
    if kind == "realm":
        name = rest[0] if rest else None
        if name and getattr(spec.settings, name, None) is not None:
            return ("settings", name)
        if name and getattr(expanded.settings, name, None) is not None:  # a setting expansion supplied
            lifespans = [i for i, s in enumerate(spec.mcp_servers) if s.access_token_lifespan is not None]
            if name == "access_token_lifespan" and lifespans:
                return ("mcp_servers", lifespans[0], "access_token_lifespan")
            return ("mcp_servers", 0)
        return ("settings",) if spec.settings is not None else ("realm",)
    origin = origins.get((kind, key))
    if origin is not None:
        return (*origin, *rest)
    server = groups.get((kind, key))
    if server is not None:  # made by expansion from a server entry without a more precise place
        return ("mcp_servers", next(i for i, s in enumerate(spec.mcp_servers) if s.name == server))
    return ("realm",)


def audit_realm(view: RealmView) -> list[Finding]:
    """Every realm rule on the view (the "live"-scope ones on live views only), in registration order."""
    findings: list[Finding] = []
    for rule_id, check in REALM_CHECKS.items():
        rule = RULES[rule_id]
        if rule.scope == "live" and not view.live:
            continue
        findings += [Finding(rule, message, view.locate(where)) for message, where in check(view)]
    return findings


# ---------------------------------------------------------------- small helpers


def _values(value: Any) -> list[str]:
    """A client-policy config value (string or list of strings) as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _true(value: Any) -> bool:
    return any(v.lower() == "true" for v in _values(value))


def _flag(client: Client, name: str) -> bool:
    """A client's flag: the file's value, else what kcprov's create writes."""
    value = getattr(client, name)
    return CLIENT_CREATE_DEFAULTS[name] if value is None else value


def _public(client: Client) -> bool:
    if client.confidential is not None:
        return not client.confidential
    return client.secret is None and client.service_account is not True


def _user_flows(client: Client) -> bool:
    """The client gets tokens for users (not only for its own service account)."""
    return client.enabled is not False and (_flag(client, "standard_flow") or _flag(client, "direct_access_grants")
                                            or _flag(client, "implicit_flow")
                                            or _flag(client, "device_authorization_grant"))


def _loopback(host: str | None) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (a name like 127.example.com is not)."""
    host = (host or "").lower().strip("[]")
    try:
        return host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        return False


DEFAULT_PORTS = {"http": 80, "https": 443}


def _split(url: str) -> SplitResult:
    """urlsplit that never raises (a realm's URIs are untrusted text): an unparsable URL has no parts."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises for a port that is no number or out of range
        return parts
    except ValueError:
        return urlsplit("")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = _split(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or DEFAULT_PORTS.get(scheme)


def _canonical(url: str) -> str:
    """RFC 3986 §6.2.2-6.2.3 normalisation of scheme and authority: lower case, no default port."""
    parts = _split(url)
    if not parts.netloc:
        return url  # not parsable: nothing to normalise
    scheme, host, port = _origin(url)
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if userinfo else "") + host + (f":{port}" if port != DEFAULT_PORTS.get(scheme) else "")
    return parts._replace(scheme=scheme, netloc=netloc).geturl()


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _mapper_audiences(mapper: ProtocolMapper) -> list[tuple[str, str, YamlPath]]:
    """What an audience mapper adds: ("custom", URL) or ("client", client_id), with the mapper field saying so."""
    if mapper.audience is not None:
        return [("custom", mapper.audience, ("audience",))]
    if mapper.client_audience is not None:
        return [("client", mapper.client_audience, ("client_audience",))]
    if mapper.protocol_mapper == AUDIENCE_MAPPER_TYPE:
        config = mapper.config or {}
        return [(kind, config[key], ("config", key)) for kind, key in (("custom", "included.custom.audience"),
                                                                      ("client", "included.client.audience"))
                if config.get(key)]
    return []


def _audience_mappers(view: RealmView) -> Iterator[tuple[str, str, str, Where]]:
    """(owner label, audience kind, value, where) of every audience mapper on scopes and clients."""
    owners = [("client_scope", s.name, s.mappers) for s in view.expanded.client_scopes]
    owners += [("client", c.client_id, c.mappers) for c in view.expanded.clients]
    for kind, key, mappers in owners:
        for i, mapper in enumerate(mappers):
            for audience_kind, value, at in _mapper_audiences(mapper):
                yield f"{OBJECT_LABELS[kind]} '{key}'", audience_kind, value, (kind, key, "mappers", i, *at)


def _policy_covers_public_clients(view: RealmView) -> bool:
    """An enabled client policy applies a PKCE-enforcing profile to every public client.

    Counted conditions: any-client, and client-access-type naming public; any other condition (or
    negative logic) may leave some public client out, so such a policy does not count."""
    policies = view.expanded.client_policies
    if policies is None:
        return False
    pkce_profiles = set(GLOBAL_PKCE_PROFILES) | {
        p.name for p in policies.profiles if any(e.type == PKCE_ENFORCER for e in p.executors)}
    for policy in policies.policies:
        if policy.enabled is False or not pkce_profiles & set(policy.profiles) or not policy.conditions:
            continue
        if all(not _true((c.config or {}).get("is-negative-logic"))
               and (c.type == "any-client"
                    or (c.type == "client-access-type" and "public" in _values((c.config or {}).get("type"))))
               for c in policy.conditions):
            return True
    return False


def _code_flow_public_clients(view: RealmView) -> list[Client]:
    return [c for c in view.expanded.clients
            if c.enabled is not False and _public(c) and _flag(c, "standard_flow")]


# ---------------------------------------------------------------- tokens


@realm_rule("long-access-token", Severity.MEDIUM,
            "access tokens live longer than 15 minutes",
            "A46; seed: use short-lived access tokens",
            "set settings.access_token_lifespan (or the MCP server's access_token_lifespan) to 5m-15m")
def long_access_token(view: RealmView) -> Iterator[tuple[str, Where]]:
    """The realm's lifespan (300 s when unset), each client's `access.token.lifespan` attribute, and each
    MCP server's `access_token_lifespan` (expansion makes the shortest one the realm's)."""
    limit = _duration(MAX_ACCESS_TOKEN_LIFESPAN)
    written = view.spec.settings is not None and view.spec.settings.access_token_lifespan is not None
    lifespan = view.setting("access_token_lifespan")
    if lifespan > MAX_ACCESS_TOKEN_LIFESPAN and (written or not view.spec.mcp_servers):
        yield (f"realm access tokens live {_duration(lifespan)} (more than {limit})",
               ("realm", None, "access_token_lifespan"))
    for server in view.spec.mcp_servers:
        if (server.access_token_lifespan or 0) > MAX_ACCESS_TOKEN_LIFESPAN:
            yield (f"MCP server '{server.name}' asks for {_duration(server.access_token_lifespan)} access tokens "
                   f"(more than {limit})", ("mcp_server", server.name, "access_token_lifespan"))
    for client in view.expanded.clients:
        value = (client.attributes or {}).get(ACCESS_TOKEN_LIFESPAN_ATTRIBUTE, "")
        if value.isdigit() and int(value) > MAX_ACCESS_TOKEN_LIFESPAN:
            yield (f"client '{client.client_id}' access tokens live {_duration(int(value))} "
                   f"(attribute {ACCESS_TOKEN_LIFESPAN_ATTRIBUTE}, more than {limit})",
                   ("client", client.client_id, "attributes", ACCESS_TOKEN_LIFESPAN_ATTRIBUTE))


@realm_rule("no-refresh-token-rotation", Severity.HIGH,
            "refresh tokens of public clients are not rotated",
            "A47 (OAuth 2.1 §4.3.1)",
            "set settings.revoke_refresh_token: true and refresh_token_max_reuse: 0")
def no_refresh_token_rotation(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Only where public clients can exist: a public client in the realm, anonymous registration, or a
    client ID metadata document policy (both give public clients). Keycloak's new realm does not rotate."""
    public = [c.client_id for c in view.expanded.clients if _public(c) and _user_flows(c)]
    reasons = ([f"public client '{public[0]}'"] if public else []) \
        + (["anonymous client registration"] if view.anonymous_dcr() else []) \
        + (["client ID metadata documents"] if view.cimd_policies() else [])
    if not reasons:
        return
    if not view.setting("revoke_refresh_token"):
        yield (f"refresh tokens are not rotated (revoke_refresh_token off), with {reasons[0]}",
               ("realm", None, "revoke_refresh_token"))
    elif view.setting("refresh_token_max_reuse"):
        yield (f"a refresh token may be reused {view.setting('refresh_token_max_reuse')} times "
               f"(refresh_token_max_reuse), with {reasons[0]}", ("realm", None, "refresh_token_max_reuse"))


@realm_rule("ssl-not-required", Severity.HIGH,
            "the realm accepts plain HTTP from any address",
            "A50 (OAuth 2.1 §1.5); seed: enforce HTTPS in production",
            "set settings.ssl_required: external (or all)")
def ssl_not_required(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Unset is Keycloak's `external`: HTTPS for all but private addresses."""
    if view.setting("ssl_required") == "none":
        yield "realm settings ssl_required is none: tokens and codes may travel over plain HTTP", \
            ("realm", None, "ssl_required")


# ---------------------------------------------------------------- clients


@realm_rule("pkce-not-enforced", Severity.HIGH,
            "a public client can use the code flow without PKCE S256",
            "A25-A27 (PKCE with S256); OAuth 2.1 §4.1.1",
            "set pkce: S256 on the client, or add a client policy with a pkce-enforcer profile for every client")
def pkce_not_enforced(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Per public code-flow client whose PKCE method is not S256 (unset: kcprov's create writes S256),
    unless an enabled pkce-enforcer policy covers every public client; likewise the clients that
    anonymous registration and metadata documents bring (no pkce of their own: only a policy helps)."""
    if _policy_covers_public_clients(view):
        return
    for client in _code_flow_public_clients(view):
        method = view.pkce(client)
        if method != "S256":
            yield (f"public client '{client.client_id}' uses the code flow with PKCE {method or 'not required'} "
                   "and no client policy enforces S256", ("client", client.client_id, "pkce"))
    if view.anonymous_dcr():
        yield ("clients registered anonymously (DCR) get no PKCE requirement: no pkce-enforcer client policy "
               "covers them", ("registration", "anonymous"))
    for name in view.cimd_policies():
        yield (f"clients accepted by client policy '{name}' (metadata documents) get no PKCE requirement: "
               "no pkce-enforcer client policy covers them", ("client_policy", name))


@realm_rule("wildcard-redirect-uri", Severity.HIGH,
            "a redirect URI has a wildcard",
            "A52 (OAuth 2.1 §7.12: exact redirect URI matching)",
            "list each redirect URI exactly, without '*'")
def wildcard_redirect_uri(view: RealmView) -> Iterator[tuple[str, Where]]:
    for client in view.expanded.clients:
        for i, uri in enumerate(client.redirect_uris or []):
            if "*" in uri:
                yield (f"client '{client.client_id}' accepts the wildcard redirect URI {uri!r}",
                       ("client", client.client_id, "redirect_uris", i))


@realm_rule("insecure-redirect-uri", Severity.HIGH,
            "a redirect URI uses http:// on a host that is not loopback",
            "A51 (OAuth 2.1 §1.5: redirect URIs are loopback or HTTPS)",
            "use https://, or http://127.0.0.1 / http://localhost for native clients")
def insecure_redirect_uri(view: RealmView) -> Iterator[tuple[str, Where]]:
    for client in view.expanded.clients:
        for i, uri in enumerate(client.redirect_uris or []):
            if uri.lower().startswith("http://") and not _loopback(_split(uri).hostname):
                yield (f"client '{client.client_id}' redirects to {uri!r} over plain HTTP",
                       ("client", client.client_id, "redirect_uris", i))


@realm_rule("wildcard-web-origin", Severity.LOW,
            "a client allows CORS from any origin",
            "seed: least privilege; OAuth 2.1 §7 (browser-based clients)",
            "list the client's origins, or '+' for those of its redirect URIs")
def wildcard_web_origin(view: RealmView) -> Iterator[tuple[str, Where]]:
    for client in view.expanded.clients:
        for i, origin in enumerate(client.web_origins or []):
            if origin == "*":
                yield (f"client '{client.client_id}' allows CORS requests from any origin (web_origins '*')",
                       ("client", client.client_id, "web_origins", i))


@realm_rule("direct-access-grants", Severity.MEDIUM,
            "a client can use the password grant",
            "A2 (OAuth 2.1 removes the resource owner password grant)",
            "set direct_access_grants: false; use the code flow with PKCE (or a service account)")
def direct_access_grants(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Unset is kcprov's create value, off."""
    for client in view.expanded.clients:
        if client.enabled is not False and _flag(client, "direct_access_grants"):
            yield (f"client '{client.client_id}' accepts the password grant (direct_access_grants)",
                   ("client", client.client_id, "direct_access_grants"))


@realm_rule("implicit-flow", Severity.HIGH,
            "a client can use the implicit flow",
            "A2 (OAuth 2.1 removes the implicit grant: tokens in the URL)",
            "set implicit_flow: false; use the code flow with PKCE")
def implicit_flow(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Unset is kcprov's create value, off."""
    for client in view.expanded.clients:
        if client.enabled is not False and _flag(client, "implicit_flow"):
            yield (f"client '{client.client_id}' accepts the implicit flow (implicit_flow)",
                   ("client", client.client_id, "implicit_flow"))


@realm_rule("full-scope-mcp-client", Severity.MEDIUM,
            "an MCP client puts all of the user's roles in its tokens",
            "seed: least-privilege scopes",
            "set full_scope_allowed: false on the client (the MCP server's admin scope carries its role)")
def full_scope_mcp_client(view: RealmView) -> Iterator[tuple[str, Where]]:
    """MCP clients: clients with an MCP scope that get tokens for users (a service-account-only client
    holds only its own roles). Unset is kcprov's create value, full scope allowed."""
    scopes = view.mcp_scopes()
    for client in view.expanded.clients:
        mine = [s for s in (*(client.default_scopes or []), *(client.optional_scopes or [])) if s in scopes]
        if mine and _user_flows(client) and _flag(client, "full_scope_allowed"):
            yield (f"client '{client.client_id}' (MCP scope {mine[0]}) has full_scope_allowed: tokens carry "
                   "every role of the user", ("client", client.client_id, "full_scope_allowed"))


@realm_rule("service-account-admin", Severity.HIGH,
            "a service account can administer the realm",
            "seed: least privilege; separate app vs. resource server credentials",
            "grant the service account only the view-*/query-* roles it needs, not realm-admin or manage-*")
def service_account_admin(view: RealmView) -> Iterator[tuple[str, Where]]:
    for client in view.expanded.clients:
        roles = client.service_account_roles or {}
        strong = [r for r in roles.get(ADMIN_CLIENT, []) if r == "realm-admin" or r.startswith("manage-")
                  or r == "impersonation"]
        if view.expanded.realm == "master":
            strong += [r for r in roles.get("realm", []) if r in ("admin", "create-realm")]
        if strong:
            yield (f"the service account of client '{client.client_id}' holds {', '.join(strong)}",
                   ("client", client.client_id, "service_account_roles"))


# ---------------------------------------------------------------- MCP scopes and audiences


@realm_rule("mcp-scope-default-type", Severity.MEDIUM,
            "an MCP scope is a realm default scope",
            "A39 (audience per server); seed: least-privilege scopes",
            "set the scope's type: optional, so only clients asking for it get the server's audience")
def mcp_scope_default_type(view: RealmView) -> Iterator[tuple[str, Where]]:
    """A realm default scope goes into every new client's tokens, and with it the MCP server's audience.
    Unset is kcprov's create value, none (expansion writes optional)."""
    scopes = view.client_scopes()
    for name in view.mcp_scopes():
        if name in scopes and scopes[name].type == "default":
            yield f"client scope '{name}' is a realm default scope: every new client's tokens carry it", \
                ("client_scope", name, "type")


@realm_rule("mcp-scope-no-audience", Severity.HIGH,
            "an MCP scope adds no audience to tokens",
            "A39 (RFC 8707, RFC 9068: the server accepts only tokens issued for it)",
            "add an audience mapper with the MCP server's URL to the scope (mcp_servers: does it)")
def mcp_scope_no_audience(view: RealmView) -> Iterator[tuple[str, Where]]:
    scopes = view.client_scopes()
    for name in view.mcp_scopes():
        scope = scopes.get(name)
        if scope is not None and not any(_mapper_audiences(m) for m in scope.mappers):
            yield f"client scope '{name}' has no audience mapper: its tokens name no MCP server", \
                ("client_scope", name, "mappers")


@realm_rule("audience-mismatch", Severity.HIGH,
            "an MCP server's tokens carry an audience other than its canonical URL",
            "A33, A39; RFC 9728 §3.3 (resource equals the URL clients use)",
            "make the audience exactly the server's url (scheme and host lower case, no default port)")
def audience_mismatch(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Per MCP server: its url in canonical form (RFC 3986 §6.2.2/6.2.3), its extra audiences on its own
    origin, and the audience mappers on its scopes naming its URLs or its resource client only."""
    scopes = view.client_scopes()
    for server in view.spec.mcp_servers:
        if _canonical(server.url) != server.url:
            yield (f"MCP server '{server.name}' url {server.url!r} is not in canonical form "
                   f"({_canonical(server.url)!r}): clients send that as resource", ("mcp_server", server.name, "url"))
        for i, extra in enumerate(server.extra_audiences or []):
            if _split(extra).hostname and _origin(extra) != _origin(server.url):
                yield (f"MCP server '{server.name}' tokens also name {extra!r}, another origin: they are valid "
                       "there too", ("mcp_server", server.name, "extra_audiences", i))
        allowed = set(audiences(server))
        for name in server.scopes:
            for i, mapper in enumerate(scopes[name].mappers if name in scopes else []):
                for kind, value, at in _mapper_audiences(mapper):
                    if (kind == "custom" and value not in allowed) or \
                            (kind == "client" and value != resource_client_id(server)):
                        yield (f"client scope '{name}' of MCP server '{server.name}' adds audience {value!r}, "
                               f"not {server.url!r}", ("client_scope", name, "mappers", i, *at))


@realm_rule("generic-audience", Severity.MEDIUM,
            "tokens carry a generic audience",
            "seed: audience/resource indicator misuse (no generic audiences like api)",
            "name the one resource the token is for: the MCP server's URL")
def generic_audience(view: RealmView) -> Iterator[tuple[str, Where]]:
    for owner, _, value, where in _audience_mappers(view):
        if value.lower() in GENERIC_AUDIENCES:
            yield f"{owner} adds the generic audience {value!r} to tokens", where
    for server in view.spec.mcp_servers:
        for i, extra in enumerate(server.extra_audiences or []):
            if extra.lower() in GENERIC_AUDIENCES:
                yield (f"MCP server '{server.name}' tokens carry the generic audience {extra!r}",
                       ("mcp_server", server.name, "extra_audiences", i))


@realm_rule("offline-access-scope", Severity.MEDIUM,
            "offline_access is one of an MCP server's scopes",
            "A11 (the server SHOULD NOT ask for offline_access)",
            "remove offline_access from the server's scopes; clients ask for it themselves if they need it")
def offline_access_scope(view: RealmView) -> Iterator[tuple[str, Where]]:
    for server in view.spec.mcp_servers:
        if "offline_access" in server.scopes:
            yield (f"MCP server '{server.name}' lists offline_access among its scopes",
                   ("mcp_server", server.name, "scopes", "offline_access"))


# ---------------------------------------------------------------- registration (DCR, CIMD)


@realm_rule("open-dcr", Severity.HIGH,
            "anyone can register a client anonymously",
            "A22; seed: DCR controls (unauthenticated DCR: anyone can register any client)",
            "set client_registration.anonymous.host_sending_request_must_match: true with trusted_hosts")
def open_dcr(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Keycloak's Trusted Hosts policy checks the registering host only with
    host_sending_request_must_match (new realm: on, no hosts, so nobody)."""
    policy = view.anonymous_dcr()
    if policy is not None and policy.host_sending_request_must_match is False:
        yield ("anonymous client registration accepts requests from any host "
               "(host_sending_request_must_match: false)", ("registration", "anonymous", "host_sending_request_must_match"))


@realm_rule("dcr-scopes-too-wide", Severity.MEDIUM,
            "anonymously registered clients may ask for scopes beyond the MCP servers'",
            "A22; seed: DCR controls, least-privilege scopes",
            "limit client_registration.anonymous.allowed_client_scopes to the MCP scopes and openid/profile/email/basic")
def dcr_scopes_too_wide(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Allowed: the MCP servers' scopes, Keycloak's login scopes (openid, profile, email, basic, roles,
    web-origins, acr) and offline_access, which the MCP SDK asks for (kcprov adds it for DCR). Unset is
    Keycloak's new realm: the realm's default scopes only."""
    policy = view.anonymous_dcr()
    if policy is None:
        return
    fine = set(view.mcp_scopes()) | OIDC_BASIC_SCOPES | set(SDK_EXTRA_SCOPES)
    wide = [s for s in policy.allowed_client_scopes or [] if s not in fine]
    if wide:
        yield (f"anonymous client registration allows the scopes {', '.join(wide)}, which belong to no MCP server",
               ("registration", "anonymous", "allowed_client_scopes"))


@realm_rule("dcr-max-clients", Severity.MEDIUM,
            "anonymous registration has no limit on the number of clients",
            "seed: DCR controls",
            "set client_registration.anonymous.max_clients (Keycloak's new realm: 200)")
def dcr_max_clients(view: RealmView) -> Iterator[tuple[str, Where]]:
    """A file cannot remove the limit (max_clients >= 1; kcprov never deletes policies), and leaving it
    out keeps the realm's, 200 on a new realm: offline this never fires. A live view has the policies'
    effective values (`kcprov.audit.live`): unset there means the Max Clients Limit policy is gone."""
    policy = view.anonymous_dcr()
    if view.live and policy is not None and policy.max_clients is None:
        yield "anonymous client registration has no Max Clients Limit policy: anyone trusted can register " \
            "any number of clients", ("registration", "anonymous")


@realm_rule("dcr-where-cimd-works", Severity.LOW,
            "anonymous registration is on although every named client supports metadata documents",
            "A16, A22 (DCR is deprecated; clients prefer CIMD)",
            "drop the dcr entry and client_registration.anonymous; the presets register through CIMD")
def dcr_where_cimd_works(view: RealmView) -> Iterator[tuple[str, Where]]:
    presets = [e.preset for s in view.spec.mcp_servers for e in s.clients if e.preset]
    if view.anonymous_dcr() and presets and all(p in CIMD_CLIENT_PRESETS for p in presets):
        yield (f"anonymous client registration is on, but every client named ({', '.join(dict.fromkeys(presets))}) "
               "uses client ID metadata documents", ("registration", "anonymous"))


@realm_rule("cimd-insecure-http", Severity.HIGH,
            "client ID metadata documents are accepted over http from hosts that are not loopback",
            "A51, A50 (HTTPS except loopback); CIMD §6",
            "set allow_http: false, or trust only localhost / 127.0.0.1 when allow_http is on")
def cimd_insecure_http(view: RealmView) -> Iterator[tuple[str, Where]]:
    policies = view.expanded.client_policies
    for profile in policies.profiles if policies else []:
        for executor in profile.executors:
            config = executor.config or {}
            if executor.type != CIMD_EXECUTOR or not _true(config.get(CIMD_ALLOW_HTTP)):
                continue
            remote = [d for d in _values(config.get(CIMD_TRUSTED_DOMAINS)) if not _loopback(d)]
            if remote or not _values(config.get(CIMD_TRUSTED_DOMAINS)):
                yield (f"client profile '{profile.name}' accepts http:// metadata documents from "
                       f"{', '.join(remote) if remote else 'any domain'}", ("client_profile", profile.name))


# ---------------------------------------------------------------- the rest of the realm


@realm_rule("idp-no-pkce", Severity.MEDIUM,
            "an OpenID Connect identity provider logs in without PKCE S256",
            "A25-A27 (PKCE S256), for the realm's own logins at the SSO",
            "set oidc.pkce: S256 on the identity provider")
def idp_no_pkce(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Unset is kcprov's create value for OpenID Connect providers, S256."""
    for idp in view.expanded.identity_providers:
        method = view.value("identity_provider", idp.alias, "pkce", idp.oidc.pkce if idp.oidc else None, "S256")
        if idp.provider_id in OIDC_PROVIDERS and method != "S256":
            yield f"identity provider '{idp.alias}' uses PKCE {method or 'none'}", \
                ("identity_provider", idp.alias, "oidc", "pkce")


@realm_rule("idp-unsigned-tokens", Severity.HIGH,
            "an identity provider's signatures are not checked",
            "seed: always validate tokens",
            "set validate_signature: true (OpenID Connect: with jwks_url; SAML: with signing_certificate)")
def idp_unsigned_tokens(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Unset: kcprov creates OpenID Connect providers that have a jwks_url with signatures checked;
    otherwise Keycloak's create checks none. A raw config validateSignature counts too."""
    for idp in view.expanded.identity_providers:
        if idp.provider_id in OIDC_PROVIDERS:
            settings, block = idp.oidc, "oidc"
            default = settings is not None and settings.jwks_url is not None
        elif idp.provider_id == SAML:
            settings, block, default = idp.saml, "saml", False
        else:
            continue  # social providers: Keycloak talks to their fixed endpoints
        value = settings.validate_signature if settings else None
        if value is None and (idp.config or {}).get("validateSignature") is not None:
            value = _true(idp.config["validateSignature"])
        if not view.value("identity_provider", idp.alias, "validate_signature", value, default):
            yield f"identity provider '{idp.alias}' does not check token signatures", \
                ("identity_provider", idp.alias, block, "validate_signature")


@realm_rule("smtp-plaintext", Severity.MEDIUM,
            "the realm sends email over an unencrypted SMTP connection",
            "A48 (never leak credentials): reset links and the SMTP password travel in clear",
            "set smtp.starttls: true (port 587) or smtp.ssl: true (port 465)")
def smtp_plaintext(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Unset ssl and starttls are Keycloak's false."""
    smtp = view.expanded.smtp
    if smtp is not None and smtp.host and not smtp.ssl and not smtp.starttls:
        yield f"SMTP server {smtp.host!r} is used without starttls or ssl", ("smtp", None, "host")


@realm_rule("events-off", Severity.LOW,
            "a realm with MCP servers records no login events",
            "seed: log detailed reasons internally (audited registrations, error detail)",
            "set events.enabled: true (with an expiration) so logins and registrations can be audited")
def events_off(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Unset is Keycloak's new realm: events off."""
    if view.spec.mcp_servers and not (view.expanded.events and view.expanded.events.enabled):
        yield "realm records no user events (events.enabled), though it serves MCP servers", \
            ("events", None, "enabled")
