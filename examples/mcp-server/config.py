"""Configuration of the reference MCP server.

kcprov writes ``examples/mcp-server/.env``; this module reads it once at
startup. Real environment variables override the file. Every value is checked
here, so the rest of the server can trust ``ServerConfig``: a bad setting
stops the server with a message naming the key, instead of surfacing later as
a confusing 401.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.shared.auth import ProtectedResourceMetadata

from dpop import DEFAULT_ALGORITHMS, parse_algorithms

DEFAULT_ENV_FILE = Path(__file__).resolve().parent / ".env"

#: Every key the server reads. Anything else in the file or the environment is ignored.
KNOWN_KEYS = (
    # the seed tutorial's variables
    "HOST",
    "PORT",
    "AUTH_HOST",
    "AUTH_PORT",
    "AUTH_REALM",
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "MCP_SCOPE",
    "OAUTH_STRICT",
    "TRANSPORT",
    # what the reference server needs beyond the seed
    "MCP_SERVER_NAME",
    "MCP_RESOURCE_URL",
    "MCP_AUDIENCES",
    "MCP_SCOPES",
    "MCP_TOOL_SCOPES",
    "MCP_ADMIN_ROLE",
    "MCP_ADMIN_TOOLS",
    "MCP_TOKEN_VALIDATION",
    "MCP_SENDER_CONSTRAINT",
    "OAUTH_ISSUER",
    "OAUTH_JWKS_URL",
    "OAUTH_INTROSPECTION_URL",
    # downstream APIs, called with tokens from token exchange (RFC 8693)
    "OAUTH_TOKEN_URL",
    "MCP_EXCHANGE_CLIENT_ID",
    "MCP_EXCHANGE_CLIENT_SECRET",
    "MCP_DOWNSTREAM_AUDIENCES",
    "MCP_DOWNSTREAM_SCOPES",
    "MCP_DOWNSTREAM_URLS",
    # optional tuning, not written by kcprov
    "OAUTH_INTROSPECTION_AUTH_METHOD",
    "OAUTH_JWKS_REFRESH_COOLDOWN",
    "DPOP_ALGORITHMS",
    "DPOP_PROOF_MAX_AGE",
    "LOG_LEVEL",
)

#: Scopes a protected resource should never advertise or demand (MCP 2026-07-28,
#: "Refresh Tokens"): refresh tokens are not a resource requirement.
FORBIDDEN_SCOPES = frozenset({"offline_access"})

#: RFC 6749 §3.3 scope-token: printable ASCII except space, '"' and '\\'.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")

TokenValidation = Literal["jwt", "introspection"]
SenderConstraint = Literal["none", "dpop"]
IntrospectionAuthMethod = Literal["client_secret_basic", "client_secret_post"]


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class DownstreamApi:
    """An API the server calls on the user's behalf, with a token exchanged for its audience."""

    #: The API's client_id in Keycloak: the ``audience`` of the exchange and the exchanged token's ``aud``.
    audience: str
    #: Scopes the exchanged token asks for (may be empty).
    scopes: tuple[str, ...] = ()
    #: Where the API is reached ("" when the env file names none).
    url: str = ""


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs, validated. Safe to print: the secret is kept out of ``repr``."""

    server_name: str
    #: Canonical resource URI (RFC 8707/9728). PRM ``resource`` is exactly this string.
    resource_url: str
    #: Address uvicorn binds to (HOST/PORT; default: the resource URL's host and port).
    host: str
    port: int
    #: ``iss`` every token must carry, compared as an exact string.
    issuer: str
    #: Accepted ``aud`` values; the resource URL is always one of them.
    audiences: tuple[str, ...]
    #: Scope every request needs (MCP_SCOPE).
    base_scope: str
    #: PRM ``scopes_supported`` (MCP_SCOPES).
    scopes_supported: tuple[str, ...]
    #: Extra scopes per tool, on top of the base scope (MCP_TOOL_SCOPES).
    tool_scopes: Mapping[str, tuple[str, ...]]
    #: Realm role (``realm_access.roles``) the admin tools also require.
    admin_role: str
    admin_tools: frozenset[str]
    token_validation: TokenValidation
    jwks_url: str
    introspection_url: str
    client_id: str
    client_secret: str = field(repr=False)
    introspection_auth_method: IntrospectionAuthMethod = "client_secret_basic"
    #: OAUTH_STRICT: HTTPS required for every non-loopback URL.
    strict: bool = True
    #: Minimum seconds between two JWKS refetches caused by an unknown ``kid``.
    jwks_refresh_cooldown: float = 10.0
    #: MCP_SENDER_CONSTRAINT=dpop: only DPoP-bound tokens, each request with a proof (RFC 9449).
    sender_constraint: SenderConstraint = "none"
    #: Proof algorithms accepted (DPOP_ALGORITHMS), advertised as ``dpop_signing_alg_values_supported``.
    dpop_algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    #: Seconds after its ``iat`` a proof is accepted (DPOP_PROOF_MAX_AGE).
    dpop_proof_max_age: int = 60
    log_level: str = "INFO"
    #: Token exchange (MCP_DOWNSTREAM_*): empty ``downstream`` means the server calls no API.
    downstream: tuple[DownstreamApi, ...] = ()
    token_url: str = ""
    exchange_client_id: str = ""
    exchange_client_secret: str = field(default="", repr=False)

    @property
    def mcp_path(self) -> str:
        """Path the streamable HTTP endpoint is served at: the resource URL's path."""
        return urlsplit(self.resource_url).path or "/"

    @property
    def resource_metadata_url(self) -> str:
        """RFC 9728 path-suffixed well-known URL, as the SDK builds it."""
        return str(build_resource_metadata_url(self.resource_url))  # type: ignore[arg-type]

    def warnings(self) -> list[str]:
        """Settings that are valid but probably not what was meant."""
        found = []
        if self.issuer.endswith("/"):
            found.append(
                f"OAUTH_ISSUER {self.issuer!r} ends with '/'; Keycloak issuers do not, and iss is compared exactly"
            )
        resource = urlsplit(self.resource_url)
        if (self.host, self.port) != (resource.hostname, resource.port or (443 if resource.scheme == "https" else 80)):
            found.append(
                f"binding {self.host}:{self.port} while MCP_RESOURCE_URL is {self.resource_url}: "
                "fine behind a reverse proxy, otherwise clients will not reach the resource URL"
            )
        return found

    def summary(self) -> str:
        """One log line for startup. Never includes the secret."""
        parts = [
            f"name={self.server_name}",
            f"resource={self.resource_url}",
            f"issuer={self.issuer}",
            f"validation={self.token_validation}",
            f"audiences={','.join(self.audiences)}",
            f"base_scope={self.base_scope}",
            f"scopes_supported={' '.join(self.scopes_supported)}",
            f"bind={self.host}:{self.port}",
        ]
        if self.sender_constraint == "dpop":
            parts.append(f"dpop={' '.join(self.dpop_algorithms)} max_age={self.dpop_proof_max_age}s")
        if self.token_validation == "jwt":
            parts.append(f"jwks={self.jwks_url}")
        else:
            parts.append(f"introspection={self.introspection_url}")
            parts.append(f"introspection_client={self.client_id} ({self.introspection_auth_method})")
        if self.downstream:
            parts.append(f"downstream={','.join(api.audience for api in self.downstream)}")
            parts.append(f"exchange_client={self.exchange_client_id}")
        return " ".join(parts)


def read_settings(env_file: Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Merge the env file and the environment (environment wins), known keys only.

    ``env_file=None`` reads ``.env`` beside this module when it exists. An
    explicitly named file must exist.
    """
    environ = os.environ if environ is None else environ
    if env_file is None:
        path = DEFAULT_ENV_FILE
        if not path.is_file():
            path = None
    else:
        path = Path(env_file)
        if not path.is_file():
            raise ConfigError(f"env file not found: {path}")
    file_values = {k: v for k, v in dotenv_values(path).items() if v is not None} if path else {}
    merged = {k: file_values[k] for k in KNOWN_KEYS if k in file_values}
    merged.update({k: environ[k] for k in KNOWN_KEYS if k in environ})
    return {k: v.strip() for k, v in merged.items()}


def load_config(env_file: Path | None = None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Read and validate the configuration; raises ``ConfigError``."""
    return parse_config(read_settings(env_file, environ))


def parse_config(values: Mapping[str, str]) -> ServerConfig:
    """Validate a flat mapping of settings (the env contract) into a ``ServerConfig``."""

    def get(key: str, default: str = "") -> str:
        value = values.get(key, "")
        return value if value != "" else default

    transport = get("TRANSPORT", "streamable-http")
    if transport != "streamable-http":
        raise ConfigError(f"TRANSPORT={transport!r}: this server only serves 'streamable-http'")

    strict = _parse_bool("OAUTH_STRICT", get("OAUTH_STRICT", "true"))

    seed_host = get("HOST", "localhost")
    seed_port = _parse_port("PORT", get("PORT", "3000"))
    resource_url = get("MCP_RESOURCE_URL", f"http://{seed_host}:{seed_port}/mcp")
    _check_url("MCP_RESOURCE_URL", resource_url, strict=strict)
    resource = urlsplit(resource_url)
    host = get("HOST", resource.hostname or "localhost")
    port = _parse_port("PORT", get("PORT", str(resource.port or (443 if resource.scheme == "https" else 80))))

    auth_host = get("AUTH_HOST", "localhost")
    auth_port = _parse_port("AUTH_PORT", get("AUTH_PORT", "8080"))
    realm = get("AUTH_REALM")
    issuer = get("OAUTH_ISSUER")
    if not issuer:
        if not realm:
            raise ConfigError("OAUTH_ISSUER is not set (nor AUTH_REALM to derive it from)")
        issuer = f"http://{auth_host}:{auth_port}/realms/{realm}"
    _check_url("OAUTH_ISSUER", issuer, strict=strict)
    _check_served_verbatim(resource_url, issuer)

    audiences = _unique([resource_url, *_split(get("MCP_AUDIENCES"))])

    base_scope = get("MCP_SCOPE", "mcp:tools")
    if len(base_scope.split()) != 1:
        raise ConfigError(f"MCP_SCOPE={base_scope!r} must be a single scope")
    tool_scopes = _parse_tool_scopes(get("MCP_TOOL_SCOPES"))
    scopes_supported = _unique(_split(get("MCP_SCOPES")) or [base_scope, *(s for v in tool_scopes.values() for s in v)])
    for key, scopes in (
        ("MCP_SCOPES", scopes_supported),
        ("MCP_SCOPE", (base_scope,)),
        ("MCP_TOOL_SCOPES", tuple(s for v in tool_scopes.values() for s in v)),
    ):
        bad = FORBIDDEN_SCOPES.intersection(scopes)
        if bad:
            raise ConfigError(
                f"{key} must not contain {', '.join(sorted(bad))}: refresh tokens are not a resource scope"
            )
    for scope in (*scopes_supported, base_scope, *(s for v in tool_scopes.values() for s in v)):
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise ConfigError(f"scope {scope!r} is not a valid OAuth scope token (RFC 6749 §3.3)")
    if base_scope not in scopes_supported:
        raise ConfigError(f"MCP_SCOPE {base_scope!r} is missing from MCP_SCOPES")
    for tool, scopes in tool_scopes.items():
        unknown = [s for s in scopes if s not in scopes_supported]
        if unknown:
            raise ConfigError(f"MCP_TOOL_SCOPES: {tool}={' '.join(unknown)} is not in MCP_SCOPES")

    admin_tools = frozenset(_split(get("MCP_ADMIN_TOOLS")))
    admin_role = get("MCP_ADMIN_ROLE")
    if admin_tools and not admin_role:
        raise ConfigError("MCP_ADMIN_TOOLS is set but MCP_ADMIN_ROLE is empty")

    validation = get("MCP_TOKEN_VALIDATION", "jwt")
    if validation not in ("jwt", "introspection"):
        raise ConfigError(f"MCP_TOKEN_VALIDATION={validation!r}: expected 'jwt' or 'introspection'")
    jwks_url = get("OAUTH_JWKS_URL", f"{issuer}/protocol/openid-connect/certs")
    introspection_url = get("OAUTH_INTROSPECTION_URL", f"{issuer}/protocol/openid-connect/token/introspect")
    client_id = get("OAUTH_CLIENT_ID")
    client_secret = get("OAUTH_CLIENT_SECRET")
    if validation == "jwt":
        _check_url("OAUTH_JWKS_URL", jwks_url, strict=strict)
    else:
        _check_url("OAUTH_INTROSPECTION_URL", introspection_url, strict=strict)
        if not client_id or not client_secret:
            raise ConfigError("introspection needs OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET")
    auth_method = get("OAUTH_INTROSPECTION_AUTH_METHOD", "client_secret_basic")
    if auth_method not in ("client_secret_basic", "client_secret_post"):
        raise ConfigError(
            f"OAUTH_INTROSPECTION_AUTH_METHOD={auth_method!r}: expected client_secret_basic or client_secret_post"
        )
    try:
        cooldown = float(get("OAUTH_JWKS_REFRESH_COOLDOWN", "10"))
    except ValueError:
        raise ConfigError("OAUTH_JWKS_REFRESH_COOLDOWN must be a number of seconds") from None
    if not 0 <= cooldown <= 3600:
        raise ConfigError("OAUTH_JWKS_REFRESH_COOLDOWN must be between 0 and 3600 seconds")

    downstream = _parse_downstream(get, issuer, strict=strict)

    sender_constraint = get("MCP_SENDER_CONSTRAINT", "none")
    if sender_constraint not in ("none", "dpop"):
        raise ConfigError(f"MCP_SENDER_CONSTRAINT={sender_constraint!r}: expected 'none' or 'dpop'")
    try:
        dpop_algorithms = tuple(sorted(parse_algorithms(_split(get("DPOP_ALGORITHMS", " ".join(DEFAULT_ALGORITHMS))))))
    except ValueError as exc:
        raise ConfigError(f"DPOP_ALGORITHMS: {exc}") from None
    try:
        dpop_max_age = int(get("DPOP_PROOF_MAX_AGE", "60"))
    except ValueError:
        raise ConfigError("DPOP_PROOF_MAX_AGE must be a whole number of seconds") from None
    if not 1 <= dpop_max_age <= 600:
        raise ConfigError("DPOP_PROOF_MAX_AGE must be between 1 and 600 seconds")

    return ServerConfig(
        server_name=get("MCP_SERVER_NAME", "calculator"),
        resource_url=resource_url,
        host=host,
        port=port,
        issuer=issuer,
        audiences=audiences,
        base_scope=base_scope,
        scopes_supported=scopes_supported,
        tool_scopes=tool_scopes,
        admin_role=admin_role,
        admin_tools=admin_tools,
        token_validation=validation,  # type: ignore[arg-type]
        jwks_url=jwks_url,
        introspection_url=introspection_url,
        client_id=client_id,
        client_secret=client_secret,
        introspection_auth_method=auth_method,  # type: ignore[arg-type]
        strict=strict,
        jwks_refresh_cooldown=cooldown,
        sender_constraint=sender_constraint,  # type: ignore[arg-type]
        dpop_algorithms=dpop_algorithms,
        dpop_proof_max_age=dpop_max_age,
        log_level=get("LOG_LEVEL", "INFO").upper(),
        downstream=downstream,
        token_url=get("OAUTH_TOKEN_URL", f"{issuer}/protocol/openid-connect/token") if downstream else "",
        exchange_client_id=get("MCP_EXCHANGE_CLIENT_ID") if downstream else "",
        exchange_client_secret=get("MCP_EXCHANGE_CLIENT_SECRET") if downstream else "",
    )


def _parse_downstream(get: Callable[..., str], issuer: str, *, strict: bool) -> tuple[DownstreamApi, ...]:
    """MCP_DOWNSTREAM_AUDIENCES, their scopes and URLs; an API without a URL cannot be called, so one is required."""
    audiences = _unique(_split(get("MCP_DOWNSTREAM_AUDIENCES")))
    scopes = {aud: _unique(value.split()) for aud, value in _parse_map("MCP_DOWNSTREAM_SCOPES",
                                                                       get("MCP_DOWNSTREAM_SCOPES"), "audience=scope").items()}
    urls = _parse_map("MCP_DOWNSTREAM_URLS", get("MCP_DOWNSTREAM_URLS"), "audience=url")
    for key, named in (("MCP_DOWNSTREAM_SCOPES", scopes), ("MCP_DOWNSTREAM_URLS", urls)):
        unknown = sorted(set(named) - set(audiences))
        if unknown:
            raise ConfigError(f"{key} names {', '.join(unknown)}, which is not in MCP_DOWNSTREAM_AUDIENCES")
    if not audiences:
        return ()
    for aud in audiences:
        if aud not in urls:
            raise ConfigError(f"MCP_DOWNSTREAM_URLS has no URL for {aud!r}: the server cannot reach it")
        _check_url(f"MCP_DOWNSTREAM_URLS ({aud})", urls[aud], strict=strict)
        for scope in scopes.get(aud, ()):
            if not _SCOPE_TOKEN.fullmatch(scope):
                raise ConfigError(f"MCP_DOWNSTREAM_SCOPES: {scope!r} is not a valid OAuth scope token (RFC 6749 §3.3)")
    _check_url("OAUTH_TOKEN_URL", get("OAUTH_TOKEN_URL", f"{issuer}/protocol/openid-connect/token"), strict=strict)
    if not get("MCP_EXCHANGE_CLIENT_ID") or not get("MCP_EXCHANGE_CLIENT_SECRET"):
        raise ConfigError("MCP_DOWNSTREAM_AUDIENCES needs MCP_EXCHANGE_CLIENT_ID and MCP_EXCHANGE_CLIENT_SECRET "
                          "(the confidential client that exchanges tokens)")
    return tuple(DownstreamApi(aud, scopes.get(aud, ()), urls[aud]) for aud in audiences)


def _split(value: str) -> list[str]:
    """Split a list setting on commas and/or whitespace."""
    return [item for item in value.replace(",", " ").split() if item]


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _parse_bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key}={value!r}: expected true or false")


def _parse_port(key: str, value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{key}={value!r} is not a port number")
    return port


def _parse_tool_scopes(value: str) -> dict[str, tuple[str, ...]]:
    """``add=mcp:tools,reset=mcp:admin`` -> {"add": ("mcp:tools",), "reset": ("mcp:admin",)}.

    A tool may list several scopes separated by spaces (``reset=mcp:admin mcp:audit``).
    """
    return {tool: _unique(scopes.split()) for tool, scopes in _parse_map("MCP_TOOL_SCOPES", value, "tool=scope").items()}


def _parse_map(key: str, value: str, shape: str) -> dict[str, str]:
    """``a=x y,b=z`` -> {"a": "x y", "b": "z"}; an entry without a name or a value is a ConfigError."""
    result: dict[str, str] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        name, sep, rest = entry.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise ConfigError(f"{key} entry {entry!r}: expected {shape}")
        result[name.strip()] = rest.strip()
    return result


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(key: str, url: str, *, strict: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}={url!r} is not an absolute http(s) URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"{key}={url!r} must not have a query or fragment")
    if strict and parts.scheme != "https" and not _is_loopback(parts.hostname):
        raise ConfigError(f"{key}={url!r}: OAUTH_STRICT=true requires https for non-loopback hosts")


def _check_served_verbatim(resource_url: str, issuer: str) -> None:
    """The SDK serves both URLs through pydantic ``AnyHttpUrl``, which normalises
    (lower-cases the host, drops a default port, percent-encodes). Clients compare
    ``resource`` and ``authorization_servers`` as exact strings (RFC 9728 §3.3,
    RFC 8414 §3.3), so refuse any spelling that would not be served verbatim."""
    served = ProtectedResourceMetadata(resource=resource_url, authorization_servers=[issuer])  # type: ignore[arg-type]
    if str(served.resource) != resource_url:
        raise ConfigError(f"MCP_RESOURCE_URL={resource_url!r} is not canonical; write it as {str(served.resource)!r}")
    if str(served.authorization_servers[0]) != issuer:
        raise ConfigError(
            f"OAUTH_ISSUER={issuer!r} is not canonical; write it as {str(served.authorization_servers[0])!r}"
        )
