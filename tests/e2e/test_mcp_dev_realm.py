"""End to end on realms/mcp-dev.yaml, the way the README tells a user to do it, seen from MCP clients.

From an empty Keycloak: ``kcprov apply realms/mcp-dev.yaml`` (subprocess) creates
the realm and writes the reference server's env file; ``kcprov env`` rewrites it
identically; the reference server starts (subprocess) from that env file. Then
the official MCP Python SDK client, knowing nothing but the server's URL:

1. gets 401 and finds the Protected Resource Metadata from ``WWW-Authenticate``
   (and, separately, from the well-known URL alone);
2. reads the RFC 9728 metadata, then Keycloak's RFC 8414 metadata at the
   path-inserted URL;
3. registers by anonymous DCR, or by a Client ID Metadata Document served on
   loopback;
4. runs authorization code + PKCE S256 + ``resource`` with a person at
   Keycloak's login and consent pages in a real headless browser (or the
   browserless fallback), and checks ``iss`` in the authorization response;
5. lists and calls the tools, refreshes the token (rotation) and calls again.

Requirement ids (A4, A5, ...) are those of MCP-AUTHZ-REQUIREMENTS.md.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import time
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from dotenv import dotenv_values
from e2e_client import MemoryStorage, Traffic, UserAgent, jwt_claims, mcp_session, user_provider
from e2e_support import (
    INITIALIZE,
    MCP_HEADERS,
    TOOLS_SCOPE,
    USERS,
    CallbackListener,
    McpServer,
    MetadataDocuments,
    Realm,
    assert_no_tokens_in,
    challenge,
    kcprov,
    kcprov_env,
    remember,
    tool_result,
)

pytestmark = pytest.mark.keycloak


def test_kcprov_applies_mcp_dev_and_writes_the_env_file(dev_realm: Realm, dev_server: McpServer) -> None:
    """`kcprov apply` made the realm and the env file the server runs on; plan is clean; `kcprov env` agrees."""
    env = {**kcprov_env(dev_realm.keycloak), "ALICE_PASSWORD": USERS["alice"]}
    plan = kcprov("plan", str(dev_realm.source), "--detailed-exitcode", env=env, cwd=dev_realm.workdir, check=False)
    assert plan.returncode == 0, f"plan not in sync (exit {plan.returncode}):\n{plan.stdout}\n{plan.stderr}"

    assert stat.S_IMODE(os.stat(dev_realm.env_file).st_mode) == 0o600  # A48: the file may hold a secret
    written = dev_realm.env_file.read_bytes()
    values = dotenv_values(dev_realm.env_file)
    assert values["MCP_RESOURCE_URL"] == dev_realm.resource == dev_server.url
    assert values["OAUTH_ISSUER"] == dev_realm.issuer
    assert values["MCP_TOKEN_VALIDATION"] == "jwt"
    dev_realm.env_file.unlink()
    kcprov("env", str(dev_realm.source), env=env, cwd=dev_realm.workdir)
    assert dev_realm.env_file.read_bytes() == written  # byte-identical rewrite

    live = dev_realm.keycloak.admin().get_realm(dev_realm.name)
    assert live["sslRequired"] == "external"  # A50: HTTPS required except from private/loopback addresses
    assert live["accessTokenLifespan"] <= 300  # A46
    assert live["revokeRefreshToken"] is True and live["refreshTokenMaxReuse"] == 0  # A47


# --------------------------------------------------------------------------- steps 1 and 2: discovery


def test_401_challenge_names_the_resource_metadata_and_scope(dev_server: McpServer, dev_realm: Realm) -> None:
    """Step 1: an unauthenticated request gets 401 and the challenge leads to the PRM (A5, A8, A41)."""
    response = httpx.post(dev_server.url, json=INITIALIZE, headers=MCP_HEADERS, timeout=30)
    assert response.status_code == 401
    params = challenge(response)
    assert params["resource_metadata"] == dev_server.resource_metadata_url
    assert params["scope"] == TOOLS_SCOPE
    assert "result" not in response.text  # A38: nothing for unauthorised parties

    metadata = httpx.get(params["resource_metadata"], timeout=30).json()
    assert metadata["resource"] == dev_server.url  # RFC 9728 §3.3: exactly the URL the client used
    assert metadata["authorization_servers"] == [dev_realm.issuer]  # A4


def test_protected_resource_metadata_from_the_well_known_url_alone(dev_server: McpServer, dev_realm: Realm) -> None:
    """Step 1, without a challenge: the path-suffixed well-known URI built from the server URL (A4, A5, A11)."""
    parts = urlsplit(dev_server.url)
    well_known = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"
    response = httpx.get(well_known, timeout=30)
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["resource"] == dev_server.url
    assert metadata["authorization_servers"] == [dev_realm.issuer]
    assert set(metadata["scopes_supported"]) == set(dev_realm.consent)
    assert "offline_access" not in metadata["scopes_supported"]  # A11


def test_authorization_server_metadata_at_the_path_inserted_url(dev_server: McpServer, dev_realm: Realm) -> None:
    """Step 2: RFC 8414 metadata at /.well-known/oauth-authorization-server/realms/<realm> (A12, A14, A28, A31)."""
    issuer = httpx.get(dev_server.resource_metadata_url, timeout=30).json()["authorization_servers"][0]
    parts = urlsplit(issuer)
    url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}"
    assert url == dev_realm.as_metadata_url
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    metadata = response.json()
    assert metadata["issuer"] == issuer  # exact string match (RFC 8414 §3.3)
    assert "S256" in metadata["code_challenge_methods_supported"]  # A25-A27: a client may proceed
    assert metadata["authorization_response_iss_parameter_supported"] is True  # A31
    assert metadata["client_id_metadata_document_supported"] is True  # A17
    assert metadata["registration_endpoint"] == dev_realm.registration_endpoint  # A22
    for key in ("authorization_endpoint", "token_endpoint", "registration_endpoint", "jwks_uri"):
        assert metadata[key].startswith(issuer + "/"), key  # loopback http in dev; HTTPS elsewhere (A50)
    # OIDC discovery, the other document clients may read, advertises PKCE too (A28).
    oidc = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=30).json()
    assert oidc["issuer"] == issuer and "S256" in oidc["code_challenge_methods_supported"]


# --------------------------------------------------------------------------- steps 3-5: DCR, a person, tools


def test_dcr_client_logs_in_through_the_browser_and_calls_tools(
    dev_server: McpServer,
    dev_realm: Realm,
    login: Any,
    login_kind: str,
    callback: CallbackListener,
    artifacts: Any,
) -> None:
    """The SDK client from nothing: 401, PRM, AS metadata, DCR, code+PKCE+resource in a browser, tools, refresh."""
    traffic = Traffic()
    storage = MemoryStorage()
    agent = UserAgent(
        login,
        username="alice",
        password=USERS["alice"],
        redirect_uri=callback.redirect_uri,
        screenshot_dir=artifacts,
        name="mcp-dev-dcr-alice",
    )
    provider = user_provider(dev_server.url, agent, name="e2e DCR client", storage=storage)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_session(dev_server.url, provider, traffic) as session:
            seen["tools"] = {t.name for t in (await session.list_tools()).tools}
            seen["add"] = tool_result(await session.call_tool("add", {"a": 2, "b": 3.5}))
            seen["multiply"] = tool_result(await session.call_tool("multiply", {"a": 4, "b": 2.5}))
            # The access token "expires": the SDK refreshes it and carries on (refresh token rotation).
            seen["before_refresh"] = storage.tokens
            provider.context.token_expiry_time = time.time() - 1
            seen["after_refresh_add"] = tool_result(await session.call_tool("add", {"a": 40, "b": 2}))
            seen["after_refresh"] = storage.tokens

    anyio.run(scenario)
    before, after = seen["before_refresh"], seen["after_refresh"]
    remember(before.access_token, after.access_token)

    # Step 5: tools listed and called with the right results, before and after the refresh.
    assert seen["tools"] == {"add", "multiply", "reset"}
    assert (seen["add"], seen["multiply"], seen["after_refresh_add"]) == (5.5, 10.0, 42.0)

    # Step 1: the first request had no token and got 401; the PRM came from the challenge's URL (A5).
    first = traffic.to(dev_server.url)[0]
    assert "authorization" not in first.headers and first.status == 401
    prm = traffic.to(dev_server.resource_metadata_url, "GET")
    assert prm and prm[0].status == 200
    # Step 2: AS metadata from the path-inserted RFC 8414 URL, first try (A12, A13).
    as_requests = [
        e
        for e in traffic.exchanges
        if "/.well-known/oauth-authorization-server" in e.url or "openid-configuration" in e.url
    ]
    assert [(e.url, e.status) for e in as_requests] == [(dev_realm.as_metadata_url, 200)]
    # Step 3: anonymous DCR through the trusted-hosts policy (A22).
    registrations = traffic.to(dev_realm.registration_endpoint, "POST")
    assert [e.status for e in registrations] == [201]
    client_id = storage.client_info.client_id
    assert registrations[0].json()["redirect_uris"] == [callback.redirect_uri]

    # Step 4: authorization code + PKCE S256 + resource (A25, A26, A33), iss in the response (A31).
    auth = agent.authorization_params(0)
    assert auth["client_id"] == client_id and auth["response_type"] == "code"
    assert auth["code_challenge_method"] == "S256" and len(auth["code_challenge"]) >= 43
    assert auth["resource"] == dev_server.url
    assert TOOLS_SCOPE in auth["scope"].split()
    assert auth["redirect_uri"] == callback.redirect_uri  # loopback (A51)
    answer = agent.callback_params(0)
    assert answer["iss"] == dev_realm.issuer and answer["state"] == auth["state"] and answer["code"]
    assert any(p.startswith("/callback?") for p in callback.received)  # the loopback listener got it
    token_requests = traffic.to(dev_realm.token_endpoint, "POST")
    code_exchange = token_requests[0].form()
    assert code_exchange["grant_type"] == "authorization_code" and code_exchange["code_verifier"]
    assert code_exchange["resource"] == dev_server.url  # A33, token request too
    assert (
        base64.urlsafe_b64encode(hashlib.sha256(code_exchange["code_verifier"].encode()).digest()).rstrip(b"=").decode()
        == auth["code_challenge"]
    )

    # The person: consent page showed the scope's consent text, answered in a real browser when there is one.
    result = agent.results[0]
    assert result.consent_text is not None and dev_realm.consent[TOOLS_SCOPE] in result.consent_text
    if login_kind == "browser":
        assert result.screenshot is not None and result.screenshot.stat().st_size > 10_000
        assert result.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The token: for this server (aud), from this issuer, short-lived (A39, A46).
    claims = jwt_claims(before.access_token)
    assert claims["iss"] == dev_realm.issuer
    assert dev_server.url in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])
    assert claims["azp"] == client_id and TOOLS_SCOPE in claims["scope"].split()
    assert claims["exp"] - claims["iat"] <= 300

    # Refresh: sent with resource (A33), a new refresh token came back, the old one is dead (A47).
    refresh = [e.form() for e in token_requests if e.form().get("grant_type") == "refresh_token"]
    assert len(refresh) == 1 and refresh[0]["resource"] == dev_server.url
    assert after.access_token != before.access_token
    assert after.refresh_token and after.refresh_token != before.refresh_token
    reuse = httpx.post(
        dev_realm.token_endpoint,
        timeout=30,
        data={
            "grant_type": "refresh_token",
            "refresh_token": before.refresh_token,
            "client_id": client_id,
            "resource": dev_server.url,
        },
    )
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant", reuse.text

    # The bearer token went in the Authorization header of every MCP request after the first, never in a URL (A35, A36).
    mcp_requests = traffic.to(dev_server.url)[1:]
    assert mcp_requests and all(e.headers.get("authorization", "").startswith("Bearer ") for e in mcp_requests)
    for exchange in traffic.exchanges:
        assert "access_token" not in urlsplit(exchange.url).query
        assert before.access_token not in exchange.url and after.access_token not in exchange.url


# --------------------------------------------------------------------------- step 3, the other way: CIMD


def test_cimd_client_logs_in_and_calls_tools(
    dev_server: McpServer,
    dev_realm: Realm,
    login: Any,
    callback: CallbackListener,
    metadata_documents: MetadataDocuments,
    artifacts: Any,
) -> None:
    """A client identified by its metadata document URL (no registration) through the realm's CIMD policy."""
    document_url = metadata_documents.url("client")
    traffic = Traffic()
    storage = MemoryStorage()
    agent = UserAgent(
        login,
        username="alice",
        password=USERS["alice"],
        redirect_uri=callback.redirect_uri,
        screenshot_dir=artifacts,
        name="mcp-dev-cimd-alice",
    )
    provider = user_provider(
        dev_server.url, agent, name="e2e CIMD client", storage=storage, client_metadata_url=document_url
    )
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_session(dev_server.url, provider, traffic) as session:
            seen["tools"] = {t.name for t in (await session.list_tools()).tools}
            seen["add"] = tool_result(await session.call_tool("add", {"a": 20, "b": 22}))

    anyio.run(scenario)
    remember(storage.tokens.access_token)
    assert seen == {"tools": {"add", "multiply", "reset"}, "add": 42.0}
    assert traffic.to(dev_realm.registration_endpoint) == []  # CIMD, not DCR (A16, A17)
    assert agent.authorization_params(0)["client_id"] == document_url
    assert document_url in metadata_documents.fetched  # Keycloak fetched the document (A19)
    assert agent.callback_params(0)["iss"] == dev_realm.issuer  # A31
    consent = agent.results[0].consent_text or ""
    assert dev_realm.consent[TOOLS_SCOPE] in consent and "127.0.0.1" in consent  # client host shown (A20)
    claims = jwt_claims(storage.tokens.access_token)
    assert claims["azp"] == document_url and dev_server.url in _audiences(claims)


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud", [])
    return [aud] if isinstance(aud, str) else list(aud)


def test_server_log_holds_none_of_the_tokens(dev_server: McpServer) -> None:
    """Runs last in the module: the reference server logged none of the tokens it was sent (A48)."""
    assert_no_tokens_in(dev_server.log())
