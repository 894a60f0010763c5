"""End to end, as an MCP client sees it: kcprov's realm, the reference server, Keycloak, a person.

From an empty Keycloak realm: ``kcprov apply`` (subprocess) provisions it from
tests/e2e/realm.yaml, the reference server's env file is written and the
server started (subprocess), then the official MCP Python SDK client
discovers, registers (DCR and CIMD), sends the user through Keycloak's login
and consent pages in a real headless browser, and calls the tools. Negatives
check that each protection refuses what it should.

The requirement ids (A4, A5, ...) are those of docs in
/work/shared/MCP-AUTHZ-REQUIREMENTS.md, the MCP authorization spec's MUSTs
and SHOULDs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx
import pytest
from e2e_support import ADMIN_SCOPE, CONSENT_TEXT, TOOLS_SCOPE, USERS, CallbackListener, McpServer, Realm, kcprov
from e2e_client import (
    AuthorizationDenied,
    MemoryStorage,
    Traffic,
    UserAgent,
    jwt_claims,
    mcp_session,
    user_provider,
)
from e2e_login import HttpLogin
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

pytestmark = pytest.mark.keycloak

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


def m2m_token(realm: Realm, **form: str) -> httpx.Response:
    return httpx.post(
        realm.token_endpoint,
        data={"grant_type": "client_credentials", **form},
        auth=(realm.m2m_client_id, realm.m2m_secret),
        timeout=30,
    )


def tool_result(result: Any) -> Any:
    assert not result.is_error, result
    return result.structured_content["result"]


# Every access token any test here handled; the server's log must hold none of them (A48).
SEEN_TOKENS: set[str] = set()


def remember(*tokens: str | None) -> None:
    SEEN_TOKENS.update(t for t in tokens if t)


# --------------------------------------------------------------------------- provisioning


def test_kcprov_applied_realm_is_in_sync_and_has_the_mcp_settings(mcp_realm: Realm) -> None:
    """The realm came from an empty realm via `kcprov apply`; a second plan finds nothing to do."""
    plan = kcprov("plan", "tests/e2e/realm.yaml", "--detailed-exitcode", *mcp_realm.var_args(),
                  env=mcp_realm.kcprov_env(), check=False)
    assert plan.returncode == 0, f"plan not in sync (exit {plan.returncode}):\n{plan.stdout}\n{plan.stderr}"
    live = mcp_realm.keycloak.admin().get_realm(mcp_realm.name)
    assert live["sslRequired"] == "external"  # A50: HTTPS required except from private/loopback addresses
    assert live["accessTokenLifespan"] <= 300  # A46: short-lived access tokens
    assert live["revokeRefreshToken"] is True and live["refreshTokenMaxReuse"] == 0  # A47: rotation


# --------------------------------------------------------------------------- discovery (steps 1 and 2)


def test_401_challenge_names_the_resource_metadata_and_scope(mcp_server: McpServer, mcp_realm: Realm) -> None:
    """Step 1: an unauthenticated request gets 401 and the challenge leads to the PRM (A5, A8, A41)."""
    response = httpx.post(mcp_server.url, json=INITIALIZE, headers=MCP_HEADERS, timeout=30)
    assert response.status_code == 401
    params = challenge(response)
    assert params["resource_metadata"] == mcp_server.resource_metadata_url
    assert params["scope"] == TOOLS_SCOPE
    assert "result" not in response.text  # A38: nothing for unauthorised parties

    metadata = httpx.get(params["resource_metadata"], timeout=30).json()
    assert metadata["resource"] == mcp_server.url  # RFC 9728 §3.3: exactly the URL the client used
    assert metadata["authorization_servers"] == [mcp_realm.issuer]  # A4


def test_protected_resource_metadata_from_the_well_known_url_alone(mcp_server: McpServer, mcp_realm: Realm) -> None:
    """Step 1, without a challenge: the path-suffixed well-known URI built from the server URL (A4, A5, A11)."""
    parts = urlsplit(mcp_server.url)
    well_known = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"
    response = httpx.get(well_known, timeout=30)
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["resource"] == mcp_server.url
    assert metadata["authorization_servers"] == [mcp_realm.issuer]
    assert set(metadata["scopes_supported"]) == {TOOLS_SCOPE, ADMIN_SCOPE}
    assert "offline_access" not in metadata["scopes_supported"]  # A11


def test_authorization_server_metadata_at_the_path_inserted_url(mcp_server: McpServer, mcp_realm: Realm) -> None:
    """Step 2: RFC 8414 metadata at /.well-known/oauth-authorization-server/realms/<realm> (A12, A14, A28, A31)."""
    issuer = httpx.get(mcp_server.resource_metadata_url, timeout=30).json()["authorization_servers"][0]
    parts = urlsplit(issuer)
    url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}"
    assert url == mcp_realm.as_metadata_url
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    metadata = response.json()
    assert metadata["issuer"] == issuer  # exact string match (RFC 8414 §3.3)
    assert "S256" in metadata["code_challenge_methods_supported"]  # A25-A27: a client may proceed
    assert metadata["authorization_response_iss_parameter_supported"] is True  # A31
    assert metadata["client_id_metadata_document_supported"] is True  # A17
    assert metadata["registration_endpoint"] == mcp_realm.registration_endpoint  # A22
    for key in ("authorization_endpoint", "token_endpoint", "registration_endpoint", "jwks_uri"):
        assert metadata[key].startswith(issuer + "/"), key  # loopback http in dev; HTTPS elsewhere (A50)
    # OIDC discovery, the other document clients may read, advertises PKCE too (A28).
    oidc = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=30).json()
    assert oidc["issuer"] == issuer and "S256" in oidc["code_challenge_methods_supported"]
