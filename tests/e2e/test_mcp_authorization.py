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
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from e2e_client import (
    AuthorizationDenied,
    MemoryStorage,
    Traffic,
    UserAgent,
    jwt_claims,
    mcp_session,
    user_provider,
)
from e2e_support import (
    ADMIN_SCOPE,
    CONSENT_TEXT,
    TOOLS_SCOPE,
    USERS,
    CallbackListener,
    McpServer,
    MetadataDocuments,
    Realm,
    kcprov,
)
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


# --------------------------------------------------------------------------- the whole flow (steps 1-5), DCR


def test_dcr_client_logs_in_through_the_browser_and_calls_tools(
    mcp_server: McpServer,
    mcp_realm: Realm,
    login: Any,
    login_kind: str,
    callback: CallbackListener,
    artifacts: Any,
) -> None:
    """The SDK client from nothing: 401, PRM, AS metadata, DCR, code+PKCE+resource in a browser, tools, refresh."""
    traffic = Traffic()
    storage = MemoryStorage()
    agent = UserAgent(login, username="alice", password=USERS["alice"], redirect_uri=callback.redirect_uri,
                      screenshot_dir=artifacts, name="dcr-alice")
    provider = user_provider(mcp_server.url, agent, name="e2e DCR client", storage=storage)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_session(mcp_server.url, provider, traffic) as session:
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
    first = traffic.to(mcp_server.url)[0]
    assert "authorization" not in first.headers and first.status == 401
    prm = traffic.to(mcp_server.resource_metadata_url, "GET")
    assert prm and prm[0].status == 200
    # Step 2: AS metadata from the path-inserted RFC 8414 URL, first try (A12, A13).
    as_requests = [e for e in traffic.exchanges if "/.well-known/oauth-authorization-server" in e.url
                   or "openid-configuration" in e.url]
    assert [(e.url, e.status) for e in as_requests] == [(mcp_realm.as_metadata_url, 200)]
    # Step 3: anonymous DCR through the trusted-hosts policy (A22).
    registrations = traffic.to(mcp_realm.registration_endpoint, "POST")
    assert [e.status for e in registrations] == [201]
    client_id = storage.client_info.client_id
    assert registrations[0].json()["redirect_uris"] == [callback.redirect_uri]

    # Step 4: authorization code + PKCE S256 + resource (A25, A26, A33), iss in the response (A31).
    auth = agent.authorization_params(0)
    assert auth["client_id"] == client_id and auth["response_type"] == "code"
    assert auth["code_challenge_method"] == "S256" and len(auth["code_challenge"]) >= 43
    assert auth["resource"] == mcp_server.url
    assert TOOLS_SCOPE in auth["scope"].split()
    assert auth["redirect_uri"] == callback.redirect_uri  # loopback (A51)
    answer = agent.callback_params(0)
    assert answer["iss"] == mcp_realm.issuer and answer["state"] == auth["state"] and answer["code"]
    assert any(p.startswith("/callback?") for p in callback.received)  # the loopback listener got it
    token_requests = traffic.to(mcp_realm.token_endpoint, "POST")
    code_exchange = token_requests[0].form()
    assert code_exchange["grant_type"] == "authorization_code" and code_exchange["code_verifier"]
    assert code_exchange["resource"] == mcp_server.url  # A33, token request too
    assert base64.urlsafe_b64encode(hashlib.sha256(code_exchange["code_verifier"].encode()).digest()).rstrip(
        b"=").decode() == auth["code_challenge"]

    # The person: consent page showed the scope's consent text, answered in a real browser when there is one.
    result = agent.results[0]
    assert result.consent_text is not None and CONSENT_TEXT[TOOLS_SCOPE] in result.consent_text
    if login_kind == "browser":
        assert result.screenshot is not None and result.screenshot.stat().st_size > 10_000
        assert result.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The token: for this server (aud), from this issuer, short-lived (A39, A46).
    claims = jwt_claims(before.access_token)
    assert claims["iss"] == mcp_realm.issuer
    assert mcp_server.url in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])
    assert claims["azp"] == client_id and TOOLS_SCOPE in claims["scope"].split()
    assert claims["exp"] - claims["iat"] <= 300

    # Refresh: sent with resource (A33), a new refresh token came back, the old one is dead (A47).
    refresh = [e.form() for e in token_requests if e.form().get("grant_type") == "refresh_token"]
    assert len(refresh) == 1 and refresh[0]["resource"] == mcp_server.url
    assert after.access_token != before.access_token
    assert after.refresh_token and after.refresh_token != before.refresh_token
    reuse = httpx.post(mcp_realm.token_endpoint, timeout=30, data={
        "grant_type": "refresh_token", "refresh_token": before.refresh_token, "client_id": client_id,
        "resource": mcp_server.url})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant", reuse.text

    # The bearer token went in the Authorization header of every MCP request after the first, never in a URL (A35, A36).
    mcp_requests = traffic.to(mcp_server.url)[1:]
    assert mcp_requests and all(e.headers.get("authorization", "").startswith("Bearer ") for e in mcp_requests)
    for exchange in traffic.exchanges:
        assert "access_token" not in urlsplit(exchange.url).query
        assert before.access_token not in exchange.url and after.access_token not in exchange.url


# --------------------------------------------------------------------------- CIMD, and step-up to the admin scope


def test_cimd_client_logs_in_and_steps_up_to_the_admin_scope(
    mcp_server: McpServer,
    mcp_realm: Realm,
    login: Any,
    login_kind: str,
    callback: CallbackListener,
    metadata_documents: MetadataDocuments,
    artifacts: Any,
) -> None:
    """A CIMD client (no registration): tools, then `reset` -> 403 insufficient_scope -> re-authorize -> done.

    bob holds mcp-admin. The first authorization asks for the challenged scope
    only (mcp:tools); `reset` needs mcp:admin, the server says so in a 403
    challenge, and the SDK (2.x) steps up on its own: it re-authorizes with the
    union of the scopes, and retries the call.
    """
    document_url = metadata_documents.url("client")
    traffic = Traffic()
    storage = MemoryStorage()
    agent = UserAgent(login, username="bob", password=USERS["bob"], redirect_uri=callback.redirect_uri,
                      screenshot_dir=artifacts, name="cimd-bob")
    provider = user_provider(mcp_server.url, agent, name="e2e CIMD client", storage=storage,
                             client_metadata_url=document_url)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_session(mcp_server.url, provider, traffic) as session:
            seen["add"] = tool_result(await session.call_tool("add", {"a": 1, "b": 2}))
            seen["first_token"] = storage.tokens
            seen["reset"] = await session.call_tool("reset", {})
            seen["second_token"] = storage.tokens

    anyio.run(scenario)
    first, second = seen["first_token"], seen["second_token"]
    remember(first.access_token, second.access_token)

    # CIMD, not DCR: the client_id is the document URL, Keycloak fetched it, nothing was registered (A16, A17, A19).
    assert traffic.to(mcp_realm.registration_endpoint) == []
    assert agent.authorization_params(0)["client_id"] == document_url
    assert document_url in metadata_documents.fetched
    assert jwt_claims(first.access_token)["azp"] == document_url
    # The consent page names the client's host (CIMD security, A20).
    consent = agent.results[0].consent_text or ""
    assert CONSENT_TEXT[TOOLS_SCOPE] in consent and "127.0.0.1" in consent, consent

    # Step-up: `reset` was answered 403 with the scopes the operation needs, all in one challenge (A42, A43).
    denied = [e for e in traffic.to(mcp_server.url, "POST") if e.status == 403]
    assert len(denied) == 1
    params = challenge(httpx.Response(403, headers=denied[0].response_headers))
    assert params["error"] == "insufficient_scope"
    assert params["scope"].split() == [TOOLS_SCOPE, ADMIN_SCOPE]
    assert params["resource_metadata"] == mcp_server.resource_metadata_url
    assert TOOLS_SCOPE in jwt_claims(denied[0].headers["authorization"].split()[1])["scope"].split()
    # ... the SDK re-authorized with the union of scopes, bob consented to the admin scope, and the call went through.
    assert len(agent.authorization_urls) == 2
    assert {TOOLS_SCOPE, ADMIN_SCOPE} <= set(agent.authorization_params(1)["scope"].split())
    assert CONSENT_TEXT[ADMIN_SCOPE] in (agent.results[1].consent_text or "")
    assert not seen["reset"].is_error, seen["reset"]
    assert seen["reset"].structured_content["cleared"] >= 1
    claims = jwt_claims(second.access_token)
    assert ADMIN_SCOPE in claims["scope"].split() and "mcp-admin" in claims["realm_access"]["roles"]


def test_admin_tool_refused_to_a_user_without_the_admin_role(
    mcp_server: McpServer, mcp_realm: Realm, login: Any, callback: CallbackListener,
    metadata_documents: MetadataDocuments,
) -> None:
    """alice steps up to mcp:admin like bob, but lacks the realm role: the tool refuses, naming the role."""
    traffic = Traffic()
    storage = MemoryStorage()
    agent = UserAgent(login, username="alice", password=USERS["alice"], redirect_uri=callback.redirect_uri)
    provider = user_provider(mcp_server.url, agent, name="e2e CIMD client", storage=storage,
                             client_metadata_url=metadata_documents.url("client"))
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_session(mcp_server.url, provider, traffic) as session:
            seen["reset"] = await session.call_tool("reset", {})

    anyio.run(scenario)
    remember(*(t.access_token for t in storage.history))
    result = seen["reset"]
    assert result.is_error
    assert "requires the realm role 'mcp-admin'" in result.content[0].text
    claims = jwt_claims(storage.tokens.access_token)
    assert ADMIN_SCOPE in claims["scope"].split()  # the scope alone is not enough
    assert "mcp-admin" not in claims.get("realm_access", {}).get("roles", [])
    assert [e.status for e in traffic.to(mcp_server.url, "POST") if e.status in (401, 403)] == [401, 403]


@pytest.mark.xfail(strict=True, reason=(
    "Keycloak 26.7.3 + mcp 2.3.0: the SDK registers (DCR) with the 401 challenge's scope only, Keycloak makes "
    "the requested scopes the client's only optional scopes, so the step-up request for mcp:admin is refused "
    "with invalid_scope. Passes once either side changes (strict: then remove this mark)."))
def test_dcr_client_steps_up_to_a_scope_it_did_not_register(
    mcp_server: McpServer, mcp_realm: Realm, login: Any, callback: CallbackListener
) -> None:
    """A DCR client's step-up to mcp:admin (bob has the role)."""
    storage = MemoryStorage()
    agent = UserAgent(login, username="bob", password=USERS["bob"], redirect_uri=callback.redirect_uri)
    provider = user_provider(mcp_server.url, agent, name="e2e DCR step-up", storage=storage)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_session(mcp_server.url, provider) as session:
            seen["reset"] = await session.call_tool("reset", {})

    try:
        anyio.run(scenario)
    finally:
        remember(*(t.access_token for t in storage.history))
    assert not seen["reset"].is_error


def test_user_denies_consent_and_the_client_gets_access_denied(
    mcp_server: McpServer, mcp_realm: Realm, login: Any, callback: CallbackListener
) -> None:
    """The person clicks "No" on the consent page: the redirect carries error=access_denied (and iss); no token."""
    traffic = Traffic()
    agent = UserAgent(login, username="alice", password=USERS["alice"], redirect_uri=callback.redirect_uri,
                      consent="deny")
    provider = user_provider(mcp_server.url, agent, name="e2e client the user refuses")

    async def scenario() -> None:
        async with mcp_session(mcp_server.url, provider, traffic) as session:
            await session.list_tools()

    with pytest.raises(BaseException) as raised:  # the SDK's flow fails inside the transport's task group
        anyio.run(scenario)
    assert _contains(raised.value, AuthorizationDenied), raised.value
    answer = agent.callback_params()
    assert answer["error"] == "access_denied"
    assert answer["iss"] == mcp_realm.issuer and "code" not in answer
    assert traffic.to(mcp_realm.token_endpoint) == []
    assert all(e.status == 401 for e in traffic.to(mcp_server.url))


def _contains(exc: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(exc, kind):
        return True
    children = list(getattr(exc, "exceptions", ())) + [c for c in (exc.__cause__, exc.__context__) if c]
    return any(_contains(child, kind) for child in children)


# --------------------------------------------------------------------------- machine to machine


def test_client_credentials_client_calls_tools_without_a_user(mcp_server: McpServer, mcp_realm: Realm) -> None:
    """The SDK's ClientCredentialsOAuthProvider: discovery, client_credentials with resource, tools."""
    traffic = Traffic()
    storage = MemoryStorage()
    provider = ClientCredentialsOAuthProvider(
        server_url=mcp_server.url,
        storage=storage,
        client_id=mcp_realm.m2m_client_id,
        client_secret=mcp_realm.m2m_secret,
        scope=TOOLS_SCOPE,
        issuer=mcp_realm.issuer,
    )
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_session(mcp_server.url, provider, traffic) as session:
            seen["tools"] = {t.name for t in (await session.list_tools()).tools}
            seen["multiply"] = tool_result(await session.call_tool("multiply", {"a": 6, "b": 7}))

    anyio.run(scenario)
    remember(storage.tokens.access_token)
    assert seen == {"tools": {"add", "multiply", "reset"}, "multiply": 42.0}
    grant = traffic.to(mcp_realm.token_endpoint, "POST")[0]
    assert grant.form()["grant_type"] == "client_credentials" and grant.form()["resource"] == mcp_server.url
    assert "client_secret" not in grant.form() and grant.headers["authorization"].startswith("Basic ")
    claims = jwt_claims(storage.tokens.access_token)
    assert claims["aud"] == mcp_server.url and claims["azp"] == mcp_realm.m2m_client_id
    admin = mcp_realm.keycloak.admin(mcp_realm.name)
    service_account = admin.get_client_service_account_user(admin.get_client_id(mcp_realm.m2m_client_id))
    assert claims["sub"] == service_account["id"]  # the client's own service account, no person involved


# --------------------------------------------------------------------------- the authorization server refuses


def test_authorization_request_without_pkce_is_refused(mcp_realm: Realm, callback: CallbackListener) -> None:
    """The realm's pkce-enforcer policy: no code_challenge, or the `plain` method, gets an error (A25, A26)."""
    client_id = register(mcp_realm, callback.redirect_uri).json()["client_id"]
    base = {"response_type": "code", "client_id": client_id, "redirect_uri": callback.redirect_uri,
            "scope": TOOLS_SCOPE, "state": "s", "resource": mcp_realm.resource}
    _, challenge_s256 = pkce()
    for extra in ({}, {"code_challenge": challenge_s256, "code_challenge_method": "plain"}):
        response = httpx.get(f"{mcp_realm.issuer}/protocol/openid-connect/auth", params={**base, **extra}, timeout=30)
        assert response.status_code in (302, 303), response.text[:300]
        answer = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
        assert answer["error"] == "invalid_request", answer
        # "Missing parameter: code_challenge_method" / "... code challenge method is not matching ..."
        assert "code challenge" in answer["error_description"].replace("_", " "), answer
        assert answer["iss"] == mcp_realm.issuer  # error responses carry iss too (RFC 9207)
    # With S256 the same request reaches the login page.
    ok = httpx.get(f"{mcp_realm.issuer}/protocol/openid-connect/auth", timeout=30,
                   params={**base, "code_challenge": challenge_s256, "code_challenge_method": "S256"})
    assert ok.status_code == 200 and 'id="kc-form-login"' in ok.text


def test_redirect_uri_must_match_exactly(mcp_realm: Realm, callback: CallbackListener) -> None:
    """A registered redirect URI is matched exactly: another path on the same loopback port is refused (A52)."""
    client_id = register(mcp_realm, callback.redirect_uri).json()["client_id"]
    _, code_challenge = pkce()
    response = httpx.get(f"{mcp_realm.issuer}/protocol/openid-connect/auth", timeout=30, params={
        "response_type": "code", "client_id": client_id, "redirect_uri": callback.redirect_uri + "-evil",
        "scope": TOOLS_SCOPE, "state": "s", "code_challenge": code_challenge, "code_challenge_method": "S256"})
    assert response.status_code == 400 and "Invalid parameter: redirect_uri" in response.text


def test_dcr_refuses_a_redirect_uri_outside_the_trusted_hosts(
    strict_realm: Realm, mcp_realm: Realm
) -> None:
    """Trusted Hosts with client_uris_must_match: only loopback redirect URIs register (A51, A22)."""
    outside = register(strict_realm, "https://mcp-client.example/callback")
    assert outside.status_code == 403, outside.text
    assert "host" in outside.text.lower() or "trusted" in outside.text.lower(), outside.text
    assert register(strict_realm, "http://127.0.0.1:8765/callback").status_code == 201
    # The main realm (client_uris_must_match: false, like realms/mcp-dev.yaml) accepts it: the policy decides.
    assert register(mcp_realm, "https://mcp-client.example/callback").status_code == 201


def test_dcr_refuses_a_scope_outside_the_allowed_client_scopes(mcp_realm: Realm, callback: CallbackListener) -> None:
    """Allowed Client Scopes: a client may not register for another server's scope."""
    response = register(mcp_realm, callback.redirect_uri, scope=f"{TOOLS_SCOPE} other:read")
    assert response.status_code == 403, response.text
    assert "other:read" in response.text or "scope" in response.text.lower(), response.text


@pytest.mark.parametrize(
    ("document", "trusted", "message"),
    [
        ("client", False, "domain not allowed"),
        ("mismatch", True, "client_id property does not exactly match"),
        ("wrong-redirect", True, "redirect_uri parameter does not exactly match"),
    ],
    ids=["untrusted-domain", "client-id-mismatch", "redirect-uri-not-listed"],
)
def test_cimd_document_refused(
    mcp_realm: Realm, metadata_documents: MetadataDocuments, callback: CallbackListener,
    document: str, trusted: bool, message: str,
) -> None:
    """CIMD checks: a document from an untrusted domain is never fetched (SSRF guard), a bad one is refused (A19, A20)."""
    url = metadata_documents.url(document, trusted=trusted)
    _, code_challenge = pkce()
    response = httpx.get(f"{mcp_realm.issuer}/protocol/openid-connect/auth", timeout=30, params={
        "response_type": "code", "client_id": url, "redirect_uri": callback.redirect_uri, "scope": TOOLS_SCOPE,
        "state": "s", "code_challenge": code_challenge, "code_challenge_method": "S256",
        "resource": mcp_realm.resource})
    assert response.status_code == 400, response.text[:300]
    assert message in response.text, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text))[-400:]
    assert 'id="kc-form-login"' not in response.text
    if not trusted:
        assert url not in metadata_documents.fetched  # refused before any request to the untrusted host


def test_token_for_an_unknown_resource_is_refused_by_keycloak(mcp_realm: Realm) -> None:
    """RFC 8707 with Keycloak's resource-indicators feature: a resource no client serves gets invalid_target."""
    response = m2m_token(mcp_realm, resource="http://localhost:1/not-a-server", scope=TOOLS_SCOPE)
    assert response.status_code == 400 and response.json()["error"] == "invalid_target", response.text


# --------------------------------------------------------------------------- the MCP server refuses


def test_token_issued_for_another_resource_is_401(mcp_server: McpServer, mcp_realm: Realm) -> None:
    """A valid Keycloak token whose audience is another resource server is refused (A38, A39, A41)."""
    response = m2m_token(mcp_realm, resource=mcp_realm.other_resource, scope="other:read")
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    remember(token)
    assert jwt_claims(token)["aud"] == mcp_realm.other_resource
    answer = httpx.post(mcp_server.url, json=INITIALIZE, timeout=30,
                        headers={**MCP_HEADERS, "authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert challenge(answer)["error"] == "invalid_token"


def test_tampered_token_is_401(mcp_server: McpServer, mcp_realm: Realm) -> None:
    """Every token is verified: a Keycloak token with one signature byte changed is refused (A38, A41)."""
    token = m2m_token(mcp_realm, resource=mcp_server.url, scope=TOOLS_SCOPE).json()["access_token"]
    remember(token)
    head, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    answer = httpx.post(mcp_server.url, json=INITIALIZE, timeout=30,
                        headers={**MCP_HEADERS, "authorization": f"Bearer {head}.{payload}.{flipped}"})
    assert answer.status_code == 401 and challenge(answer)["error"] == "invalid_token"


def test_session_id_is_not_authentication(mcp_server: McpServer, mcp_realm: Realm) -> None:
    """A valid MCP session id without a (valid) token gets 401, nothing else (A57, A38)."""
    token = m2m_token(mcp_realm, resource=mcp_server.url, scope=TOOLS_SCOPE).json()["access_token"]
    remember(token)
    auth = {"authorization": f"Bearer {token}"}
    opened = httpx.post(mcp_server.url, json=INITIALIZE, headers={**MCP_HEADERS, **auth}, timeout=30)
    assert opened.status_code == 200
    session = opened.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    with_session = {**MCP_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    httpx.post(mcp_server.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
               headers={**with_session, **auth}, timeout=30)
    assert httpx.post(mcp_server.url, json=listing, headers={**with_session, **auth}, timeout=30).status_code == 200
    for headers in (with_session, {**with_session, "authorization": "Bearer not-a-token"}):
        refused = httpx.post(mcp_server.url, json=listing, headers=headers, timeout=30)
        assert refused.status_code == 401 and "tools" not in refused.text


# --------------------------------------------------------------------------- a second client nobody here wrote


def test_mcp_inspector_cli_lists_and_calls_the_tools(mcp_server: McpServer, mcp_realm: Realm, inspector: Any) -> None:
    """The official MCP Inspector CLI (npm) with a Keycloak token in the Authorization header."""
    token = m2m_token(mcp_realm, resource=mcp_server.url, scope=TOOLS_SCOPE).json()["access_token"]
    remember(token)
    bearer = f"Authorization: Bearer {token}"
    listed = inspector.run(mcp_server.url, "--transport", "http", "--method", "tools/list", "--header", bearer)
    assert listed.returncode == 0, listed.stderr
    assert {t["name"] for t in json.loads(listed.stdout)["tools"]} == {"add", "multiply", "reset"}
    called = inspector.run(mcp_server.url, "--transport", "http", "--method", "tools/call", "--tool-name", "multiply",
                           "--tool-arg", "a=6", "b=7", "--header", bearer)
    assert called.returncode == 0, called.stderr
    answer = json.loads(called.stdout)
    assert answer["isError"] is False and answer["structuredContent"]["result"] == 42
    # Without the header the inspector is refused (and would start its own OAuth flow on a terminal).
    refused = inspector.run(mcp_server.url, "--transport", "http", "--method", "tools/list")
    assert refused.returncode != 0 and "tools" not in refused.stdout
    assert "auth" in (refused.stdout + refused.stderr).lower()


# --------------------------------------------------------------------------- last: nothing leaked


def test_server_log_holds_none_of_the_tokens(mcp_server: McpServer) -> None:
    """Runs last in the module: the reference server logged none of the tokens it was sent (A48)."""
    assert SEEN_TOKENS, "the tests above handled no tokens?"
    log = mcp_server.log()
    assert "starting:" in log  # the log is the server's; it logs refusals, never the tokens themselves
    for token in SEEN_TOKENS:
        assert token not in log and token.split(".")[2] not in log
