"""Fuzzing the reference MCP server (examples/mcp-server) with hostile headers and bodies.

Issue 10: everything a client sends is untrusted. The server runs as a real
process (``server.py --env-file``, its stdout and stderr captured) on loopback,
validating JWTs against a realm of the real test Keycloak. The realm's signing
key is one this module generated and imported as a Keycloak key provider, so
Keycloak issues the valid tokens (client credentials) and this module can
also sign tokens with the realm's own key but hostile claims or headers.

Every answer must keep the same invariants (``Fuzz.check``): the process is
alive, the status is one of ``EXPECTED_STATUSES`` (never 500), the body holds
no traceback, exception class name or file path, a 401 carries a well-formed
challenge, and the server log never holds a token that was sent. Tokens whose
header names a ``jku``/``x5u`` URL point at a loopback listener that must never
be asked for anything. The run is bounded: a fixed number of cases per test
(hypothesis with ``derandomize``, so the same cases every run).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_example_server import (
    INITIALIZE,
    MCP_HEADERS,
    SERVER_SCRIPT,
    JwksServer,
    b64url,
    config_mod,
    free_socket,
    rpc,
)

pytestmark = pytest.mark.keycloak

#: What the server may answer a hostile request with. 406: a wrong ``Accept``; 431: headers too large.
EXPECTED_STATUSES = frozenset({200, 202, 400, 401, 403, 404, 405, 406, 413, 415, 422, 431})

#: What must never reach a client: tracebacks, exception class names, source paths.
INTERNALS = re.compile(
    r'Traceback|File "|\.py\b|site-packages|/usr/lib|/root/|/home/|/tmp/|\b[A-Z]\w*(?:Error|Exception)\b'
)

#: A credential shorter than this could appear in the log by chance (a word, a number).
TOKEN_LIKE_LENGTH = 12

#: What a hostile ``kid`` tries to append to the log as a line of its own.
FORGED_LOG_LINE = "INFO token_verifier: token accepted for admin"

TOOLS_SCOPE = "mcp:tools"
CLIENT_ID = "fuzz-agent"
BIG = 10 * 1024 * 1024


# --------------------------------------------------------------------------- the realm, its key, the tokens


@dataclass
class RealmKey:
    """The realm's active RSA signing key: generated here, imported into Keycloak as an ``rsa`` key provider."""

    private: rsa.RSAPrivateKey = field(repr=False)
    kid: str = ""

    def pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def modulus(self) -> str:
        n = self.private.public_key().public_numbers().n
        return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def provision_realm(keycloak: Any, name: str, resource: str, key: RealmKey) -> str:
    """A realm whose client ``fuzz-agent`` gets tokens for ``resource`` with scope mcp:tools; returns its secret."""
    keycloak.admin().create_realm({"realm": name, "enabled": True})
    admin = keycloak.admin(name)
    scope_id = admin.create_client_scope(
        {
            "name": TOOLS_SCOPE,
            "protocol": "openid-connect",
            "attributes": {"include.in.token.scope": "true"},
            "protocolMappers": [
                {
                    "name": "mcp-audience",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-audience-mapper",
                    "config": {"included.custom.audience": resource, "access.token.claim": "true"},
                }
            ],
        }
    )
    secret = secrets.token_urlsafe(24)
    client = admin.create_client(
        {
            "clientId": CLIENT_ID,
            "publicClient": False,
            "secret": secret,
            "serviceAccountsEnabled": True,
            "standardFlowEnabled": False,
            "directAccessGrantsEnabled": False,
        }
    )
    admin.add_client_optional_client_scope(client, scope_id, {})
    admin.create_component(
        {
            "name": "fuzz-rsa",
            "providerId": "rsa",
            "providerType": "org.keycloak.keys.KeyProvider",
            "parentId": admin.get_realm(name)["id"],
            # Above the generated key's priority (100): Keycloak signs with this one.
            "config": {"priority": ["200"], "enabled": ["true"], "active": ["true"], "privateKey": [key.pem()]},
        }
    )
    jwks = httpx.get(f"{keycloak.url}/realms/{name}/protocol/openid-connect/certs", timeout=30).json()
    key.kid = next(k["kid"] for k in jwks["keys"] if k.get("n") == key.modulus())
    return secret


# --------------------------------------------------------------------------- the server under fuzz


@dataclass
class Fuzz:
    """The running server, what it was sent, and the invariants every answer must keep."""

    url: str
    issuer: str
    token_endpoint: str
    client_secret: str = field(repr=False)
    key: RealmKey
    process: subprocess.Popen[bytes]
    log_file: Path
    #: The ``jku``/``x5u`` target: a JWKS on loopback that counts fetches, and must count none.
    listener: JwksServer
    http: httpx.Client
    valid_token: str = field(default="", repr=False)
    sent_tokens: set[str] = field(default_factory=set, repr=False)
    cases: int = 0

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """What hypothesis prints for a failing case: not the tokens and secret the dataclass holds."""
        printer.text(f"Fuzz(url={self.url!r}, cases={self.cases})")

    def token(self, scope: str = TOOLS_SCOPE) -> str:
        issued = httpx.post(
            self.token_endpoint,
            data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": self.client_secret,
                  "scope": scope},
            timeout=30,
        )
        assert issued.status_code == 200, issued.text
        return issued.json()["access_token"]

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """The claims of a token Keycloak would issue (from the valid one), with ``overrides``; None drops a claim."""
        claims = jwt.decode(self.valid_token, options={"verify_signature": False})
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """Signed with the realm's own key: only the claims or header can make the server refuse it.

        Signs the JSON of ``claims`` as is (``jwt.encode`` would refuse hostile claim types).
        """
        payload = json.dumps(claims).encode()
        return jwt.PyJWS().encode(payload, self.key.private, algorithm="RS256", headers={"kid": self.key.kid, **header})

    def send(
        self,
        *,
        token: str | bytes | None = None,
        body: bytes | Any = INITIALIZE,
        headers: list[tuple[str, str | bytes]] | None = None,
        method: str = "POST",
        session: str | None = None,
    ) -> httpx.Response:
        """One request; ``token`` becomes ``Authorization: Bearer <token>``, ``headers`` replace the MCP defaults."""
        sent: list[tuple[str, str | bytes]] = list(MCP_HEADERS.items()) if headers is None else list(headers)
        if token is not None:
            credential = token if isinstance(token, bytes) else token.encode()
            sent.append(("authorization", b"Bearer " + credential))
            self.remember(credential)
        if session:
            sent.append(("mcp-session-id", session))
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = self.http.request(method, self.url, headers=sent, content=content)
        self.check(response)
        return response

    def send_raw(self, header_lines: list[bytes]) -> int:
        """POST INITIALIZE with header lines no HTTP client library will send (trailing space, control bytes)."""
        body = json.dumps(INITIALIZE).encode()
        host, port = self.url.split("/")[2].split(":")
        head = [b"POST /mcp HTTP/1.1", f"host: {host}:{port}".encode(), b"connection: close",
                *(f"{k}: {v}".encode() for k, v in MCP_HEADERS.items()), f"content-length: {len(body)}".encode(),
                *header_lines]
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
            answer = b"".join(iter(lambda: sock.recv(65536), b""))
        status_line, _, rest = answer.partition(b"\r\n")
        head_bytes, _, content = rest.partition(b"\r\n\r\n")
        headers = [tuple(line.split(b": ", 1)) for line in head_bytes.split(b"\r\n") if b": " in line]
        self.check(httpx.Response(int(status_line.split()[1]), headers=headers, content=content))
        return int(status_line.split()[1])

    def key_url(self, name: str) -> str:
        """A URL on the loopback listener that must never be fetched."""
        return f"{self.listener.url.split('/realms/')[0]}/{name}"

    def marker(self, length: int) -> str:
        """Token-like text of ``length`` characters (a hostile header value): the log may quote its start, not all."""
        text = secrets.token_urlsafe(length)[:length]
        self.sent_tokens.add(text[-64:])
        return text

    def remember(self, credential: bytes) -> None:
        text = credential.decode("latin-1").strip()
        if len(text) >= TOKEN_LIKE_LENGTH:
            self.sent_tokens.add(text)
            # A JWT's signature alone identifies it too.
            self.sent_tokens.update(s for s in text.split(".")[2:3] if len(s) >= TOKEN_LIKE_LENGTH)

    def check(self, response: httpx.Response) -> None:
        self.cases += 1
        assert self.process.poll() is None, f"the server died:\n{self.log()[-4000:]}"
        assert response.status_code in EXPECTED_STATUSES, (response.status_code, response.text[:500])
        leak = INTERNALS.search(response.text)
        assert leak is None, (response.status_code, leak.group(0), response.text[:500])
        if response.status_code == 401:
            assert_well_formed_challenge(response.headers.get_list("www-authenticate"))

    def session(self) -> str:
        """An initialized MCP session of the valid token."""
        response = self.send(token=self.valid_token)
        assert response.status_code == 200, response.text
        session = response.headers["mcp-session-id"]
        initialized = self.send(token=self.valid_token, body=rpc("notifications/initialized", id=None), session=session)
        assert initialized.status_code == 202
        return session

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def assert_no_token_logged(self) -> None:
        log = self.log()
        assert "starting:" in log
        leaked = [t[:40] for t in self.sent_tokens if t in log]
        assert not leaked, f"{len(leaked)} sent token(s) in the server log, e.g. {leaked[:3]}"
        assert f"\n{FORGED_LOG_LINE}" not in log


CHALLENGE_PARAM = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def assert_well_formed_challenge(values: list[str]) -> None:
    """Exactly one ``Bearer`` challenge: printable ASCII, quoted auth-params, error=invalid_token, scope, metadata."""
    assert len(values) == 1, values
    value = values[0]
    assert value.isascii() and value.isprintable(), value
    assert value.startswith("Bearer "), value
    params = dict(CHALLENGE_PARAM.findall(value))
    assert ", ".join(f'{k}="{v}"' for k, v in CHALLENGE_PARAM.findall(value)) == value[len("Bearer "):], value
    assert params["error"] == "invalid_token", value
    assert params["scope"] == TOOLS_SCOPE, value
    assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp"), value


def start_server(env_file: Path, log_file: Path, url: str) -> subprocess.Popen[bytes]:
    environ = {k: v for k, v in os.environ.items() if k not in config_mod.KNOWN_KEYS}
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--env-file", str(env_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**environ, "PYTHONUNBUFFERED": "1"},
        )
    metadata = url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log_file.read_text()
        try:
            if httpx.get(metadata, timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"the server did not come up:\n{log_file.read_text()}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def fuzz(keycloak: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    directory = tmp_path_factory.mktemp("fuzz-server")
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # the server binds it
    url = f"http://127.0.0.1:{port}/mcp"
    realm = f"t-fuzz-{secrets.token_hex(3)}"
    key = RealmKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    secret = provision_realm(keycloak, realm, url, key)
    issuer = f"{keycloak.url}/realms/{realm}"
    env = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MCP_RESOURCE_URL": url,
        "OAUTH_ISSUER": issuer,
        "OAUTH_JWKS_URL": f"{issuer}/protocol/openid-connect/certs",
        "MCP_SCOPE": TOOLS_SCOPE,
        "MCP_SCOPES": TOOLS_SCOPE,
        "MCP_TOOL_SCOPES": f"add={TOOLS_SCOPE},multiply={TOOLS_SCOPE}",
        "MCP_TOKEN_VALIDATION": "jwt",
    }
    env_file = directory / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    log_file = directory / "server.log"
    listener = JwksServer([])
    process = start_server(env_file, log_file, url)
    try:
        with httpx.Client(timeout=30) as http:
            target = Fuzz(
                url=url,
                issuer=issuer,
                token_endpoint=f"{issuer}/protocol/openid-connect/token",
                client_secret=secret,
                key=key,
                process=process,
                log_file=log_file,
                listener=listener,
                http=http,
            )
            target.valid_token = target.token()
            target.remember(target.valid_token.encode())
            yield target
            print(f"\n[fuzz] {target.cases} requests to the reference server")
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        listener.close()
        keycloak.admin().delete_realm(realm)


# --------------------------------------------------------------------------- Authorization headers


def hs256(fuzz: Fuzz, secret: bytes) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": fuzz.key.kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(fuzz.claims()).encode())}"
    return f"{signing_input}.{b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def segments(header: Any, payload: Any, signature: str = "c2ln") -> str:
    """A JWT-shaped string from raw (possibly hostile) header and payload values; a str is taken as encoded."""

    def encode(value: Any) -> str:
        return value if isinstance(value, str) else b64url(json.dumps(value).encode())

    return f"{encode(header)}.{encode(payload)}.{signature}"


def hostile_tokens(fuzz: Fuzz) -> dict[str, str]:
    """Tokens the server must refuse with 401, by what is wrong with them."""
    now = int(time.time())
    claims = fuzz.claims()
    kid = fuzz.key.kid
    rs256 = {"alg": "RS256", "typ": "JWT", "kid": kid}
    return {
        # structure
        "not a JWT": "not-a-jwt-at-all-but-long",
        "two segments": segments(rs256, claims).rsplit(".", 1)[0],
        "four segments": segments(rs256, claims) + ".c2ln",
        "five segments (JWE shape)": "eyJhbGciOiJSU0EtT0FFUCJ9.a2V5.aXY.Y2lwaGVy.dGFn",
        "bad base64 everywhere": "!!!$$$.???***.&&&%%%",
        "header not JSON": f"{b64url(b'{not json')}.{b64url(b'{}')}.c2ln",
        "header is a JSON list": segments(["RS256", kid], claims),
        "header is a JSON string": segments("RS256-as-a-json-string-000", claims),
        "payload is a JSON list": segments(rs256, [1, 2, 3]),
        "payload not base64": segments(rs256, "%%%not-base64%%%"),
        "empty segments": "..",
        "signature stripped": fuzz.valid_token.rsplit(".", 1)[0] + ".",
        "signature of another token": fuzz.sign(fuzz.claims(scope="other")).rsplit(".", 1)[0]
        + "."
        + fuzz.valid_token.rsplit(".", 1)[1],
        # algorithms
        "alg none": segments({**rs256, "alg": "none"}, claims, ""),
        "alg None": segments({**rs256, "alg": "None"}, claims, ""),
        "alg unknown": segments({**rs256, "alg": "XS999"}, claims),
        "alg not a string": segments({**rs256, "alg": ["RS256"]}, claims),
        "HS256 keyed with the public key": hs256(fuzz, fuzz.key.public_pem()),
        "HS256 keyed with 'secret'": hs256(fuzz, b"secret"),
        # kid
        "kid path traversal": fuzz.sign(claims, kid="../../etc/passwd"),
        "kid huge": fuzz.sign(claims, kid=fuzz.marker(20_000)),
        "kid forging a log line": fuzz.sign(claims, kid=f"x\n{FORGED_LOG_LINE}"),
        "alg huge": segments({**rs256, "alg": fuzz.marker(20_000)}, claims),
        "kid not a string": segments({**rs256, "kid": {"$ne": None}}, claims),
        "kid missing": segments({"alg": "RS256", "typ": "JWT"}, claims),
        # key locations the server must never follow
        "jku elsewhere, unknown kid": fuzz.sign(claims, kid="fuzz-jku", jku=fuzz.key_url("jwks.json")),
        "x5u elsewhere, unknown kid": fuzz.sign(claims, kid="fuzz-x5u", x5u=fuzz.key_url("cert.pem")),
        "kid is a URL": fuzz.sign(claims, kid=fuzz.key_url("kid")),
        "embedded jwk of another key": jwt.encode(
            claims,
            (other := rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            algorithm="RS256",
            headers={"kid": kid, "jwk": jwt.algorithms.RSAAlgorithm.to_jwk(other.public_key(), as_dict=True)},
        ),
        "unknown critical header": fuzz.sign(claims, crit=["x-fuzz"], **{"x-fuzz": 1}),
        # claims, validly signed
        "expired": fuzz.sign(fuzz.claims(exp=now - 5, iat=now - 400)),
        "nbf in the future": fuzz.sign(fuzz.claims(nbf=now + 600)),
        "iat in the future": fuzz.sign(fuzz.claims(iat=now + 600)),
        "no exp": fuzz.sign(fuzz.claims(exp=None)),
        "exp a string": fuzz.sign(fuzz.claims(exp=str(now + 300))),
        "exp true": fuzz.sign(fuzz.claims(exp=True)),
        "exp infinite": fuzz.sign(fuzz.claims(exp=float("inf"))),
        "exp not a number": fuzz.sign(fuzz.claims(exp=float("nan"))),
        "wrong iss": fuzz.sign(fuzz.claims(iss=fuzz.issuer.replace("/realms/", "/realms/x"))),
        "iss with trailing slash": fuzz.sign(fuzz.claims(iss=fuzz.issuer + "/")),
        "iss a list": fuzz.sign(fuzz.claims(iss=[fuzz.issuer])),
        "wrong aud": fuzz.sign(fuzz.claims(aud="http://127.0.0.1:1/mcp")),
        "aud a prefix of the resource": fuzz.sign(fuzz.claims(aud=fuzz.url[:-1])),
        "aud an object": fuzz.sign(fuzz.claims(aud={"aud": fuzz.url})),
        "no aud": fuzz.sign(fuzz.claims(aud=None)),
        "refresh token type": fuzz.sign(fuzz.claims(typ="Refresh")),
        "no client": fuzz.sign(fuzz.claims(azp=None, client_id=None)),
        # from Keycloak itself: valid, but not issued for this resource
        "Keycloak token without the MCP scope (aud)": fuzz.token(scope="profile"),
    }


def test_hostile_tokens_are_401_and_no_key_url_is_fetched(fuzz: Fuzz) -> None:
    refused = {case: fuzz.send(token=token).status_code for case, token in hostile_tokens(fuzz).items()}
    assert {case: status for case, status in refused.items() if status != 401} == {}
    # A valid token naming key URLs is accepted: the URLs are ignored, not fetched.
    accepted = {name: fuzz.send(token=fuzz.sign(fuzz.claims(), **{name: fuzz.key_url(name)})).status_code
                for name in ("jku", "x5u")}
    accepted["the valid token, after all that"] = fuzz.send(token=fuzz.valid_token).status_code
    assert {case: status for case, status in accepted.items() if status != 200} == {}
    assert fuzz.listener.fetches == 0
    fuzz.assert_no_token_logged()


def test_authorization_header_shapes(fuzz: Fuzz) -> None:
    valid = fuzz.valid_token
    headers = list(MCP_HEADERS.items())
    basic = base64.b64encode(f"{CLIENT_ID}:{fuzz.client_secret}".encode()).decode()
    fuzz.remember(basic.encode())
    cases: list[tuple[str, list[tuple[str, str]], set[int]]] = [
        ("no header", headers, {401}),
        ("empty", [*headers, ("authorization", "")], {401}),
        ("scheme only", [*headers, ("authorization", "Bearer")], {401}),
        ("two spaces", [*headers, ("authorization", f"Bearer  {valid}")], {401}),
        ("tab instead of space", [*headers, ("authorization", f"Bearer\t{valid}")], {401}),
        ("trailing junk", [*headers, ("authorization", f"Bearer {valid} junk")], {401}),
        ("token twice", [*headers, ("authorization", f"Bearer {valid}, Bearer {valid}")], {401}),
        ("Basic with the client's credentials", [*headers, ("authorization", f"Basic {basic}")], {401}),
        ("token without a scheme", [*headers, ("authorization", valid)], {401}),
        ("Token scheme", [*headers, ("authorization", f"Token {valid}")], {401}),
        # RFC 9110 §11.1: the scheme is case-insensitive.
        ("lowercase scheme", [*headers, ("authorization", f"bearer {valid}")], {200}),
        ("uppercase scheme", [*headers, ("authorization", f"BEARER {valid}")], {200}),
        # RFC 6750 §3.1: more than one way of sending a token is an invalid_request.
        ("two headers, valid first", [*headers, ("authorization", f"Bearer {valid}"), ("authorization", "Bearer x")],
         {400}),
        ("two headers, valid last", [*headers, ("authorization", "Bearer x"), ("authorization", f"Bearer {valid}")],
         {400}),
        ("two valid headers", [*headers, ("authorization", f"Bearer {valid}"), ("authorization", f"Bearer {valid}")],
         {400}),
    ]
    answers = {case: (fuzz.send(headers=sent).status_code, statuses) for case, sent, statuses in cases}
    assert {case: status for case, (status, statuses) in answers.items() if status not in statuses} == {}
    token = valid.encode()
    raw = {  # case: (header lines, acceptable statuses)
        "trailing space": ([b"authorization: Bearer "], {401}),
        "NUL before the token": ([b"authorization: Bearer \x00" + token], {400, 401}),
        "DEL after the token": ([b"authorization: Bearer " + token + b"\x7f"], {400, 401}),
        # RFC 9112 §5.2 and §2.2: a server may unfold obs-fold and accept a bare LF, so 200 is fine too.
        "obsolete line folding": ([b"authorization: Bearer", b" " + token], {200, 400, 401}),
        "bare LF": ([b"authorization: Bearer " + token + b"\nx-smuggled: 1"], {200, 400, 401}),
        "space before the colon": ([b"authorization : Bearer " + token], {400}),  # RFC 9112 §5.1
    }
    answers = {case: (fuzz.send_raw(lines), statuses) for case, (lines, statuses) in raw.items()}
    assert {case: status for case, (status, statuses) in answers.items() if status not in statuses} == {}
    for size in (8 * 1024, 100 * 1024):
        response = fuzz.send(token="A" * size)
        assert response.status_code in (400, 401, 431), (size, response.status_code)
    fuzz.assert_no_token_logged()


#: Header value bytes a client can put on the wire (RFC 9110 field-value: no control characters).
FIELD_BYTES = st.binary(min_size=1, max_size=300).map(
    lambda b: bytes(c for c in b if c > 0x20 and c != 0x7F)
)


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    credential=st.one_of(
        FIELD_BYTES,
        st.text(min_size=1, max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")).map(
            lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F).strip()),
        st.tuples(FIELD_BYTES, FIELD_BYTES, FIELD_BYTES).map(lambda parts: b".".join(parts)),
        st.builds(lambda h, p: segments(h, p).encode(), st.dictionaries(st.text(max_size=8), st.text(max_size=30)),
                  st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=30))),
    )
)
def test_random_bearer_credentials_are_401(fuzz: Fuzz, credential: bytes) -> None:
    assume(credential)
    response = fuzz.send(token=credential)
    assert response.status_code == 401, (credential[:80], response.status_code)
    fuzz.assert_no_token_logged()


# --------------------------------------------------------------------------- bodies


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


HOSTILE_BODIES: dict[str, bytes] = {
    "empty": b"",
    "not JSON": b"hello, server",
    "truncated JSON": b'{"jsonrpc": "2.0", "id": 1, "method": "initia',
    "JSON null": b"null",
    "JSON number": b"12345",
    "JSON string": b'"tools/call"',
    "empty batch": b"[]",
    "batch of numbers": b"[1, 2, 3]",
    "batch of calls": json.dumps([rpc("tools/list", id=1), rpc("tools/list", id=2)]).encode(),
    "invalid UTF-8": b'{"jsonrpc": "2.0", "id": 1, "method": "\xff\xfe"}',
    "lone surrogate": b'{"jsonrpc": "2.0", "id": 1, "method": "\\ud800"}',
    "NaN id": b'{"jsonrpc": "2.0", "id": NaN, "method": "tools/list"}',
    "huge number": b'{"jsonrpc": "2.0", "id": 1' + b"0" * 5000 + b', "method": "tools/list"}',
    "duplicate keys": b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "method": "tools/call"}',
    "deeply nested list (100k)": nested(100_000),
    "deeply nested object (100k)": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "deeply nested params": b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":' + nested(100_000) + b"}",
    "10 MB of JSON": b"[" + b"1," * (BIG // 2) + b"1]",
    "10 MB of zero bytes": b"\0" * BIG,
    "unicode garbage": "\u202e\ufeff\U0001f4a9\u0000\uffff".encode() * 100,
    "wrong jsonrpc version": json.dumps({**INITIALIZE, "jsonrpc": "1.0"}).encode(),
    "method a number": json.dumps({"jsonrpc": "2.0", "id": 1, "method": 42}).encode(),
    "id an object": json.dumps({"jsonrpc": "2.0", "id": {"x": 1}, "method": "tools/list"}).encode(),
}


def test_hostile_bodies_without_a_token_are_401(fuzz: Fuzz) -> None:
    answers = {case: fuzz.send(body=body).status_code for case, body in HOSTILE_BODIES.items()}
    assert {case: status for case, status in answers.items() if status not in (401, 413)} == {}


def test_hostile_bodies_with_a_valid_token_are_refused(fuzz: Fuzz) -> None:
    answers = {case: fuzz.send(token=fuzz.valid_token, body=body).status_code for case, body in HOSTILE_BODIES.items()}
    wrong = {case: status for case, status in answers.items()
             if status not in ({413} if len(HOSTILE_BODIES[case]) > BIG // 2 else {400, 422})}
    assert wrong == {}
    fuzz.assert_no_token_logged()


def test_oversized_chunked_body_is_413(fuzz: Fuzz) -> None:
    """No Content-Length to refuse early on: the limit must hold while reading."""

    def chunks() -> Iterator[bytes]:
        yield b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":"'
        for _ in range(BIG // 65536):
            yield b"x" * 65536
        yield b'"}}'

    headers = [*MCP_HEADERS.items(), ("authorization", f"Bearer {fuzz.valid_token}")]
    response = fuzz.http.post(fuzz.url, headers=headers, content=chunks())
    fuzz.check(response)
    assert response.status_code == 413


CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/jsonx", "text/html, application/xml", "", "application/json\u00e9".encode("latin-1")]
ACCEPTS = ["", "text/html", "application/json", "application/xml, text/plain"]


def test_wrong_content_types_and_accepts(fuzz: Fuzz) -> None:
    auth = ("authorization", f"Bearer {fuzz.valid_token}")
    answers: dict[tuple[str, Any], tuple[int, int]] = {}
    for content_type in CONTENT_TYPES:
        sent = [("accept", MCP_HEADERS["accept"]), ("content-type", content_type), auth]
        answers["content-type", content_type] = (fuzz.send(headers=sent).status_code, 415)
        answers["content-type, no token", content_type] = (fuzz.send(headers=sent[:2]).status_code, 401)
    for accept in ACCEPTS:
        sent = [("accept", accept), ("content-type", "application/json"), auth]
        answers["accept", accept] = (fuzz.send(headers=sent).status_code, 406)
    assert {case: status for case, (status, expected) in answers.items() if status != expected} == {}


def test_http_methods_and_session_headers(fuzz: Fuzz) -> None:
    answers: dict[tuple[str, ...], tuple[int, set[int]]] = {}
    for method in ("PUT", "PATCH", "OPTIONS", "TRACE"):
        answers[method, "token"] = (fuzz.send(token=fuzz.valid_token, method=method, body=b"").status_code, {405})
        answers[method, "no token"] = (fuzz.send(method=method, body=b"").status_code, {401, 405})
    for session in ("not-a-session", "x" * 4000, "../../etc/passwd", "\u00ff\u00fe".encode("latin-1")):
        headers = [*MCP_HEADERS.items(), ("mcp-session-id", session)]
        for method in ("POST", "GET", "DELETE"):
            body = json.dumps(rpc("tools/list")).encode() if method == "POST" else b""
            status = fuzz.send(token=fuzz.valid_token, method=method, body=body, headers=headers).status_code
            answers[method, "session", str(session)[:20]] = (status, {400, 404})
    real = fuzz.session()
    for version in ("1999-01-01", "x" * 1000, "\u00e9".encode("latin-1")):
        headers = [*MCP_HEADERS.items(), ("mcp-protocol-version", version)]
        status = fuzz.send(token=fuzz.valid_token, body=rpc("tools/list"), headers=headers, session=real).status_code
        answers["protocol version", str(version)[:20]] = (status, {400})
    assert {case: status for case, (status, expected) in answers.items() if status not in expected} == {}


#: JSON values of every shape, nested a little.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

BODY_SETTINGS = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@BODY_SETTINGS
@given(body=st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=500),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "id": JSON_VALUES, "method": st.text(max_size=30),
                           "params": JSON_VALUES}).map(lambda m: json.dumps(m).encode()),
))
def test_random_bodies_with_a_valid_token(fuzz: Fuzz, body: bytes) -> None:
    """Outside a session: the server answers, but never with a 5xx or its internals."""
    fuzz.send(token=fuzz.valid_token, body=body)


@pytest.fixture(scope="module")
def session(fuzz: Fuzz) -> str:
    return fuzz.session()


@BODY_SETTINGS
@given(
    method=st.sampled_from(["tools/call", "tools/list", "resources/read", "prompts/get", "no/such/method", "",
                            "initialize", "notifications/cancelled", "completion/complete", "logging/setLevel"]),
    name=st.sampled_from(["add", "multiply", "reset", "no-such-tool", "", "../../etc/passwd", "a" * 5000])
    | JSON_VALUES,
    arguments=st.fixed_dictionaries({}, optional={"a": JSON_VALUES, "b": JSON_VALUES, "c": JSON_VALUES})
    | JSON_VALUES,
)
def test_random_calls_in_a_session(fuzz: Fuzz, session: str, method: str, name: Any, arguments: Any) -> None:
    """Methods that do not exist, tools/call with wrong names and argument types: answered, never crashed."""
    response = fuzz.send(token=fuzz.valid_token, session=session,
                         body=rpc(method, {"name": name, "arguments": arguments}, id=7))
    assert response.status_code in (200, 202, 400, 404), (response.status_code, response.text[:300])
    assert_structured_result_is_a_number(response)


def sse_messages(response: httpx.Response) -> list[Any]:
    """The JSON-RPC messages of a streamable HTTP answer (an SSE stream)."""
    return [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]


def assert_structured_result_is_a_number(response: httpx.Response) -> None:
    """A successful arithmetic call returns what its output schema says: ``result`` is a number, never null."""
    for message in sse_messages(response):
        structured = (message.get("result") or {}).get("structuredContent") or {}
        if "result" in structured:
            assert isinstance(structured["result"], float), message


@pytest.mark.parametrize(
    "arguments",
    [
        b'{"a": 1e308, "b": 1e308}',  # add overflows
        b'{"a": 1e200, "b": -1e200, "tool": "multiply"}',
        b'{"a": NaN, "b": 1}',  # JSON-RPC parsers accept these literals
        b'{"a": Infinity, "b": 1}',
        b'{"a": 1e999, "b": 1}',  # parses as infinity
    ],
)
def test_arithmetic_never_answers_a_non_number(fuzz: Fuzz, session: str, arguments: bytes) -> None:
    """JSON has no infinity or NaN: an overflow or such an argument is a tool error, not ``"result": null``."""
    tool = "multiply" if b'"tool"' in arguments else "add"
    body = b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"%s","arguments":%s}}' % (
        tool.encode(), arguments.replace(b', "tool": "multiply"', b""))
    response = fuzz.send(token=fuzz.valid_token, session=session, body=body)
    assert response.status_code in (200, 400), response.text
    assert_structured_result_is_a_number(response)
    if response.status_code == 200:
        (message,) = sse_messages(response)
        assert message["result"]["isError"] is True, message


def test_tools_still_work_and_the_log_is_clean(fuzz: Fuzz, session: str) -> None:
    """Last: after the fuzz, the same process still serves a real call, and logged no token."""
    body = rpc("tools/call", {"name": "add", "arguments": {"a": 2, "b": 40}}, id=9)
    response = fuzz.send(token=fuzz.valid_token, session=session, body=body)
    assert response.status_code == 200 and '"result":42.0' in response.text, response.text
    assert fuzz.listener.fetches == 0
    fuzz.assert_no_token_logged()
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d )", fuzz.log())
    crashes = [r.splitlines()[0] for r in records if "Traceback" in r and KNOWN_SDK_TRACEBACK not in r]
    assert crashes == []


#: The SDK logs an ERROR traceback for ``prompts/get`` of an unknown prompt, a client's mistake
#: (modelcontextprotocol/python-sdk#3342, open); the client gets a clean JSON-RPC error.
KNOWN_SDK_TRACEBACK = "handler for 'prompts/get' raised"
