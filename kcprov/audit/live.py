"""`kcprov audit --realm`: a live realm read as the realm rules read a file, plus what only the server knows.

The realm rules (`realm_rules`) check a `RealmSpec`, so a live realm is turned
into one the way `kcprov export --mcp` does: the plan's bulk reads (one partial
export, `read_state`), each kind's `export` against this Keycloak's baseline
(built-ins only where changed, so an unchanged `admin-cli` with its password
grant is Keycloak's, not the realm's, and is not a finding), the MCP
recogniser folding what kcprov made for an MCP server back into an
`mcp_servers:` entry (so it is audited as a server: canonical URL, scopes,
which clients belong to it), and the realm file's own models (an entry they
refuse is left out, as the export leaves it out). The cost is constant: no
request per client, scope or mapper (a test pins it): the partial export,
the reads of the users kcprov owns and of the user profile, server info
(for the baseline and for the rules), and once a run the export's baseline
(a throwaway realm: the account needs create-realm, as for `kcprov export`).

Two kinds are written with their *effective* values, not only what differs
from a new realm: the realm settings (a 5-minute access token is the
Keycloak default a file may leave out, but live it is a fact) and the
registration policies. A registration policy that does not exist live cannot
be left unset: Keycloak then does not restrict anonymous registration by host
at all (checked on 26.7.3: without it an anonymous registration with any
redirect URI is accepted, with it refused), which the file format says as a
Trusted Hosts policy that trusts no host and checks neither the sender nor
the client URIs.

Then what the file cannot say (live-only rules, `scope="live"`): the Keycloak
version (`GET /admin/serverinfo` `systemInfo.version`) against known
MCP-relevant bugs, features the realm relies on that this server marks
experimental or has switched off (`features`: name, type, enabled), the admin
realm `master` serving MCP clients, and an `http://` frontend URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from urllib.parse import urlsplit

from kcprov.audit.realm_rules import RealmView, Where, _mapper_audiences
from kcprov.audit.rules import Severity, realm_rule
from kcprov.export import export_object, export_realm
from kcprov.export.check import as_loaded
from kcprov.export.document import ExportContext
from kcprov.export.mcp import fold_mcp_servers
from kcprov.keycloak import KeycloakClient
from kcprov.resources import KINDS_BY_NAME
from kcprov.resources.registration import OPTIONS
from kcprov.spec.expand import CIMD_EXECUTOR, RESOURCE_URL_ATTRIBUTE
from kcprov.spec.models import RealmSpec

EFFECTIVE_KINDS = ("realm", "registration_policy")
"""Kinds exported with every field (as `--all` does): their values are facts of the live realm, defaults included."""
ADMIN_REALM = "master"
# The options of a missing Trusted Hosts policy: nothing restricts who registers or which URIs it gives.
NO_TRUSTED_HOSTS = {"trusted_hosts": [], "host_sending_request_must_match": False, "client_uris_must_match": False}


# ---------------------------------------------------------------- the server's facts


@dataclass(frozen=True)
class ServerFacts:
    version: str | None  # systemInfo.version, e.g. "26.7.3"
    enabled: set[str]  # enabled features, as --features names them: "cimd", "resource-indicators"
    types: dict[str, str]  # feature -> its type on this server: "default", "preview", "experimental", ...


def server_facts(info: Mapping) -> ServerFacts:
    """Version and features from a `GET /admin/serverinfo` answer (`features`: name, type, enabled)."""
    version = (info.get("systemInfo") or {}).get("version")
    enabled: set[str] = set()
    types: dict[str, str] = {}
    for feature in info.get("features") or ():
        if not isinstance(feature, Mapping) or not isinstance(feature.get("name"), str):
            continue
        name = feature_name(feature["name"])
        types[name] = str(feature.get("type") or "").lower()
        if feature.get("enabled") is True:
            enabled.add(name)
    return ServerFacts(str(version) if version is not None else None, enabled, types)


def feature_name(name: str) -> str:
    """`RESOURCE_INDICATORS` (serverinfo) -> `resource-indicators`, `TOKEN_EXCHANGE_STANDARD_V2` ->
    `token-exchange-standard:v2`: the `--features` option's spelling."""
    return re.sub(r"_v(\d+)$", r":v\1", name.lower()).replace("_", "-")


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    """`26.7.3` -> (26, 7, 3); `26.8.0-SNAPSHOT` -> (26, 8, 0); None for a version that is no number."""
    match = re.match(r"\d+(?:\.\d+)*", version or "")
    return tuple(int(p) for p in match.group().split(".")) if match else None


def before(version: str | None, fixed: tuple[int, ...]) -> bool:
    """True only for a known version older than `fixed` (an unknown version is not blamed)."""
    parsed = version_tuple(version)
    return parsed is not None and parsed < fixed


# ---------------------------------------------------------------- reading


@dataclass
class LiveView(RealmView):
    """A live realm's view: a `RealmView` that also knows each feature's type on this server."""

    feature_types: dict[str, str] = field(default_factory=dict)  # feature -> "experimental", "preview", ...

    @classmethod
    def of(cls, realm: str, spec: RealmSpec, facts: ServerFacts, absent=()) -> LiveView:
        view = cls.from_live(realm, spec, facts.version, facts.enabled, absent)
        view.feature_types = facts.types
        return view


def read_live_view(client: KeycloakClient, realm: str) -> LiveView:
    """The live `realm` as a view the realm rules run on, with the server's version and features."""
    spec, absent = live_spec(client, realm)  # first: a missing realm is an error before anything else
    return LiveView.of(realm, spec, server_facts(client.server_info()), absent)


def live_spec(client: KeycloakClient, realm: str) -> tuple[RealmSpec, set[tuple[str, str, str]]]:
    """The realm as `kcprov export --mcp` writes it, effective settings and registration policies included,
    and what its objects lack where kcprov's create would write a value (`RealmView.absent`): a client
    without PKCE exports without a `pkce` key, which a file reads as kcprov's S256 default."""
    captured: list[ExportContext] = []
    export_realm(client, realm, passes=(effective_values, fold_mcp_servers, captured.append))
    clients = captured[0].live.objects.get("client", {})
    absent = {("client", key, "pkce") for key, attrs in clients.items() if attrs.get("pkce") is None}
    # the export checks the document after its passes, in place: entries its models refuse are gone
    return RealmSpec.model_validate(as_loaded(captured[0].doc)), absent


def effective_values(ctx: ExportContext) -> None:
    """An export pass: the EFFECTIVE_KINDS written with every field, a missing Trusted Hosts policy as one
    that restricts nothing (see the module docstring), and the realm type (default, optional, none) of
    every client scope written, built-ins included (`basic` with a mapper added is a default scope)."""
    everything, ctx.everything = ctx.everything, True
    try:
        for name in EFFECTIVE_KINDS:
            for key, attrs in sorted(ctx.live.objects.get(name, {}).items()):
                export_object(KINDS_BY_NAME[name], key, attrs, {}, ctx)
    finally:
        ctx.everything = everything
    trusted_hosts = OPTIONS["trusted_hosts"][0]
    if f"anonymous/{trusted_hosts}" not in ctx.live.objects.get("registration_policy", {}):
        ctx.section("client_registration", "anonymous").update(NO_TRUSTED_HOSTS)
    scopes = ctx.live.objects.get("client_scope", {})
    for name, entry in (ctx.doc.get("client_scopes") or {}).items():
        if (scopes.get(name) or {}).get("type") is not None:
            entry.setdefault("type", scopes[name]["type"])


# ---------------------------------------------------------------- live-only rules

DCR_DEFAULT_SCOPES_FIXED = (26, 8, 0)
"""keycloak#50807, fixed in 26.8.0: a client registered with DCR that asks for a scope gets only `basic` as
default scope, not the realm's default scopes (checked on 26.7.3: KEYCLOAK-NOTES)."""
EXPERIMENTAL_TYPES = frozenset({"experimental", "preview"})
LOOPBACK_NAMES = frozenset({"localhost"})
FEATURES = {"cimd": "client ID metadata documents", "resource-indicators": "RFC 8707 resource indicators",
            "dpop": "DPoP-bound tokens, RFC 9449"}
"""The features MCP setups rely on, by their --features name."""
DPOP_ATTRIBUTE = "dpop.bound.access.tokens"  # client attribute: require DPoP-bound tokens (checked on 26.7.3)
FRONTEND_URL = "frontendUrl"  # realm attribute: the base URL of the realm's issuer and endpoints


@realm_rule("keycloak-dcr-default-scopes", Severity.MEDIUM,
            "this Keycloak drops realm default scopes for DCR clients, and one of them carries an audience",
            "keycloak#50807 (fixed in 26.8.0); A22, A36 (audience)",
            "upgrade Keycloak to 26.8 or later, or put the audience mapper on the optional scope clients ask for "
            "(mcp_servers: does)", scope="live")
def dcr_default_scopes(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Before 26.8 an anonymously registered client asking for a scope gets only `basic` as default scope:
    an audience mapper on a realm default scope never reaches its tokens."""
    if not before(view.keycloak_version, DCR_DEFAULT_SCOPES_FIXED) or view.anonymous_dcr() is None:
        return
    for scope in view.expanded.client_scopes:
        if scope.type != "default":
            continue
        for i, mapper in enumerate(scope.mappers):
            for found in _mapper_audiences(mapper):  # (kind, audience, ...)
                audience = found[1]
                yield (f"client scope '{scope.name}' is a realm default scope with audience {audience!r}, but "
                       f"Keycloak {view.keycloak_version} gives DCR clients only 'basic' (keycloak#50807): "
                       "their tokens lack that audience", ("client_scope", scope.name, "mappers", i))


@realm_rule("experimental-feature", Severity.LOW,
            "the realm relies on a Keycloak feature this version marks experimental or preview",
            "seed: pin versions; Keycloak feature levels (experimental features may change or go without notice)",
            "keep the Keycloak version pinned and re-test MCP logins before each upgrade", scope="live")
def experimental_feature(view: RealmView) -> Iterator[tuple[str, Where]]:
    """One finding per feature, at its first use."""
    for feature, uses in features_in_use(view).items():
        kind = feature_types(view).get(feature)
        if kind in EXPERIMENTAL_TYPES and feature in (view.features or ()):
            yield (f"feature {feature} ({FEATURES[feature]}) is {kind} in Keycloak {view.keycloak_version}; "
                   f"used by {_listed(uses)}", uses[0][1])


@realm_rule("feature-disabled", Severity.MEDIUM,
            "the realm relies on a Keycloak feature this server has switched off",
            "A36 (audience), A16 (client ID metadata documents); RFC 9449 (DPoP)",
            "start Keycloak with --features=<feature> (or stop relying on it)", scope="live")
def feature_disabled(view: RealmView) -> Iterator[tuple[str, Where]]:
    """Only audience binding by resource indicators counts for that feature: a resource client's
    `resource_url` is made in both binding modes and does nothing without it."""
    if view.features is None:
        return
    for feature, uses in features_in_use(view, relied_on=True).items():
        if feature not in view.features:
            yield (f"feature {feature} ({FEATURES[feature]}) is off in this Keycloak, but {_listed(uses)} "
                   "relies on it", uses[0][1])


@realm_rule("admin-realm-mcp", Severity.HIGH,
            "the admin realm master serves MCP clients",
            "seed: realm mix-ups (the admin realm's tokens and registrations beside MCP clients)",
            "move the MCP servers, their scopes and client registration to a realm of their own", scope="live")
def admin_realm_mcp(view: RealmView) -> Iterator[tuple[str, Where]]:
    if view.expanded.realm != ADMIN_REALM:
        return
    if view.spec.mcp_servers or view.mcp_scopes():
        names = [s.name for s in view.spec.mcp_servers] or list(view.mcp_scopes())
        yield (f"the admin realm {ADMIN_REALM} holds MCP {'servers' if view.spec.mcp_servers else 'scopes'} "
               f"{', '.join(names)}", ("realm", None))
    if view.anonymous_dcr() is not None:
        yield (f"the admin realm {ADMIN_REALM} accepts anonymous client registration", ("registration", "anonymous"))


@realm_rule("frontend-url-http", Severity.HIGH,
            "the realm's frontend URL (its token issuer) is plain http on a host that is not loopback",
            "A50 (HTTPS except loopback); seed: HTTPS everywhere but localhost",
            "set the realm's frontendUrl (settings.attributes) to an https:// URL", scope="live")
def frontend_url_http(view: RealmView) -> Iterator[tuple[str, Where]]:
    settings = view.expanded.settings
    url = (settings.attributes or {}).get(FRONTEND_URL) if settings else None
    if url and insecure_http(url):
        yield (f"the realm's frontend URL {url!r} is http: its issuer, login pages and token endpoint are "
               "reached without TLS", ("realm", None, "attributes", FRONTEND_URL))


def features_in_use(view: RealmView, relied_on: bool = False) -> dict[str, list[tuple[str, Where]]]:
    """Feature -> (what uses it, where) in the realm: client ID metadata documents (a client profile with
    their executor), resource indicators (an MCP server bound by them; unless `relied_on`, also a
    resource client's `resource_url`, which the feature reads when it is on) and DPoP (a client requiring
    DPoP-bound tokens: without the feature the attribute does nothing and its tokens are plain bearer
    tokens)."""
    out: dict[str, list[tuple[str, Where]]] = {}
    policies = view.expanded.client_policies
    for profile in policies.profiles if policies else ():
        if any(e.type == CIMD_EXECUTOR for e in profile.executors):
            out.setdefault("cimd", []).append((f"client profile '{profile.name}'", ("client_profile", profile.name)))
    for server in view.spec.mcp_servers:
        if server.audience_binding == "resource-indicators":
            out.setdefault("resource-indicators", []).append(
                (f"MCP server '{server.name}' (audience_binding: resource-indicators)", ("mcp_server", server.name)))
    if not relied_on and "resource-indicators" not in out:
        for client in view.expanded.clients:
            if (client.attributes or {}).get(RESOURCE_URL_ATTRIBUTE):
                out.setdefault("resource-indicators", []).append(
                    (f"client '{client.client_id}' (resource_url)", ("client", client.client_id)))
    for client in view.expanded.clients:
        if str((client.attributes or {}).get(DPOP_ATTRIBUTE)).lower() == "true":
            out.setdefault("dpop", []).append((f"client '{client.client_id}' ({DPOP_ATTRIBUTE})",
                                               ("client", client.client_id)))
    return out


def _listed(uses: list[tuple[str, Where]]) -> str:
    return ", ".join(what for what, _ in uses)


def feature_types(view: RealmView) -> dict[str, str]:
    return view.feature_types if isinstance(view, LiveView) else {}


def insecure_http(url: str) -> bool:
    """An http:// URL whose host is not loopback (localhost, 127.0.0.0/8, ::1)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return False
    try:
        return not ip_address(host).is_loopback
    except ValueError:
        return True
