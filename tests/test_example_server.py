"""Tests of the reference MCP server (examples/mcp-server), without Keycloak.

A locally generated RSA key signs the tokens; a tiny HTTP server on loopback
serves its JWKS, and OAUTH_JWKS_URL points there. The server runs in-process
under uvicorn on a free loopback port (one subprocess test proves the entry
point), and is driven with the official MCP client and with raw HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = REPO / "examples" / "mcp-server"
SERVER_SCRIPT = EXAMPLE_DIR / "server.py"

ISSUER = "http://127.0.0.1:1/realms/mcp-test"  # never contacted: only compared with `iss`
OTHER_ISSUER = "http://127.0.0.1:1/realms/other-realm"
EXTRA_AUDIENCE = "http://localhost:3000"
SECRET_MARKER = "do-not-log-this-secret-8d7c1e"


def _example_module(name: str) -> Any:
    """Import a module that lives beside examples/mcp-server/server.py (they import each other by name)."""
    if str(EXAMPLE_DIR) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_DIR))
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().parent == EXAMPLE_DIR, f"{name} resolved to {module.__file__}"
    return module


config_mod = _example_module("config")
verifier_mod = _example_module("token_verifier")
authz_mod = _example_module("authz")
server_mod = _example_module("server")


# --------------------------------------------------------------------------- keys, JWKS, tokens


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(kid=uuid.uuid4().hex, private=rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class JwksServer:
    """Serves a mutable JWK set on loopback and counts fetches."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = list(keys)
        self.fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.fetches += 1
                body = json.dumps({"keys": [k.jwk() for k in owner.keys]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/realms/mcp-test/protocol/openid-connect/certs"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Minter:
    key: SigningKey
    resource: str

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": [self.resource, "account"],
            "sub": "user-123",
            "azp": "test-client",
            "typ": "Bearer",
            "iat": now,
            "exp": now + 300,
            "scope": "profile mcp:tools",
            "realm_access": {"roles": ["default-roles-mcp-test"]},
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, *, key: SigningKey | None = None, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
        key = key or self.key
        return jwt.encode(
            self.claims(**overrides), key.private, algorithm="RS256", headers={"kid": key.kid, **(headers or {})}
        )

    def unsigned(self, **overrides: Any) -> str:
        """``alg: none``."""
        header = {"alg": "none", "typ": "JWT", "kid": self.key.kid}
        return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(self.claims(**overrides)).encode())}."

    def hs256_with_public_key(self) -> str:
        """The classic key-confusion attack: HMAC keyed with the RSA public key PEM."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.key.kid}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(self.claims()).encode())}"
        signature = hmac.new(self.key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(signature)}"

    def admin(self) -> str:
        return self.token(scope="mcp:tools mcp:admin", realm_access={"roles": ["mcp-admin"]})


# --------------------------------------------------------------------------- running the server


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def env_values(port: int, jwks_url: str, **overrides: str) -> dict[str, str]:
    values = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "AUTH_HOST": "127.0.0.1",
        "AUTH_PORT": "1",
        "AUTH_REALM": "mcp-test",
        "OAUTH_CLIENT_ID": "calculator-introspector",
        "OAUTH_CLIENT_SECRET": SECRET_MARKER,
        "MCP_SCOPE": "mcp:tools",
        "OAUTH_STRICT": "true",
        "TRANSPORT": "streamable-http",
        "MCP_SERVER_NAME": "calculator",
        "MCP_RESOURCE_URL": f"http://127.0.0.1:{port}/mcp",
        "MCP_AUDIENCES": f"http://127.0.0.1:{port}/mcp,{EXTRA_AUDIENCE}",
        "MCP_SCOPES": "mcp:tools mcp:admin",
        "MCP_TOOL_SCOPES": "add=mcp:tools,multiply=mcp:tools,reset=mcp:admin",
        "MCP_ADMIN_ROLE": "mcp-admin",
        "MCP_ADMIN_TOOLS": "reset",
        "MCP_TOKEN_VALIDATION": "jwt",
        "OAUTH_ISSUER": ISSUER,
        "OAUTH_JWKS_URL": jwks_url,
        "OAUTH_INTROSPECTION_URL": f"{ISSUER}/protocol/openid-connect/token/introspect",
    }
    values.update(overrides)
    return values


@dataclass
class RunningServer:
    url: str
    resource_metadata_url: str
    minter: Minter
    jwks: JwksServer
    config: Any


@contextmanager
def serve_in_process(app: Any, sock: socket.socket) -> Iterator[None]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def running(signing_key: SigningKey) -> Iterator[RunningServer]:
    jwks = JwksServer([signing_key])
    sock = free_socket()
    port = sock.getsockname()[1]
    # Cooldown 0: the key-rotation test may refetch right after the first fetch.
    config = config_mod.parse_config(env_values(port, jwks.url, OAUTH_JWKS_REFRESH_COOLDOWN="0"))
    app = server_mod.create_app(config)
    try:
        with serve_in_process(app, sock):
            yield RunningServer(
                url=config.resource_url,
                resource_metadata_url=config.resource_metadata_url,
                minter=Minter(signing_key, config.resource_url),
                jwks=jwks,
                config=config,
            )
    finally:
        jwks.close()


# --------------------------------------------------------------------------- helpers


def parse_challenge(value: str) -> dict[str, str]:
    """``Bearer k="v", k2="v2"`` -> {"k": "v", ...}."""
    scheme, _, rest = value.partition(" ")
    assert scheme == "Bearer", value
    return {m.group(1): m.group(2).replace('\\"', '"') for m in re.finditer(r'(\w+)="((?:[^"\\]|\\.)*)"', rest)}


MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def rpc(method: str, params: dict[str, Any] | None = None, id: int | None = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if id is not None:
        message["id"] = id
    return message


INITIALIZE = rpc(
    "initialize",
    {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw-test", "version": "1"}},
)


def post(url: str, token: str | None, body: Any, session: str | None = None) -> httpx.Response:
    headers = dict(MCP_HEADERS)
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if session:
        headers["mcp-session-id"] = session
    return httpx.post(url, headers=headers, content=json.dumps(body), timeout=10)


def start_session(url: str, token: str) -> str:
    response = post(url, token, INITIALIZE)
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    assert post(url, token, rpc("notifications/initialized", id=None), session).status_code == 202
    return session


@asynccontextmanager
async def mcp_session(url: str, token: str):
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


# --------------------------------------------------------------------------- through the official MCP client


def test_valid_token_calls_tools_with_the_official_client(running: RunningServer) -> None:
    async def scenario() -> None:
        async with mcp_session(running.url, running.minter.token()) as session:
            tools = await session.list_tools()
            # All tools are listed, whatever the token may call; enforcement is on call.
            assert {t.name for t in tools.tools} == {"add", "multiply", "reset"}
            added = await session.call_tool("add", {"a": 2, "b": 3.5})
            assert not added.is_error
            assert added.structured_content == {"operation": "add", "a": 2.0, "b": 3.5, "result": 5.5}
            multiplied = await session.call_tool("multiply", {"a": 4, "b": 2.5})
            assert multiplied.structured_content["result"] == 10.0

    anyio.run(scenario)


def test_token_for_the_extra_audience_is_accepted(running: RunningServer) -> None:
    async def scenario() -> None:
        token = running.minter.token(aud=EXTRA_AUDIENCE)
        async with mcp_session(running.url, token) as session:
            result = await session.call_tool("add", {"a": 1, "b": 1})
            assert result.structured_content["result"] == 2.0

    anyio.run(scenario)


def test_admin_scope_without_role_is_refused_naming_the_role(running: RunningServer) -> None:
    async def scenario() -> None:
        token = running.minter.token(scope="mcp:tools mcp:admin", realm_access={"roles": ["mcp-user"]})
        async with mcp_session(running.url, token) as session:
            result = await session.call_tool("reset", {})
            assert result.is_error
            text = result.content[0].text
            assert "mcp-admin" in text and "reset" in text

    anyio.run(scenario)


def test_admin_with_scope_and_role_resets_the_counter(running: RunningServer) -> None:
    async def scenario() -> None:
        async with mcp_session(running.url, running.minter.admin()) as session:
            await session.call_tool("reset", {})  # start from zero
            for _ in range(3):
                await session.call_tool("add", {"a": 1, "b": 2})
            result = await session.call_tool("reset", {})
            assert not result.is_error
            assert result.structured_content == {"cleared": 3}

    anyio.run(scenario)


def test_each_request_is_checked_with_its_own_token(running: RunningServer) -> None:
    """The role is read from the token of the request being served, not the one that opened the session."""
    admin = running.minter.admin()
    session = start_session(running.url, admin)
    no_role = running.minter.token(scope="mcp:tools mcp:admin")
    # Same principal (sub/azp/iss) so the SDK lets the session continue; only the token differs.
    response = post(running.url, no_role, rpc("tools/call", {"name": "reset", "arguments": {}}, id=7), session)
    assert response.status_code == 200
    assert '"isError":true' in response.text and "mcp-admin" in response.text


# --------------------------------------------------------------------------- 401 and metadata


def test_missing_token_is_401_with_metadata_and_scope(running: RunningServer) -> None:
    response = post(running.url, None, INITIALIZE)
    assert response.status_code == 401
    challenge = parse_challenge(response.headers["www-authenticate"])
    assert challenge["error"] == "invalid_token"
    assert challenge["resource_metadata"] == running.resource_metadata_url
    assert challenge["scope"] == "mcp:tools"
    assert running.resource_metadata_url.endswith("/.well-known/oauth-protected-resource/mcp")


def test_get_and_delete_without_token_are_401_too(running: RunningServer) -> None:
    for method in ("GET", "DELETE"):
        response = httpx.request(method, running.url, headers={"accept": "text/event-stream"}, timeout=10)
        assert response.status_code == 401, method
        assert parse_challenge(response.headers["www-authenticate"])["scope"] == "mcp:tools"


def test_protected_resource_metadata_is_exact(running: RunningServer) -> None:
    response = httpx.get(running.resource_metadata_url, timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "resource": running.url,  # exactly MCP_RESOURCE_URL: no trailing slash added
        "authorization_servers": [ISSUER],
        "scopes_supported": ["mcp:tools", "mcp:admin"],
        "bearer_methods_supported": ["header"],
        "resource_name": "calculator",
    }
    assert "offline_access" not in response.text
    # Only the path-suffixed location (RFC 9728 §3.1) is served.
    root = running.url.rsplit("/mcp", 1)[0] + "/.well-known/oauth-protected-resource"
    assert httpx.get(root, timeout=10).status_code == 404


def test_resource_and_issuer_without_path_get_no_trailing_slash(signing_key: SigningKey) -> None:
    """pydantic's AnyHttpUrl would turn http://host:port into http://host:port/; the metadata must not."""
    jwks = JwksServer([signing_key])
    sock = free_socket()
    port = sock.getsockname()[1]
    resource = f"http://127.0.0.1:{port}"
    issuer = "http://127.0.0.1:1"
    values = env_values(port, jwks.url, MCP_RESOURCE_URL=resource, MCP_AUDIENCES="", OAUTH_ISSUER=issuer)
    config = config_mod.parse_config(values)
    assert config.mcp_path == "/"
    try:
        with serve_in_process(server_mod.create_app(config), sock):
            metadata = httpx.get(f"{resource}/.well-known/oauth-protected-resource", timeout=10)
            assert metadata.json()["resource"] == resource
            assert metadata.json()["authorization_servers"] == [issuer]
            challenge = parse_challenge(post(f"{resource}/", None, INITIALIZE).headers["www-authenticate"])
            assert challenge["resource_metadata"] == f"{resource}/.well-known/oauth-protected-resource"
            token = Minter(signing_key, resource).token(iss=issuer)
            assert post(f"{resource}/", token, INITIALIZE).status_code == 200
    finally:
        jwks.close()


BAD_TOKENS = {
    "other audience": lambda m: m.token(aud="http://localhost:9999/mcp"),
    "audience only a prefix": lambda m: m.token(aud=m.resource + "/other"),
    "no audience": lambda m: m.token(aud=None),
    "other issuer (another realm)": lambda m: m.token(iss=OTHER_ISSUER),
    "issuer with trailing slash": lambda m: m.token(iss=ISSUER + "/"),
    "expired": lambda m: m.token(exp=int(time.time()) - 5, iat=int(time.time()) - 400),
    "no exp": lambda m: m.token(exp=None),
    "nbf beyond leeway": lambda m: m.token(nbf=int(time.time()) + 120),
    "iat beyond leeway": lambda m: m.token(iat=int(time.time()) + 120),
    "alg none": lambda m: m.unsigned(),
    "HS256 keyed with the public key": lambda m: m.hs256_with_public_key(),
    "signed by another key under the known kid": lambda m: m.token(
        key=SigningKey(kid=m.key.kid, private=SigningKey.generate().private)
    ),
    "ID token": lambda m: m.token(typ="ID"),
    "refresh token": lambda m: m.token(typ="Refresh"),
    "no kid": lambda m: jwt.encode(m.claims(), m.key.private, algorithm="RS256"),
    "not a JWT": lambda m: "not-a-jwt",
    "tampered payload": lambda m: _tamper(m.token()),
}


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "mcp:tools mcp:admin"
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_bad_tokens_are_401(running: RunningServer, case: str) -> None:
    token = BAD_TOKENS[case](running.minter)
    response = post(running.url, token, INITIALIZE)
    assert response.status_code == 401, (case, response.text)
    challenge = parse_challenge(response.headers["www-authenticate"])
    assert challenge["error"] == "invalid_token"
    assert challenge["resource_metadata"] == running.resource_metadata_url


def test_clock_skew_within_leeway_is_accepted(running: RunningServer) -> None:
    token = running.minter.token(nbf=int(time.time()) + 10, iat=int(time.time()) + 10)
    assert post(running.url, token, INITIALIZE).status_code == 200


# --------------------------------------------------------------------------- 403 and per-tool scopes


def test_reset_without_admin_scope_is_403_insufficient_scope(running: RunningServer) -> None:
    token = running.minter.token(scope="mcp:tools", realm_access={"roles": ["mcp-admin"]})
    session = start_session(running.url, token)
    response = post(running.url, token, rpc("tools/call", {"name": "reset", "arguments": {}}, id=2), session)
    assert response.status_code == 403
    challenge = parse_challenge(response.headers["www-authenticate"])
    assert challenge["error"] == "insufficient_scope"
    # All scopes the operation needs, in one challenge (base scope + the tool's).
    assert challenge["scope"].split() == ["mcp:tools", "mcp:admin"]
    assert challenge["resource_metadata"] == running.resource_metadata_url
    assert "mcp:admin" in challenge["error_description"]
    assert response.json()["error"] == "insufficient_scope"

    # The same token may still call the tools its scope covers.
    ok = post(running.url, token, rpc("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}, id=3), session)
    assert ok.status_code == 200 and '"result":3.0' in ok.text


def test_reset_in_a_batch_is_checked_too(running: RunningServer) -> None:
    token = running.minter.token(scope="mcp:tools", realm_access={"roles": ["mcp-admin"]})
    batch = [
        rpc("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}, id=1),
        rpc("tools/call", {"name": "reset", "arguments": {}}, id=2),
    ]
    response = post(running.url, token, batch)
    assert response.status_code == 403
    assert "mcp:admin" in parse_challenge(response.headers["www-authenticate"])["scope"].split()


def test_token_without_the_base_scope_is_403_with_scope(running: RunningServer) -> None:
    token = running.minter.token(scope="profile")
    response = post(running.url, token, INITIALIZE)
    assert response.status_code == 403
    challenge = parse_challenge(response.headers["www-authenticate"])
    assert challenge["error"] == "insufficient_scope"
    assert challenge["scope"] == "mcp:tools"
    assert challenge["resource_metadata"] == running.resource_metadata_url


def test_duplicate_json_keys_cannot_smuggle_a_tool_name(running: RunningServer) -> None:
    token = running.minter.token(scope="mcp:tools")
    body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","name":"reset","arguments":{}}}'
    response = httpx.post(
        running.url, headers={**MCP_HEADERS, "authorization": f"Bearer {token}"}, content=body, timeout=10
    )
    assert response.status_code == 400


# --------------------------------------------------------------------------- hostile requests (see test_server_fuzz.py)


def test_two_authorization_headers_are_an_invalid_request(running: RunningServer) -> None:
    """The SDK reads the first header, a proxy may check the last: RFC 6750 §3.1 calls it invalid_request."""
    token = running.minter.token()
    for second in (token, "not-a-token"):
        headers = [*MCP_HEADERS.items(), ("authorization", f"Bearer {token}"), ("authorization", f"Bearer {second}")]
        response = httpx.post(running.url, headers=headers, content=json.dumps(INITIALIZE), timeout=10)
        assert response.status_code == 400
        assert parse_challenge(response.headers["www-authenticate"])["error"] == "invalid_request"


def test_body_not_declared_json_is_415(running: RunningServer) -> None:
    headers = {**MCP_HEADERS, "content-type": "text/plain", "authorization": f"Bearer {running.minter.token()}"}
    response = httpx.post(running.url, headers=headers, content=json.dumps(INITIALIZE), timeout=10)
    assert response.status_code == 415


def test_body_that_is_no_json_rpc_message_gets_a_short_400(running: RunningServer) -> None:
    """Not the SDK's pydantic report, which names the SDK's internal types."""
    for body in (None, [INITIALIZE], {"jsonrpc": "1.0", "id": 1, "method": "initialize"}):
        response = post(running.url, running.minter.token(), body)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == -32600
        assert "JSONRPC" not in response.text and "pydantic" not in response.text


def test_overflowing_arithmetic_is_a_tool_error(running: RunningServer) -> None:
    """JSON has no infinity: the answer is a tool error, never ``"result": null``."""

    async def scenario() -> None:
        async with mcp_session(running.url, running.minter.token()) as session:
            product = await session.call_tool("multiply", {"a": 1e200, "b": 1e200})
            assert product.is_error and "too large" in product.content[0].text
            infinite = await session.call_tool("add", {"a": float("inf"), "b": 1})
            assert infinite.is_error

    anyio.run(scenario)


def test_a_hostile_kid_reaches_the_log_short_and_on_one_line(
    signing_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    jwks = JwksServer([signing_key])
    try:
        resource = "http://127.0.0.1:1/mcp"
        verifier = verifier_mod.JwtTokenVerifier(issuer=ISSUER, jwks_url=jwks.url, audiences=[resource])
        minter = Minter(signing_key, resource)
        kid = "x\n2026-12-02 INFO token_verifier: token accepted " + "k" * 10_000
        with caplog.at_level("INFO", logger="token_verifier"):
            assert anyio.run(verifier.verify_token, minter.token(headers={"kid": kid})) is None
            header = b64url(json.dumps({"alg": ["RS256"], "kid": signing_key.kid}).encode())
            not_a_string = f"{header}.{b64url(json.dumps(minter.claims()).encode())}.c2ln"
            assert anyio.run(verifier.verify_token, not_a_string) is None
        messages = [record.getMessage() for record in caplog.records]
        assert all("\n" not in m and len(m) < 250 for m in messages), messages
        assert "unexpected" not in messages[-1]  # an alg that is not a string is refused as such
    finally:
        jwks.close()


# --------------------------------------------------------------------------- JWKS refresh


def test_unknown_kid_refetches_the_jwks(running: RunningServer, signing_key: SigningKey) -> None:
    assert post(running.url, running.minter.token(), INITIALIZE).status_code == 200
    fetches = running.jwks.fetches
    new_key = SigningKey.generate()
    running.jwks.keys = [new_key]  # the realm rotated its key
    try:
        token = running.minter.token(key=new_key)
        assert post(running.url, token, INITIALIZE).status_code == 200
        assert running.jwks.fetches == fetches + 1
    finally:
        running.jwks.keys = [signing_key]
    # Tokens of the restored key trigger one more refetch and pass again.
    assert post(running.url, running.minter.token(), INITIALIZE).status_code == 200


def test_unknown_kids_within_the_cooldown_do_not_hammer_the_jwks(signing_key: SigningKey) -> None:
    jwks = JwksServer([signing_key])
    try:
        resource = "http://127.0.0.1:1/mcp"
        verifier = verifier_mod.JwtTokenVerifier(
            issuer=ISSUER, jwks_url=jwks.url, audiences=[resource], jwks_refresh_cooldown=60
        )
        minter = Minter(signing_key, resource)

        async def scenario() -> None:
            assert await verifier.verify_token(minter.token()) is not None
            for _ in range(5):
                stranger = SigningKey.generate()
                assert await verifier.verify_token(minter.token(key=stranger)) is None
            assert await verifier.verify_token(minter.token()) is not None

        anyio.run(scenario)
        assert jwks.fetches == 1
    finally:
        jwks.close()


def test_jwt_verifier_access_token_fields(signing_key: SigningKey) -> None:
    jwks = JwksServer([signing_key])
    try:
        resource = "http://127.0.0.1:1/mcp"
        verifier = verifier_mod.JwtTokenVerifier(issuer=ISSUER, jwks_url=jwks.url, audiences=[resource])
        token = Minter(signing_key, resource).token(scope="mcp:tools mcp:admin", client_id="svc")
        access = anyio.run(verifier.verify_token, token)
        assert access.client_id == "svc"
        assert access.scopes == ["mcp:tools", "mcp:admin"]
        assert access.resource == resource
        assert access.subject == "user-123"
        assert access.claims["iss"] == ISSUER
    finally:
        jwks.close()


# --------------------------------------------------------------------------- introspection


def introspection_verifier(handler: Any, **kwargs: Any) -> Any:
    return verifier_mod.IntrospectionTokenVerifier(
        introspection_url="https://as.example/realms/r/protocol/openid-connect/token/introspect",
        client_id=kwargs.pop("client_id", "calculator-introspector"),
        client_secret=kwargs.pop("client_secret", "s3cret"),
        issuer=ISSUER,
        audiences=["http://127.0.0.1:1/mcp"],
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        **kwargs,
    )


def active_response(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body = {
        "active": True,
        "iss": ISSUER,
        "aud": ["http://127.0.0.1:1/mcp", "calculator-introspector"],
        "exp": now + 300,
        "iat": now,
        "client_id": "test-client",
        "sub": "user-123",
        "scope": "mcp:tools",
        "typ": "Bearer",
        "realm_access": {"roles": ["mcp-admin"]},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def test_introspection_accepts_an_active_token_with_basic_auth() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["authorization"] = request.headers.get("authorization")
        seen["form"] = dict(httpx.QueryParams(request.content.decode()))
        return httpx.Response(200, json=active_response())

    verifier = introspection_verifier(handler, client_secret="s3cret with space&")
    access = anyio.run(verifier.verify_token, "opaque-token")
    assert access is not None and access.scopes == ["mcp:tools"] and access.client_id == "test-client"
    expected = base64.b64encode(b"calculator-introspector:s3cret+with+space%26").decode()
    assert seen["authorization"] == f"Basic {expected}"
    assert seen["form"] == {"token": "opaque-token", "token_type_hint": "access_token"}


def test_introspection_with_client_secret_post() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["authorization"] = request.headers.get("authorization")
        seen["form"] = dict(httpx.QueryParams(request.content.decode()))
        return httpx.Response(200, json=active_response())

    verifier = introspection_verifier(handler, auth_method="client_secret_post")
    assert anyio.run(verifier.verify_token, "opaque-token") is not None
    assert seen["authorization"] is None
    assert seen["form"]["client_id"] == "calculator-introspector" and seen["form"]["client_secret"] == "s3cret"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json={"active": False}),
        httpx.Response(200, json=active_response(active="true")),
        httpx.Response(200, json=active_response(iss=OTHER_ISSUER)),
        httpx.Response(200, json=active_response(iss=None)),
        httpx.Response(200, json=active_response(aud="calculator-introspector")),
        httpx.Response(200, json=active_response(exp=int(time.time()) - 1)),
        httpx.Response(200, json=active_response(exp=None)),
        httpx.Response(200, json=active_response(typ="Refresh")),
        httpx.Response(401, json={"error": "invalid_client"}),
        httpx.Response(200, text="<html>"),
    ],
    ids=[
        "inactive",
        "active not boolean",
        "other issuer",
        "no issuer",
        "other audience",
        "expired",
        "no exp",
        "refresh token",
        "introspector credentials refused",
        "not json",
    ],
)
def test_introspection_rejections(response: httpx.Response) -> None:
    verifier = introspection_verifier(lambda request: response)
    assert anyio.run(verifier.verify_token, "opaque-token") is None


def test_introspection_unreachable_is_a_rejection() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    assert anyio.run(introspection_verifier(handler).verify_token, "opaque-token") is None


# --------------------------------------------------------------------------- configuration


def test_env_file_is_read_and_environment_overrides_it(tmp_path: Path) -> None:
    env_file = tmp_path / "server.env"
    env_file.write_text(
        "\n".join(f"{k}={v}" for k, v in env_values(3000, "http://127.0.0.1:8080/certs").items())
        + "\nOAUTH_CLIENT_ID=calculator-introspector      # confidential client used for introspection\n"
    )
    config = config_mod.load_config(env_file, environ={"MCP_SERVER_NAME": "from-env", "UNRELATED": "x"})
    assert config.server_name == "from-env"
    assert config.client_id == "calculator-introspector"
    assert config.mcp_path == "/mcp"
    assert config.audiences == ("http://127.0.0.1:3000/mcp", EXTRA_AUDIENCE)
    assert config.tool_scopes["reset"] == ("mcp:admin",)
    assert SECRET_MARKER not in repr(config) and SECRET_MARKER not in config.summary()


def test_env_example_documents_the_contract_and_loads() -> None:
    example = EXAMPLE_DIR / ".env.example"
    keys = re.findall(r"^#? ?([A-Z_]+)=", example.read_text(), flags=re.MULTILINE)
    assert set(keys) == set(config_mod.KNOWN_KEYS)
    config = config_mod.load_config(example, environ={})
    assert config.resource_url == "http://localhost:3000/mcp"
    assert config.issuer == "http://localhost:8080/realms/mcp-dev"
    assert config.audiences == ("http://localhost:3000/mcp", "http://localhost:3000")
    assert config.scopes_supported == ("mcp:tools", "mcp:admin")
    assert config.token_validation == "jwt" and config.client_secret == ""
    assert config.warnings() == []


def test_seed_variables_alone_give_a_working_config() -> None:
    config = config_mod.parse_config({"HOST": "localhost", "PORT": "3000", "AUTH_REALM": "mcp-dev"})
    assert config.issuer == "http://localhost:8080/realms/mcp-dev"
    assert config.resource_url == "http://localhost:3000/mcp"
    assert config.jwks_url == "http://localhost:8080/realms/mcp-dev/protocol/openid-connect/certs"
    assert config.scopes_supported == ("mcp:tools",)


def test_missing_explicit_env_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(config_mod.ConfigError, match="not found"):
        config_mod.load_config(tmp_path / "absent.env", environ={})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"MCP_SCOPES": "mcp:tools mcp:admin offline_access"}, "offline_access"),
        ({"MCP_RESOURCE_URL": "http://LOCALHOST:3000/mcp"}, "canonical"),
        ({"MCP_RESOURCE_URL": "http://localhost:80/mcp"}, "canonical"),
        ({"MCP_RESOURCE_URL": "http://mcp.example.com/mcp"}, "https"),
        ({"OAUTH_ISSUER": "http://keycloak.example.com/realms/r"}, "https"),
        ({"MCP_RESOURCE_URL": "http://localhost:3000/mcp#x"}, "fragment"),
        ({"MCP_TOKEN_VALIDATION": "introspection", "OAUTH_CLIENT_SECRET": ""}, "OAUTH_CLIENT_SECRET"),
        ({"MCP_TOKEN_VALIDATION": "opaque"}, "MCP_TOKEN_VALIDATION"),
        ({"TRANSPORT": "sse"}, "streamable-http"),
        ({"MCP_TOOL_SCOPES": "reset=mcp:other"}, "not in MCP_SCOPES"),
        ({"MCP_TOOL_SCOPES": "reset"}, "tool=scope"),
        ({"MCP_SCOPE": "mcp:base"}, "missing from MCP_SCOPES"),
        ({"MCP_SCOPES": 'mcp:tools mcp:"admin"'}, "scope token"),
        ({"PORT": "http"}, "port"),
    ],
)
def test_invalid_settings_are_refused(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(config_mod.ConfigError, match=message):
        config_mod.parse_config(env_values(3000, "http://127.0.0.1:8080/certs", **overrides))


def test_strict_off_allows_plain_http_to_a_named_host() -> None:
    config = config_mod.parse_config(
        env_values(
            3000,
            "http://keycloak:8080/realms/r/protocol/openid-connect/certs",
            OAUTH_STRICT="false",
            OAUTH_ISSUER="http://keycloak:8080/realms/r",
        )
    )
    assert config.issuer == "http://keycloak:8080/realms/r"


def test_called_tools_reads_single_messages_and_batches() -> None:
    call = rpc("tools/call", {"name": "reset"})
    assert authz_mod.called_tools(call) == ["reset"]
    assert authz_mod.called_tools([rpc("tools/list"), call]) == ["reset"]
    assert authz_mod.called_tools(rpc("tools/list")) == []
    with pytest.raises(authz_mod.MalformedRequest):
        authz_mod.called_tools({"method": "tools/call", "params": {}})
    for body in (b"{", b'{"a":1,"a":2}', b"[" * 100_000):
        with pytest.raises(authz_mod.MalformedRequest):
            authz_mod.parse_body(body)


# --------------------------------------------------------------------------- the entry point


def test_entry_point_runs_and_logs_no_secret(tmp_path: Path, signing_key: SigningKey) -> None:
    jwks = JwksServer([signing_key])
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # the subprocess binds it; a race with another process is unlikely on loopback
    env_file = tmp_path / "server.env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in env_values(port, jwks.url).items()) + "\n")
    url = f"http://127.0.0.1:{port}/mcp"
    minter = Minter(signing_key, url)
    environ = {k: v for k, v in os.environ.items() if k not in config_mod.KNOWN_KEYS}
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**environ, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path,
    )
    tokens = []
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)

        good = minter.token()
        bad = minter.token(aud="http://elsewhere/mcp")
        tokens += [good, bad]
        assert post(url, good, INITIALIZE).status_code == 200
        assert post(url, bad, INITIALIZE).status_code == 401
        # A client that wrongly puts the token in the query string: refused, and not logged.
        assert httpx.post(f"{url}?access_token={bad}", headers=MCP_HEADERS, content=b"{}").status_code == 401
    finally:
        proc.terminate()
        output = proc.communicate(timeout=15)[0].decode()
        jwks.close()

    assert "starting:" in output and f"resource={url}" in output and f"issuer={ISSUER}" in output
    assert "validation=jwt" in output
    assert "bearer token rejected" in output  # the reason is logged...
    for secret in (SECRET_MARKER, *tokens, *(t.split(".")[2] for t in tokens)):
        assert secret not in output  # ...but never the token or the client secret


def test_entry_point_reports_a_configuration_error(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text(f"MCP_TOKEN_VALIDATION=introspection\nOAUTH_ISSUER={ISSUER}\nOAUTH_CLIENT_ID=x\n")
    environ = {k: v for k, v in os.environ.items() if k not in config_mod.KNOWN_KEYS}
    result = subprocess.run(
        [sys.executable, str(SERVER_SCRIPT), "--env-file", str(env_file)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )
    assert result.returncode == 2
    assert "OAUTH_CLIENT_SECRET" in result.stderr
