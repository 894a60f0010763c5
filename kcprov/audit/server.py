"""`kcprov audit --server URL`: probing a running MCP server from the outside, as a client and as an attacker.

Without credentials it does what every MCP client does first (A5, A13): an
`initialize` without a token must get a 401 whose `WWW-Authenticate: Bearer`
challenge leads to the RFC 9728 metadata, that metadata must describe exactly
this URL and name an authorization server, and that server's RFC 8414 / OIDC
metadata (found in the order clients must try) must carry the issuer it was
asked for, PKCE S256 and RFC 9207 `iss`.

With admin rights on the authorization server's realm (a `KeycloakClient`) it
also sends tokens: a good one (must be accepted), and ones a resource server
must refuse (another audience, another realm of the same Keycloak, expired,
`alg: none`, HS256 keyed with the realm's public key), a token lacking a
tool's scope (403 `insufficient_scope`), a session id without a token (A57).
The tokens come from a temporary confidential client with a service account,
`kcprov-audit-<random>`, and a temporary realm of the same name; both are
removed when the audit ends, whatever ends it (an exception, Ctrl-C, SIGTERM):
the clean-up runs in `finally`, with SIGINT and SIGTERM held off until it is
done. Tools are called only with a token that lacks a scope the server
advertises beyond its base scope, with no arguments: a server that enforces
its scopes never runs them. The MCP sessions the audit opens are ended
(DELETE) before it returns. Tokens and the client's secret never reach a
message; a response that echoes one is itself a finding.

Tokens are minted with Keycloak's client-credentials grant, never with
`resource=` (with the resource-indicators feature on, Keycloak answers
`invalid_target` for a client without `resource_url`; checked on 26.7.3): the
server's audience comes from an audience mapper on the temporary client.
The expired token comes from the same client with `access.token.lifespan` 1 s.

Every HTTP exchange with the MCP server and with Keycloak's OAuth endpoints is
here (those are the protocol under audit, not the Admin API); Admin API calls
go through `KeycloakClient`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from kcprov.audit.rules import Finding, Location, Rule, Severity, register
from kcprov.errors import KcprovError, KeycloakApiError
from kcprov.keycloak import KeycloakClient, seg
from kcprov.terminal import printable
from kcprov.urls import is_loopback

HIGH, MEDIUM, LOW = Severity.HIGH, Severity.MEDIUM, Severity.LOW


def _rule(id: str, severity: Severity, title: str, rests_on: str, fix: str) -> Rule:
    return register(Rule(id, severity, title, rests_on, fix, scope="server"))


# -- without credentials --------------------------------------------------------------------
UNAUTHENTICATED = _rule(
    "server-unauthenticated-access", HIGH, "the MCP server answers an initialize without a token",
    "A38, A41", "require a valid bearer token on every request to the MCP endpoint")
NO_CHALLENGE = _rule(
    "server-no-bearer-challenge", MEDIUM, "no 401 with a WWW-Authenticate: Bearer challenge for a missing token",
    "A5, A41", "answer 401 with WWW-Authenticate: Bearer resource_metadata=\"...\" when the token is missing")
NO_RESOURCE_METADATA = _rule(
    "server-challenge-without-resource-metadata", MEDIUM, "the 401 challenge does not name the resource metadata",
    "A5", "add resource_metadata=\"<the PRM URL>\" to the 401's WWW-Authenticate")
NO_CHALLENGE_SCOPE = _rule(
    "server-challenge-without-scope", LOW, "the 401 challenge has no scope parameter",
    "A8", "add scope=\"<the base scope>\" to the 401's WWW-Authenticate")
PRM_MISSING = _rule(
    "server-prm-missing", HIGH, "no Protected Resource Metadata (RFC 9728) is served",
    "A4, A5", "serve the metadata at /.well-known/oauth-protected-resource/<path of the MCP URL>")
PRM_NOT_WELL_KNOWN = _rule(
    "server-prm-not-at-well-known", MEDIUM,
    "the metadata is served only at the challenge's URL, not at the path-suffixed well-known URL",
    "A4, A5", "serve the metadata at /.well-known/oauth-protected-resource/<path of the MCP URL> too")
PRM_RESOURCE = _rule(
    "server-prm-resource-mismatch", HIGH, "the metadata's resource is not the MCP server's URL",
    "A4 (RFC 9728 §3.3)", "set resource to exactly the URL clients use (MCP_RESOURCE_URL)")
PRM_NO_AS = _rule(
    "server-prm-without-authorization-server", HIGH, "the metadata names no authorization server",
    "A4", "list the Keycloak realm's issuer in authorization_servers")
OFFLINE_ACCESS = _rule(
    "server-offline-access-advertised", MEDIUM, "offline_access is in the metadata's scopes or the challenge",
    "A11", "drop offline_access from scopes_supported and from challenges; refresh tokens are not a resource's scope")
PLAIN_HTTP = _rule(
    "server-plain-http", HIGH, "the MCP server or its authorization server is reached over plain http, not loopback",
    "A50, seed: HTTPS except loopback", "serve both over https (plain http only on loopback, for development)")
AS_METADATA_MISSING = _rule(
    "server-as-metadata-missing", HIGH,
    "no RFC 8414 or OIDC metadata at any URL clients try for the authorization server",
    "A12, A13", "name the realm's issuer exactly (https://host/realms/NAME) in authorization_servers")
AS_ISSUER = _rule(
    "server-as-issuer-mismatch", HIGH, "the authorization server metadata's issuer differs from the one named",
    "A14 (RFC 8414 §3.3)", "name the issuer exactly as Keycloak reports it (scheme, host, port, no trailing slash)")
PKCE_S256 = _rule(
    "server-pkce-s256-not-advertised", HIGH, "the authorization server does not advertise PKCE S256",
    "A25-A28", "use a Keycloak that lists S256 in code_challenge_methods_supported")
ISS_PARAMETER = _rule(
    "server-iss-parameter-not-advertised", MEDIUM,
    "the authorization server does not advertise iss in authorization responses (mix-up defence)",
    "A31 (RFC 9207)", "use Keycloak 26 or later, which sends iss and sets authorization_response_iss_parameter_supported")

# -- with tokens minted through a temporary client ----------------------------------------
VALID_REFUSED = _rule(
    "server-rejects-valid-token", MEDIUM,
    "a token for this server with its scopes is refused (the token probes could not run)",
    "A39", "accept tokens whose aud holds the server's URL and whose iss is the realm's issuer")
WRONG_AUDIENCE = _rule(
    "server-accepts-wrong-audience", HIGH, "a token issued for another audience is accepted",
    "A39 (RFC 8707, RFC 9068)", "check that aud holds this server's URL; refuse everything else with 401")
OTHER_REALM = _rule(
    "server-accepts-other-realm-token", HIGH, "a token from another realm of the same Keycloak is accepted",
    "A38, A39, seed: realm mix-ups", "compare iss exactly and take signing keys only from the configured realm's JWKS")
EXPIRED = _rule(
    "server-accepts-expired-token", HIGH, "an expired token is accepted",
    "A38, A41", "check exp on every request (a leeway of seconds at most)")
ALG_NONE = _rule(
    "server-accepts-unsigned-token", HIGH, "a token with alg: none is accepted",
    "A38", "accept only the asymmetric algorithms of the realm's keys; never alg none")
HS256_PUBLIC_KEY = _rule(
    "server-accepts-hs256-public-key", HIGH, "an HS256 token keyed with the realm's public key is accepted",
    "A38 (algorithm confusion)", "pin the algorithm to the JWK's (RS256, ...); never HS* with a public key")
SESSION_AUTH = _rule(
    "server-session-id-authenticates", HIGH, "an Mcp-Session-Id without a token is served",
    "A57", "verify the bearer token on every request; a session id is never authentication")
BASE_SCOPE = _rule(
    "server-base-scope-unenforced", MEDIUM, "a token without the challenge's scope is served",
    "A41, A42", "refuse a token lacking the base scope with 403 insufficient_scope")
SCOPE_CHALLENGE = _rule(
    "server-insufficient-scope-challenge", MEDIUM,
    "a tool call lacking a scope is not answered 403 with an insufficient_scope challenge naming the scopes",
    "A41, A42, A43", "answer 403 WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"<all the call needs>\", "
                     "resource_metadata=\"...\"")
TOOL_SCOPES = _rule(
    "server-tool-scopes-unenforced", MEDIUM,
    "scopes beyond the base scope are advertised, yet every tool runs without them",
    "A41, A44", "check each tool's scopes on tools/call, or stop advertising scopes no tool needs")
ECHOED = _rule(
    "server-echoes-credentials", HIGH, "a response carries the token or the client secret it was sent",
    "A48, seed: no credential logging, error leakage", "never put tokens or secrets into responses or error messages")
REFUSAL_STATUS = _rule(
    "server-refusal-status", LOW, "a refused token is answered with a status other than 401",
    "A41", "answer a missing, invalid or expired token with 401 and a Bearer challenge")

MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
PROTOCOL_VERSION = "2025-11-25"
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
               "clientInfo": {"name": "kcprov-audit", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
OTHER_AUDIENCE = "https://kcprov-audit.invalid/not-this-server"
TEMPORARY_PREFIX = "kcprov-audit-"
MAX_BODY = 1 << 20  # bytes of a response read; a hostile server cannot make the audit hold more
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')


@dataclass
class Answer:
    """What one request got back (the body capped at MAX_BODY)."""

    status: int
    headers: httpx.Headers
    body: bytes

    def challenge(self) -> dict[str, str] | None:
        """The parameters of a `WWW-Authenticate: Bearer ...` challenge, or None if there is none."""
        for value in self.headers.get_list("www-authenticate"):
            scheme, _, rest = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                return {m[1].lower(): (m[2].replace('\\"', '"').replace("\\\\", "\\") if m[2] is not None else m[3])
                        for m in _CHALLENGE_PARAM.finditer(rest)}
        return None

    def json(self) -> Any:
        """The JSON body, or the JSON-RPC message of a text/event-stream body; None if neither."""
        text = self.body.decode("utf-8", "replace")
        if self.headers.get("content-type", "").startswith("text/event-stream"):
            data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
            text = data[-1] if data else ""
        try:
            return json.loads(text)
        except ValueError:
            return None


@dataclass
class Discovery:
    """What the credential-free probes learnt: the base scope(s), the metadata documents."""

    base_scopes: list[str] = field(default_factory=list)
    prm: dict | None = None
    issuer: str | None = None
    as_metadata: dict | None = None


class Unreachable(KcprovError):
    """A URL of the audit gave no HTTP answer (refused, timed out, TLS failed, no such host)."""


class _Probe:
    """One audit's requests to one server, and the findings they gave."""

    def __init__(self, url: str, http: httpx.Client) -> None:
        self.url = url
        self.http = http
        self.findings: list[Finding] = []
        self.sent: dict[str, str] = {}  # credential -> what it is, looked for in every answer
        self.echoed = ""  # what the first echoing answer carried
        self.sessions: list[tuple[str, str]] = []  # (token, session id) of each session opened

    # -- plumbing ------------------------------------------------------------------
    def find(self, rule: Rule, message: str, url: str | None = None) -> None:
        self.findings.append(Finding(rule, message, Location(url=url or self.url)))

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        try:
            with self.http.stream(method, url, **kwargs) as resp:
                body = b""
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) >= MAX_BODY:
                        break
                answer = Answer(resp.status_code, resp.headers, body[:MAX_BODY])
        except httpx.HTTPError as exc:
            raise Unreachable(f"{method} {printable(url)} failed: {type(exc).__name__}.",
                              hint="is the server running and the URL right? (--insecure / --ca-cert for TLS)") from None
        self._look_for_credentials(answer)
        return answer

    def mcp(self, message: dict, token: str | None = None, session: str | None = None,
            version: str | None = None) -> Answer:
        headers = dict(MCP_HEADERS)
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        if session:
            headers["mcp-session-id"] = session
        if version:
            headers["mcp-protocol-version"] = version
        return self.request("POST", self.url, content=json.dumps(message).encode(), headers=headers)

    def get_json(self, url: str) -> tuple[Answer, dict | None]:
        answer = self.request("GET", url, headers={"accept": "application/json"})
        doc = answer.json() if answer.status == 200 else None
        return answer, doc if isinstance(doc, dict) else None

    def _look_for_credentials(self, answer: Answer) -> None:
        """One finding for the first answer that carries something this audit sent (whole credentials first)."""
        if self.echoed or not self.sent:
            return
        text = answer.body.decode("utf-8", "replace") + "\n" + "\n".join(
            f"{k}: {v}" for k, v in answer.headers.multi_items())
        for credential, what in sorted(self.sent.items(), key=lambda item: -len(item[0])):
            if credential in text:
                self.echoed = what
                self.find(ECHOED, f"an answer (HTTP {answer.status}) contains {what}")
                return

    # -- without credentials ---------------------------------------------------------
    def discover(self) -> Discovery:
        found = Discovery()
        self._check_https(self.url, "the MCP server")
        answer = self.mcp(INITIALIZE)
        challenge = answer.challenge()
        if 200 <= answer.status < 300:
            self.find(UNAUTHENTICATED, f"an initialize without a token was answered HTTP {answer.status}")
        elif answer.status != 401 or challenge is None:
            how = "with" if challenge is not None else "without"
            self.find(NO_CHALLENGE, f"an initialize without a token got HTTP {answer.status} "
                                    f"{how} a WWW-Authenticate: Bearer challenge, not 401 with one")
        if answer.status == 401 and challenge is not None:
            if not challenge.get("resource_metadata"):
                self.find(NO_RESOURCE_METADATA, "the 401 challenge has no resource_metadata parameter")
            if not challenge.get("scope"):
                self.find(NO_CHALLENGE_SCOPE, "the 401 challenge has no scope parameter")
        challenge = challenge or {}
        found.base_scopes = challenge.get("scope", "").split()
        if "offline_access" in found.base_scopes:
            self.find(OFFLINE_ACCESS, "the 401 challenge asks for offline_access")

        well_known = prm_url(self.url)
        _, prm = self.get_json(well_known)
        where = well_known
        if prm is None:
            named = challenge.get("resource_metadata")
            if named and named != well_known and urlsplit(named).scheme in ("http", "https"):
                _, prm = self.get_json(named)
                where = named
            if prm is None:
                self.find(PRM_MISSING, f"no metadata document at {printable(well_known)}"
                                       + (" nor at the challenge's resource_metadata" if named else ""), well_known)
                return found
            self.find(PRM_NOT_WELL_KNOWN, f"nothing at {printable(well_known)}; the metadata is only at "
                                          f"{printable(where)}", well_known)
        found.prm = prm
        if prm.get("resource") != self.url:
            self.find(PRM_RESOURCE, f"resource is {printable(json.dumps(prm.get('resource')))}, "
                                    f"not {printable(self.url)}", where)
        servers = prm.get("authorization_servers")
        issuers = [s for s in servers if isinstance(s, str) and s] if isinstance(servers, list) else []
        if not issuers:
            self.find(PRM_NO_AS, "authorization_servers is missing or empty", where)
            return found
        scopes = prm.get("scopes_supported")
        if isinstance(scopes, list) and "offline_access" in scopes:
            self.find(OFFLINE_ACCESS, "scopes_supported lists offline_access", where)
        found.issuer = issuers[0]
        self._check_https(found.issuer, "the authorization server")
        found.as_metadata = self._authorization_server(found.issuer)
        return found

    def _check_https(self, url: str, what: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" and not is_loopback(parts.hostname):
            self.find(PLAIN_HTTP, f"{what} is at {printable(url)}: {parts.scheme or 'no scheme'}, not https", url)

    def _authorization_server(self, issuer: str) -> dict | None:
        tried = []
        for url in as_metadata_urls(issuer):
            try:
                answer, doc = self.get_json(url)
            except Unreachable:
                tried.append(f"{printable(url)} (no answer)")
                continue
            tried.append(f"{printable(url)} (HTTP {answer.status})")
            if doc is not None:
                break
        else:
            self.find(AS_METADATA_MISSING, f"no metadata for issuer {printable(issuer)}: tried {', '.join(tried)}",
                      issuer)
            return None
        if doc.get("issuer") != issuer:
            self.find(AS_ISSUER, f"{printable(url)} says issuer {printable(json.dumps(doc.get('issuer')))}, "
                                 f"the MCP server names {printable(issuer)}", url)
        methods = doc.get("code_challenge_methods_supported")
        if not isinstance(methods, list) or "S256" not in methods:
            self.find(PKCE_S256, "code_challenge_methods_supported does not list S256", url)
        if doc.get("authorization_response_iss_parameter_supported") is not True:
            self.find(ISS_PARAMETER, "authorization_response_iss_parameter_supported is not true", url)
        return doc

    # -- with tokens ---------------------------------------------------------------
    def expect_refused(self, rule: Rule, token: str, what: str) -> None:
        """`token` must be refused with 401; served, or read for its scopes (403 insufficient_scope), is `rule`."""
        answer = self.mcp(INITIALIZE, token)
        if answer.status == 401:
            return
        challenge = answer.challenge() or {}
        if 200 <= answer.status < 300:
            self.find(rule, f"{what} was accepted (initialize answered HTTP {answer.status})")
        elif answer.status == 403 and challenge.get("error") == "insufficient_scope":
            self.find(rule, f"{what} was taken as valid: HTTP 403 insufficient_scope, so its scopes were read")
        else:
            self.find(REFUSAL_STATUS, f"{what} was refused with HTTP {answer.status}, not 401")

    def session(self, token: str) -> tuple[Answer, str | None, str | None]:
        """An initialize (and its notification) with `token`: the answer, the session id, the protocol version."""
        answer = self.mcp(INITIALIZE, token)
        if not 200 <= answer.status < 300:
            return answer, None, None
        result = (answer.json() or {}).get("result") if isinstance(answer.json(), dict) else None
        version = result.get("protocolVersion") if isinstance(result, dict) else None
        version = version if isinstance(version, str) and version.isprintable() else None
        session = answer.headers.get("mcp-session-id")
        self.mcp(INITIALIZED, token, session, version)
        if session:
            self.sessions.append((token, session))
        return answer, session, version

    def close_sessions(self) -> None:
        """End the sessions the audit opened (streamable HTTP: DELETE with the session id), so none lingers."""
        for token, session in self.sessions:
            self.request("DELETE", self.url, headers={"authorization": f"Bearer {token}", "mcp-session-id": session})
        self.sessions.clear()

    def tools(self, token: str, session: str | None, version: str | None) -> list[str]:
        answer = self.mcp(TOOLS_LIST, token, session, version)
        message = answer.json()
        result = message.get("result") if isinstance(message, dict) else None
        tools = result.get("tools") if isinstance(result, dict) else None
        names = [t.get("name") for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
        return [n for n in names if isinstance(n, str)]


def prm_url(url: str) -> str:
    """RFC 9728 §3.1: the well-known suffix between the host and the resource's path."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{path}"


def as_metadata_urls(issuer: str) -> list[str]:
    """A13: the URLs a client tries for an issuer, in order (RFC 8414 §3.1 path insertion, then OIDC)."""
    parts = urlsplit(issuer)
    base, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
    if not path:
        return [f"{base}/.well-known/oauth-authorization-server", f"{base}/.well-known/openid-configuration"]
    return [f"{base}/.well-known/oauth-authorization-server{path}",
            f"{base}/.well-known/openid-configuration{path}",
            f"{base}{path}/.well-known/openid-configuration"]


# -- tokens ---------------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def token_parts(token: str) -> tuple[dict, dict]:
    """Header and payload of a JWT this audit minted (not verified: it is ours)."""
    header, payload, _ = token.split(".")
    return json.loads(_b64decode(header)), json.loads(_b64decode(payload))


def forge_unsigned(token: str) -> str:
    """The token's payload under `alg: none`, with no signature."""
    header, _ = token_parts(token)
    forged = {"alg": "none", "typ": "JWT", **({"kid": header["kid"]} if "kid" in header else {})}
    return f"{_b64url(json.dumps(forged).encode())}.{token.split('.')[1]}."


def forge_hs256(token: str, secret: bytes) -> str:
    """The token's payload under HS256 with `secret` as the HMAC key (the algorithm-confusion attack)."""
    header, _ = token_parts(token)
    forged = {"alg": "HS256", "typ": "JWT", **({"kid": header["kid"]} if "kid" in header else {})}
    signing_input = f"{_b64url(json.dumps(forged).encode())}.{token.split('.')[1]}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def public_key_pem(jwk: dict) -> bytes | None:
    """The PEM (SubjectPublicKeyInfo) of an RSA JWK, as a confused verifier would load it; None for other keys."""
    if jwk.get("kty") != "RSA" or not isinstance(jwk.get("n"), str) or not isinstance(jwk.get("e"), str):
        return None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    n, e = (int.from_bytes(_b64decode(jwk[k]), "big") for k in ("n", "e"))
    return RSAPublicNumbers(e, n).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _audience_mapper(name: str, audience: str) -> dict:
    return {"name": name, "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
            "config": {"included.custom.audience": audience, "access.token.claim": "true",
                       "introspection.token.claim": "true", "id.token.claim": "false"}}


def _temporary_client(client_id: str, secret: str, default: list[str], optional: list[str],
                      mappers: list[dict]) -> dict:
    return {
        "clientId": client_id,
        "name": "kcprov audit (temporary)",
        "description": "Made by `kcprov audit --server` to mint test tokens; removed when the audit ends. "
                       "Safe to delete.",
        "enabled": True, "publicClient": False, "clientAuthenticatorType": "client-secret", "secret": secret,
        "serviceAccountsEnabled": True, "standardFlowEnabled": False, "implicitFlowEnabled": False,
        "directAccessGrantsEnabled": False, "fullScopeAllowed": False,
        "defaultClientScopes": default, "optionalClientScopes": optional, "protocolMappers": mappers,
    }


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then interrupt (KeyboardInterrupt).

    For what must not be cut in half: the creation of a temporary object
    (Keycloak would finish making it after kcprov stopped waiting, unseen by
    the clean-up) and the clean-up itself. Signal handlers can only be set
    from the main thread; elsewhere signals never interrupt this thread, so
    there is nothing to hold.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: held.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if held:
        raise KeyboardInterrupt


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (as Ctrl-C does), so the clean-up in `finally` runs instead of a bare exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class TemporaryObjects:
    """The temporary client and realm of one audit, and their removal.

    A creation holds SIGINT/SIGTERM until Keycloak has answered (cut short,
    Keycloak would still finish it, after the clean-up looked), and removal
    looks the objects up by their names, chosen before anything is made.
    """

    def __init__(self, client: KeycloakClient, realm: str) -> None:
        self.client = client
        self.realm = realm
        self.name = TEMPORARY_PREFIX + secrets.token_hex(4)
        self.other_realm: str | None = None

    def remove_client(self) -> None:
        path = f"/admin/realms/{seg(self.realm)}/clients"
        for found in self.client.get(path, f"temporary client '{self.name}'", clientId=self.name) or []:
            if found.get("clientId") == self.name:
                self.client.delete(f"{path}/{found['id']}", f"temporary client '{self.name}'")

    def remove_realm(self) -> None:
        if self.other_realm is None:
            return
        what = f"temporary realm '{self.other_realm}'"
        if self.client.get_optional(f"/admin/realms/{seg(self.other_realm)}", what) is not None:
            self.client.delete(f"/admin/realms/{seg(self.other_realm)}", what)
        self.other_realm = None

    def create_client(self, rep: dict) -> str | None:
        with _signals_held():
            return self.client.post(f"/admin/realms/{seg(self.realm)}/clients", rep, f"temporary client '{self.name}'")

    def create_realm(self, rep: dict) -> None:
        with _signals_held():
            self.other_realm = rep["realm"]
            self.client.post("/admin/realms", rep, f"temporary realm '{self.other_realm}'")

    def remove(self) -> None:
        with _signals_held():
            failures = []
            for step, what in ((self.remove_client, f"client '{self.name}' in realm '{self.realm}'"),
                               (self.remove_realm, f"realm '{self.other_realm}'")):
                try:
                    step()
                except KcprovError as exc:
                    failures.append(f"{what} ({exc.message})")
            if failures:
                raise KcprovError(f"kcprov audit could not remove its temporary {'; '.join(failures)}.",
                                  hint=f"delete what is named {TEMPORARY_PREFIX}* by hand (it holds no rights)")


@contextmanager
def temporary_objects(client: KeycloakClient, realm: str) -> Iterator[TemporaryObjects]:
    made = TemporaryObjects(client, realm)
    with _sigterm_interrupts():
        try:
            yield made
        finally:
            made.remove()


class _Minter:
    """Client-credentials tokens at a realm's token endpoint, for one client."""

    def __init__(self, probe: _Probe, token_endpoint: str, client_id: str, secret: str) -> None:
        self.probe, self.token_endpoint, self.client_id, self.secret = probe, token_endpoint, client_id, secret

    def __call__(self, scopes: list[str] | None) -> str:
        form = {"grant_type": "client_credentials"}
        if scopes:
            form["scope"] = " ".join(scopes)
        try:
            resp = self.probe.http.post(self.token_endpoint, data=form, auth=(self.client_id, self.secret),
                                        headers={"accept": "application/json"})
            token = resp.json().get("access_token") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            resp, token = None, None
        if not isinstance(token, str) or token.count(".") != 2:
            status = f"HTTP {resp.status_code}" if resp is not None else "no answer"
            raise KcprovError(f"the token endpoint {printable(self.token_endpoint)} gave the temporary client "
                              f"'{self.client_id}' no access token ({status}).",
                              hint="check that kcprov reaches Keycloak at the issuer's address") from None
        self.probe.sent[token] = "an access token it was sent"
        self.probe.sent[token.split(".")[2]] = "an access token's signature"
        return token


def _realm_of(issuer: str) -> str | None:
    match = re.fullmatch(r"(?:.*)/realms/([^/]+)", urlsplit(issuer).path)
    return unquote(match[1]) if match else None


class _NoTokens(Exception):
    """The token probes cannot run with this Keycloak client; the message says why (no secret in it)."""


def _probe_with_tokens(probe: _Probe, found: Discovery, client: KeycloakClient, realm: str | None) -> None:
    assert found.issuer is not None and found.as_metadata is not None
    realm = realm or _realm_of(found.issuer)
    if not realm:
        raise _NoTokens(f"the issuer {printable(found.issuer)} names no Keycloak realm (/realms/NAME)")
    try:
        there = client.get_optional(f"/admin/realms/{seg(realm)}", f"realm '{realm}'")
    except KeycloakApiError as exc:
        if exc.status != 403:
            raise
        there = None
    if there is None:
        raise _NoTokens(f"kcprov has no admin rights on realm '{printable(realm)}' of the Keycloak at "
                        f"{printable(client.settings.url)} (issuer {printable(found.issuer)})")
    token_endpoint = found.as_metadata.get("token_endpoint")
    if not isinstance(token_endpoint, str) or f"/realms/{seg(realm)}/" not in token_endpoint:
        raise _NoTokens(f"the authorization server metadata names no token endpoint of realm '{printable(realm)}'")
    advertised = (found.prm or {}).get("scopes_supported")
    advertised = [s for s in advertised if isinstance(s, str)] if isinstance(advertised, list) else []
    names = {s.get("name") for s in client.get(f"/admin/realms/{seg(realm)}/client-scopes", "client scopes") or []}
    scopes = [s for s in dict.fromkeys(found.base_scopes + advertised) if s in names and s != "offline_access"]
    base = [s for s in found.base_scopes if s in scopes] or scopes[:1]

    with temporary_objects(client, realm) as made:
        secret = secrets.token_urlsafe(32)
        probe.sent[secret] = "the temporary client's secret"
        clients = f"/admin/realms/{seg(realm)}/clients"
        default = ["basic"] if "basic" in names and "basic" not in scopes else []
        uuid = made.create_client(_temporary_client(made.name, secret, default, scopes,
                                                    [_audience_mapper("other-audience", OTHER_AUDIENCE)]))
        mint = _Minter(probe, token_endpoint, made.name, secret)

        # Another audience: with the scopes if the realm binds no audience to them, else without any.
        other = mint(scopes)
        if probe.url in _audiences(other):
            other = mint(None)
        client.post(f"{clients}/{uuid}/protocol-mappers/models", _audience_mapper("this-server", probe.url),
                    f"audience mapper of '{made.name}'")
        good = mint(scopes)
        issued_by = token_parts(good)[1].get("iss")
        if issued_by != found.issuer:
            raise _NoTokens(f"realm '{printable(realm)}' issues tokens with iss {printable(issued_by)}, not the "
                            f"server's authorization server {printable(found.issuer)}")
        lacking_base = mint(None) if base else None
        base_only = mint(base) if set(scopes) - set(base) else None

        # Another realm of the same Keycloak: same client, scopes and audience, other issuer and keys.
        made.create_realm({
            "realm": made.name, "enabled": True,
            "clientScopes": [{"name": s, "protocol": "openid-connect", "attributes": {"include.in.token.scope": "true"}}
                             for s in scopes],
            "clients": [_temporary_client(made.name, secret, [], scopes,
                                          [_audience_mapper("this-server", probe.url)])],
        })
        foreign = _Minter(probe, token_endpoint.replace(f"/realms/{seg(realm)}/", f"/realms/{seg(made.name)}/"),
                          made.name, secret)(scopes)

        # Expired: the client's tokens now live 1 s; its probe runs last, after the others.
        rep = client.get(f"{clients}/{uuid}", f"temporary client '{made.name}'")
        rep["attributes"] = {**(rep.get("attributes") or {}), "access.token.lifespan": "1"}
        client.put(f"{clients}/{uuid}", rep, f"temporary client '{made.name}'")
        expired = mint(scopes)
        expires = token_parts(expired)[1].get("exp", 0)

        unsigned = forge_unsigned(good)
        probe.sent[unsigned] = "a forged token it was sent"
        hs256 = _forge_with_public_key(probe, found.as_metadata, good)

        answer, session, version = probe.session(good)
        if not 200 <= answer.status < 300:
            probe.find(VALID_REFUSED, f"a token with aud {printable(probe.url)} and scope "
                                      f"'{' '.join(scopes)}' got HTTP {answer.status} at initialize")
            return
        probe.expect_refused(WRONG_AUDIENCE, other, f"a token for audience {OTHER_AUDIENCE} only")
        probe.expect_refused(OTHER_REALM, foreign, f"a token from realm '{made.name}' of the same Keycloak")
        probe.expect_refused(ALG_NONE, unsigned, "the valid token re-encoded with alg none and no signature")
        if hs256 is not None:
            probe.expect_refused(HS256_PUBLIC_KEY, hs256, "the valid token re-signed HS256 with the realm's public key")
        if session:
            _session_alone(probe, session, version)
        if lacking_base is not None:
            _base_scope(probe, lacking_base, base)
        if base_only is not None:
            _tool_scopes(probe, good, base_only, base, session, version)
        probe.close_sessions()
        while time.time() < expires + 2:  # 2 s past exp: a clock a second apart still sees it expired
            time.sleep(0.2)
        probe.expect_refused(EXPIRED, expired, "a token expired 2 s ago")


def _audiences(token: str) -> list[str]:
    aud = token_parts(token)[1].get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def _forge_with_public_key(probe: _Probe, as_metadata: dict, token: str) -> str | None:
    jwks_uri = as_metadata.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        return None
    _, jwks = probe.get_json(jwks_uri)
    kid = token_parts(token)[0].get("kid")
    keys = jwks.get("keys") if jwks else None
    jwk = next((k for k in keys if isinstance(k, dict) and k.get("kid") == kid), None) if isinstance(keys, list) else None
    pem = public_key_pem(jwk) if jwk else None
    if pem is None:
        return None
    forged = forge_hs256(token, pem)
    probe.sent[forged] = "a forged token it was sent"
    return forged


def _session_alone(probe: _Probe, session: str, version: str | None) -> None:
    answer = probe.mcp(TOOLS_LIST, None, session, version)
    if 200 <= answer.status < 300:
        probe.find(SESSION_AUTH, f"tools/list with the Mcp-Session-Id of an authorised session and no token was "
                                 f"answered HTTP {answer.status}")
    elif answer.status != 401:
        probe.find(REFUSAL_STATUS, f"tools/list with an Mcp-Session-Id and no token got HTTP {answer.status}, not 401")


def _base_scope(probe: _Probe, token: str, base: list[str]) -> None:
    answer = probe.mcp(INITIALIZE, token)
    if 200 <= answer.status < 300:
        probe.find(BASE_SCOPE, f"a token without scope '{' '.join(base)}' (the challenge's) was answered "
                               f"HTTP {answer.status}")
    elif answer.status != 403 or (answer.challenge() or {}).get("error") != "insufficient_scope":
        probe.find(SCOPE_CHALLENGE, f"a token without scope '{' '.join(base)}' got HTTP {answer.status} "
                                    "without an insufficient_scope challenge, not 403 with one")


def _tool_scopes(probe: _Probe, good: str, token: str, base: list[str], session: str | None,
                 version: str | None) -> None:
    """Each tool, called with only the base scope(s) and no arguments: refused properly, or callable."""
    tools = probe.tools(good, session, version)
    if not tools:
        return
    _, own_session, own_version = probe.session(token)
    refused = 0
    for name in tools:
        call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": name, "arguments": {}}}
        answer = probe.mcp(call, token, own_session, own_version)
        challenge = answer.challenge() or {}
        if answer.status == 403 and challenge.get("error") == "insufficient_scope":
            refused += 1
            asked = challenge.get("scope", "").split()
            if not set(asked) - set(base) or not challenge.get("resource_metadata"):
                probe.find(SCOPE_CHALLENGE, f"tool '{printable(name)}' was refused with a challenge whose scope "
                                            f"('{printable(' '.join(asked))}') names no scope the token lacks, or "
                                            "without resource_metadata")
        elif answer.status in (401, 403):
            refused += 1
            probe.find(SCOPE_CHALLENGE, f"tool '{printable(name)}' was refused with HTTP {answer.status} "
                                        "without an insufficient_scope challenge")
    if not refused:
        probe.find(TOOL_SCOPES, f"all {len(tools)} tools answered a token with only '{' '.join(base)}', "
                                "though the metadata advertises more scopes")


def audit_server(url: str, *, client: KeycloakClient | None = None, realm: str | None = None,
                 note: Callable[[str], None] | None = None, verify: bool | str | None = None,
                 timeout: float = 30.0) -> list[Finding]:
    """Probe the MCP server at `url`; with `client` (admin rights on its realm), with minted tokens too.

    `realm` overrides the realm named by the server's authorization server
    (the segment after /realms/ of its issuer). When the token probes cannot
    run (no metadata to start from, no rights on that realm, tokens of another
    issuer), `note` is told why and the credential-free findings are returned.
    `verify` is httpx's (True, False or a CA bundle path); by default the
    client's TLS setting, else True.
    """
    if verify is None:
        verify = client.settings.verify if client is not None else True
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KcprovError(f"--server {printable(url)} is not an http(s) URL.", hint="give the MCP endpoint, e.g. "
                                                                               "https://mcp.example.com/mcp")
    with httpx.Client(verify=verify, timeout=timeout, follow_redirects=False) as http:
        probe = _Probe(url, http)
        found = probe.discover()
        if client is not None:
            try:
                if found.issuer is None or found.as_metadata is None:
                    raise _NoTokens("the token probes start from the authorization server metadata, which is missing")
                _probe_with_tokens(probe, found, client, realm)
            except _NoTokens as exc:
                if note is not None:
                    note(f"{printable(url)}: no token probes: {exc}.")
    return probe.findings
