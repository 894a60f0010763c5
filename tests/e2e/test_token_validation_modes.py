"""From an empty realm, with kcprov commands only: apply + env + the reference server, in both validation modes.

A machine client (client credentials, scope=mcp:tools) calls `add` over
streamable HTTP, once with the server validating JWTs against the realm JWKS
and once with it introspecting every token with the confidential client kcprov
made for it (its secret read back from Keycloak into the env file).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from dotenv import dotenv_values
from e2e_client import mcp_session
from e2e_support import free_port, kcprov, kcprov_env, start_server, stop_server, tool_result

REALM = """\
realm: {realm}
mcp_servers:
  - name: calculator
    url: {url}
    scopes:
      mcp:tools: Call the calculator tools
    tool_scopes: {{add: mcp:tools, multiply: mcp:tools}}
    token_validation: {mode}
    env_file: {env_file}
    clients:
      - client:
          client_id: m2m-agent
          confidential: true
          service_account: true
          standard_flow: false
"""


class Bearer(httpx2.Auth):
    def __init__(self, token: str):
        self.token = token

    def auth_flow(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


@pytest.mark.parametrize("mode", ["jwt", "introspection"])
def test_client_credentials_token_calls_add(mode: str, keycloak, realm_name: str, tmp_path: Path) -> None:
    url = f"http://localhost:{free_port()}/mcp"
    env_file = tmp_path / ".env"  # written by kcprov running in tmp_path: env files stay under the working directory
    realm_file = tmp_path / "calculator.yaml"
    realm_file.write_text(REALM.format(realm=realm_name, url=url, mode=mode, env_file=".env"))
    env = kcprov_env(keycloak)

    applied = kcprov("apply", str(realm_file), "--auto-approve", env=env, cwd=tmp_path)
    assert "Wrote .env" in applied.stdout
    assert "Unchanged" in kcprov("env", str(realm_file), env=env, cwd=tmp_path).stdout
    values = dotenv_values(env_file)
    assert values["MCP_TOKEN_VALIDATION"] == mode
    introspector_secret = values["OAUTH_CLIENT_SECRET"]
    assert bool(introspector_secret) == (mode == "introspection")

    admin = keycloak.admin(realm_name)
    secret = admin.get_client_secrets(admin.get_client_id("m2m-agent"))["value"]
    issued = httpx.post(f"{values['OAUTH_ISSUER']}/protocol/openid-connect/token",
                        data={"grant_type": "client_credentials", "client_id": "m2m-agent",
                              "client_secret": secret, "scope": "mcp:tools"})
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]

    server = start_server(env_file, tmp_path / "server.log", url)
    try:
        async def call_add() -> float:
            async with mcp_session(url, Bearer(token)) as session:
                return tool_result(await session.call_tool("add", {"a": 2, "b": 40}))

        assert anyio.run(call_add) == 42
        unauthenticated = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert unauthenticated.status_code == 401
    finally:
        stop_server(server)
    log = server.log()
    for leaked in (token, secret, introspector_secret or token):
        assert leaked not in log
    for output in (applied.stdout, applied.stderr):
        assert secret not in output and (not introspector_secret or introspector_secret not in output)
