"""Machine-to-machine clients for the reference MCP server, against the real Keycloak.

Shared by tests/test_private_key_jwt.py and tests/test_dpop.py: a realm with one
MCP server and service clients is applied with the real CLI (which writes the
server's env file), the reference server runs as its own process, and a
service client gets tokens with the client credentials grant (a secret or a
RFC 7523 assertion, optionally with a DPoP proof) and calls a tool over raw
streamable HTTP, so every header is visible to the test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import yaml
from jwcrypto import jwk

from kindcontract import cli_env, kcprov, ok

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))
from e2e_support import INITIALIZE, MCP_HEADERS, start_server, stop_server  # noqa: E402

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def server_entry(port: int, clients: list[dict], **extra: Any) -> dict:
    """An `mcp_servers` entry on loopback `port` with client entries `clients` and its env file."""
    return {"name": "calc", "url": f"http://localhost:{port}/mcp", "scopes": {"mcp:tools": "Use the calculator"},
            "tool_scopes": {"add": "mcp:tools"}, "env_file": "calc.env",
            "clients": [{"client": c} for c in clients], **extra}


def apply_realm(keycloak: Any, directory: Path, spec: dict, **env: str) -> tuple[Path, list[str]]:
    """Write the realm file, apply it with the CLI (env file included), and return the file and every output."""
    path = directory / "realm.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    environment = cli_env(keycloak, **env)
    applied = ok(kcprov("apply", str(path), "--auto-approve", env=environment, cwd=directory))
    replanned = ok(kcprov("plan", str(path), "--detailed-exitcode", env=environment, cwd=directory))
    return path, [applied.stdout + applied.stderr, replanned.stdout + replanned.stderr]


@dataclass
class SigningKey:
    """An EC key pair held by a test client; only its public JWK goes anywhere."""

    key: jwk.JWK = field(default_factory=lambda: jwk.JWK.generate(kty="EC", crv="P-256"), repr=False)

    @property
    def pem(self) -> bytes:
        return self.key.export_to_pem(private_key=True, password=None)

    @property
    def public(self) -> dict:
        return json.loads(self.key.export_public())

    @property
    def thumbprint(self) -> str:
        return self.key.thumbprint()

    def assertion(self, client_id: str, token_url: str, kid: str | None = None) -> str:
        """RFC 7523 client assertion: iss = sub = client_id, aud = the token endpoint, one-use jti, short exp."""
        now = int(time.time())
        claims = {"iss": client_id, "sub": client_id, "aud": token_url, "jti": uuid.uuid4().hex,
                  "iat": now, "exp": now + 60}
        return jwt.encode(claims, self.pem, algorithm="ES256", headers={"kid": kid} if kid else None)

    def proof(self, method: str, url: str, access_token: str | None = None, **claims: Any) -> str:
        """A DPoP proof (RFC 9449 §4.2) for `method url`, bound to `access_token` when given."""
        body = {"htm": method, "htu": url, "iat": int(time.time()), "jti": uuid.uuid4().hex, **claims}
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode()).digest()
            body["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return jwt.encode(body, self.pem, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": self.public})


def token_url(keycloak: Any, realm: str) -> str:
    return f"{keycloak.url}/realms/{realm}/protocol/openid-connect/token"


def client_credentials(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, data={"grant_type": "client_credentials", "scope": "mcp:tools", **form},
                      headers=headers or {}, timeout=30)


@contextmanager
def running_server(directory: Path, url: str) -> Iterator[Any]:
    server = start_server(directory / "calc.env", directory / "server.log", url)
    try:
        yield server
    finally:
        stop_server(server)


def jsonrpc_result(response: httpx.Response) -> dict:
    """The JSON-RPC message of a streamable HTTP answer (plain JSON or one SSE event)."""
    assert response.status_code == 200, (response.status_code, response.headers, response.text)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return response.json()


def call_tool(url: str, auth: Callable[[str], dict[str, str]], tool: str, arguments: dict) -> dict:
    """initialize, initialized, tools/call, each with headers from `auth(method)`; the call's result."""
    with httpx.Client(timeout=30) as http:
        init = http.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **auth("POST")})
        jsonrpc_result(init)
        session = {"mcp-session-id": init.headers["mcp-session-id"]}
        note = http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                         headers={**MCP_HEADERS, **session, **auth("POST")})
        assert note.status_code == 202, note.text
        call = http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                    "params": {"name": tool, "arguments": arguments}},
                         headers={**MCP_HEADERS, **session, **auth("POST")})
        return jsonrpc_result(call)["result"]


def www_authenticate(response: httpx.Response, scheme: str) -> dict[str, str]:
    """Parameters of a `WWW-Authenticate: <scheme> k="v", ...` header."""
    value = response.headers["www-authenticate"]
    assert value.startswith(f"{scheme} "), value
    return {k: v.replace('\\"', '"') for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', value)}
