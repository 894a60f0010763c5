"""No token passthrough (A40), end to end: the MCP server calls a downstream API with a token from token exchange.

From an empty realm, with kcprov commands only: ``kcprov apply`` of a realm
file whose MCP server names a downstream API (``mcp_servers[].downstream``)
makes the exchange client, the audiences and the API's client and scope, and
writes the env file with the exchange settings (the exchange client's secret
read back from Keycloak). Then, all real processes on loopback:
examples/downstream-api/api.py (validates ``aud`` = itself with PyJWT + the
realm JWKS), the reference MCP server, and the MCP SDK's client with a person
at Keycloak's login and consent pages (headless Chromium, or the browserless
fallback) who calls ``downstream_whoami``. The API sees a token with its own
audience, the user's ``sub`` and the exchange client (named by the server
URL) as ``azp`` (not the MCP
client's token); it refuses the user's original token with 401; no token is in
either process's log.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from dotenv import dotenv_values
from e2e_client import MemoryStorage, UserAgent, jwt_claims, mcp_session, user_provider
from e2e_support import (
    REPO,
    USERS,
    CallbackListener,
    McpServer,
    delete_realm,
    free_port,
    kcprov,
    kcprov_env,
    realm_prefix,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.keycloak

API_SCRIPT = REPO / "examples" / "downstream-api" / "api.py"
API = "accounts-api"

REALM = """\
realm: {realm}
users:
  - username: alice
    password: "{{{{ env.ALICE_PASSWORD }}}}"
    email: alice@example.com
    first_name: Alice
    last_name: Example
    enabled: true
    email_verified: true
mcp_servers:
  - name: calculator
    url: {url}
    scopes:
      mcp:tools: Call the calculator tools
    tool_scopes: {{add: mcp:tools, downstream_whoami: mcp:tools}}
    env_file: .env
    downstream:
      - client_id: {api}
        scopes: [accounts:read]
        url: {api_url}
    clients:
      - dcr: {{trusted_hosts: [localhost, 127.0.0.1], client_uris_must_match: false}}
"""


@dataclass
class Setup:
    realm: str
    issuer: str
    workdir: Path
    realm_file: Path
    env_file: Path
    api_url: str
    api_log: Path
    server: McpServer


@pytest.fixture(scope="module")
def setup(keycloak: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("token-exchange")
    name = f"{realm_prefix()}exchange-{secrets.token_hex(3)}"
    url, api_url = f"http://localhost:{free_port()}/mcp", f"http://127.0.0.1:{free_port()}"
    realm_file = workdir / "realm.yaml"
    realm_file.write_text(REALM.format(realm=name, url=url, api=API, api_url=api_url))
    env = {**kcprov_env(keycloak), "ALICE_PASSWORD": USERS["alice"]}
    issuer = f"{keycloak.url}/realms/{name}"
    api_log = workdir / "api.log"
    api: subprocess.Popen[bytes] | None = None
    server: McpServer | None = None
    try:
        kcprov("apply", str(realm_file), "--auto-approve", env=env, cwd=workdir)
        with api_log.open("wb") as log:
            api = subprocess.Popen([sys.executable, str(API_SCRIPT), "--issuer", issuer, "--audience", API,
                                    "--port", api_url.rsplit(":", 1)[1]], stdout=log, stderr=subprocess.STDOUT)
        wait_for(api, f"{api_url}/whoami", api_log)
        server = start_server(workdir / ".env", workdir / "server.log", url)
        yield Setup(name, issuer, workdir, realm_file, workdir / ".env", api_url, api_log, server)
    finally:
        if server is not None:
            stop_server(server)
        if api is not None:
            api.terminate()
            api.wait(timeout=15)
        delete_realm(keycloak, name)


def wait_for(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 401:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the downstream API did not start:\n{log.read_text()}")


def test_kcprov_writes_the_exchange_settings_and_plans_clean(setup: Setup, keycloak: Any) -> None:
    """The env file (0600) holds the exchange client, its secret from Keycloak, the API's audience, scopes, URL."""
    assert stat.S_IMODE(os.stat(setup.env_file).st_mode) == 0o600
    values = dotenv_values(setup.env_file)
    admin = keycloak.admin(setup.realm)
    exchanger = setup.server.url  # the exchange client is named by the server URL, which every user token's aud holds
    secret = admin.get_client_secrets(admin.get_client_id(exchanger))["value"]
    assert (values["MCP_EXCHANGE_CLIENT_ID"], values["MCP_EXCHANGE_CLIENT_SECRET"]) == (exchanger, secret)
    assert values["OAUTH_TOKEN_URL"] == f"{setup.issuer}/protocol/openid-connect/token"
    assert values["MCP_DOWNSTREAM_AUDIENCES"] == API
    assert values["MCP_DOWNSTREAM_SCOPES"] == f"{API}=accounts:read"
    assert values["MCP_DOWNSTREAM_URLS"] == f"{API}={setup.api_url}"
    live = admin.get_client(admin.get_client_id(exchanger))
    assert live["attributes"]["standard.token.exchange.enabled"] == "true" and not live["publicClient"]
    env = {**kcprov_env(keycloak), "ALICE_PASSWORD": USERS["alice"]}
    plan = kcprov("plan", str(setup.realm_file), "--detailed-exitcode", env=env, cwd=setup.workdir, check=False)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert secret not in plan.stdout + plan.stderr


def test_the_tool_reaches_the_api_as_the_user_with_an_exchanged_token(
    setup: Setup, login: Any, callback: CallbackListener, artifacts: Path
) -> None:
    """A40: the API sees aud = itself, the user's sub, azp = the exchange client; the user's token is refused."""
    storage = MemoryStorage()
    agent = UserAgent(login, username="alice", password=USERS["alice"], redirect_uri=callback.redirect_uri,
                      screenshot_dir=artifacts, name="token-exchange-alice")
    provider = user_provider(setup.server.url, agent, name="e2e token exchange client", storage=storage)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_session(setup.server.url, provider) as session:
            seen["tools"] = {t.name for t in (await session.list_tools()).tools}
            result = await session.call_tool("downstream_whoami", {})
            assert not result.is_error, result
            seen["answer"] = result.structured_content
            seen["unknown"] = await session.call_tool("downstream_whoami", {"api": "billing-api"})

    anyio.run(scenario)
    user_token = storage.tokens.access_token
    user = jwt_claims(user_token)
    assert "downstream_whoami" in seen["tools"]
    answer = seen["answer"]
    assert (answer["api"], answer["status"]) == (API, 200)
    saw = answer["answer"]
    assert saw["aud"] == API  # the exchanged token's audience is exactly the API
    assert saw["sub"] == user["sub"]  # ... and it is still the user
    assert saw["azp"] == setup.server.url != user["azp"]  # obtained by the MCP server, not the client's token passed on
    assert saw["scope"] == "accounts:read"
    assert API not in user["aud"] and setup.server.url in user["aud"]  # exchangeable by the URL-named client only
    unknown = seen["unknown"]  # only the configured APIs are reachable
    assert unknown.is_error and f"calls {API}" in unknown.content[0].text

    refused = httpx.get(f"{setup.api_url}/whoami", headers={"Authorization": f"Bearer {user_token}"}, timeout=30)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert f"not issued for {API}" in refused.json()["error_description"]

    secret = dotenv_values(setup.env_file)["MCP_EXCHANGE_CLIENT_SECRET"] or ""
    server_log, api_log = setup.server.log(), setup.api_log.read_text()
    assert "starting:" in server_log and "served sub=" in api_log
    for log in (server_log, api_log):
        assert user_token not in log and user_token.split(".")[2] not in log
        assert secret not in log



def test_a_refused_exchange_names_keycloaks_reason_not_the_token(setup: Setup) -> None:
    """A token Keycloak will not exchange (here: not a token at all) is an ExchangeError with Keycloak's reason only."""
    directory = str(REPO / "examples" / "mcp-server")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    from config import load_config
    from token_exchange import DownstreamCaller, ExchangeError

    caller = DownstreamCaller(load_config(setup.env_file, environ={}))
    bogus = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(40) + "." + secrets.token_urlsafe(40)

    async def exchange() -> str:
        try:
            return await caller.exchange(bogus, caller.api(None))
        finally:
            await caller.aclose()

    with pytest.raises(ExchangeError, match=r"refused by Keycloak \(HTTP 400, invalid_request: Invalid token\)") as caught:
        anyio.run(exchange)
    assert bogus not in str(caught.value) and bogus.split(".")[1] not in str(caught.value)
