"""MCP servers against the real Keycloak: what `apply` builds, tokens it issues, env files.

One realm per test. The first test drives the CLI as a user does; the second
uses the workflow API in-process (faster) for the env file and its secret.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from dotenv import dotenv_values

from kcprov.apply import apply_plan
from kcprov.connection import ConnectionSettings
from kcprov.envgen import write_env_files
from kcprov.keycloak import KeycloakClient
from kcprov.resources import KINDS
from kcprov.spec import load_realm
from kcprov.workflow import plan_realm

pytestmark = pytest.mark.keycloak

ROOT = Path(__file__).resolve().parents[1]
URL = "http://localhost:3000/mcp"
ALICE = "alice-pw-4711"

CALCULATOR = """
realm: {realm}
roles:
  - name: mcp-admin
users:
  - username: alice
    password: "{{{{ env.MCP_TEST_ALICE }}}}"
    email: alice@example.com
    first_name: Alice
    last_name: Example
    email_verified: true
    realm_roles: [mcp-admin]
mcp_servers:
  - name: calculator
    url: {url}
    extra_audiences: [http://localhost:3000]
    scopes:
      mcp:tools: Call the calculator tools
      mcp:admin: Administer the calculator
    tool_scopes: {{add: mcp:tools, multiply: mcp:tools, reset: mcp:admin}}
    admin_role: mcp-admin
    token_validation: {validation}
    audience_binding: mapper
    env_file: {env_file}
    clients:
      - dcr: {{trusted_hosts: [localhost, 127.0.0.1]}}
      - cimd: {{trusted_domains: [localhost, 127.0.0.1], allow_http: true}}
      - preset: vscode
      - preset: claude-code
      - preset: mcp-inspector
      - client:
          client_id: calc-bot
          confidential: true
          service_account: true
          standard_flow: false
"""


def write_calculator(tmp_path: Path, realm: str, validation: str = "jwt") -> Path:
    path = tmp_path / "calculator.yaml"
    # env files are written under the working directory: the tests run kcprov in tmp_path
    path.write_text(CALCULATOR.format(realm=realm, url=URL, validation=validation, env_file="calc.env"))
    return path


def kcprov(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kcprov.cli", *args], check=False, env=env, capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def claims(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


class Admin:
    """Raw Admin API reads of one realm (the assertions compare Keycloak's own JSON)."""

    def __init__(self, keycloak, realm: str):
        token = httpx.post(f"{keycloak.url}/realms/master/protocol/openid-connect/token",
                           data={"grant_type": "password", "client_id": "admin-cli", "username": keycloak.user,
                                 "password": keycloak.password}).json()["access_token"]
        self.http = httpx.Client(base_url=f"{keycloak.url}/admin/realms/{realm}",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def get(self, path: str, **params):
        resp = self.http.get(path, params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def client(self, client_id: str) -> dict:
        [rep] = self.get("/clients", clientId=client_id)
        return rep

    def secret(self, client_id: str) -> str:
        return self.get(f"/clients/{self.client(client_id)['id']}/client-secret")["value"]


def by_name(items: list[dict], key: str = "name") -> dict[str, dict]:
    return {item[key]: item for item in items}


def token(keycloak, realm: str, client_id: str, secret: str, **extra) -> httpx.Response:
    return httpx.post(f"{keycloak.url}/realms/{realm}/protocol/openid-connect/token",
                      data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
                            **extra})


def login(keycloak, realm: str, client_id: str, redirect: str, scope: str, resource: str) -> httpx.Response:
    """Authorization code + PKCE + resource, through Keycloak's login and consent forms."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    base = f"{keycloak.url}/realms/{realm}/protocol/openid-connect"
    jar: dict[str, str] = {}  # Keycloak's cookies are Secure; keep them by hand on http://localhost

    def send(method: str, url: str, **kw) -> httpx.Response:
        url = url if url.startswith("http") else keycloak.url + url
        cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
        resp = httpx.request(method, url, headers={"Cookie": cookie}, timeout=60, **kw)
        for header in resp.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            jar[name.strip()] = rest.split(";")[0]
        return resp

    resp = send("GET", f"{base}/auth", params={
        "client_id": client_id, "redirect_uri": redirect, "response_type": "code", "scope": scope,
        "code_challenge": challenge, "code_challenge_method": "S256", "state": "s", "resource": resource})
    assert resp.status_code == 200 and "kc-form-login" in resp.text, resp.text[:500]
    action = html.unescape(re.search(r'id="kc-form-login"[^>]*action="([^"]+)"', resp.text).group(1))
    resp = send("POST", action, data={"username": "alice", "password": ALICE, "credentialId": ""})
    for _ in range(5):  # required-action redirect, then the consent form (DCR clients need consent)
        location = resp.headers.get("location", "")
        if resp.status_code == 302 and location.startswith(keycloak.url):
            resp = send("GET", location)
        elif resp.status_code == 200:
            form = html.unescape(re.search(r'<form[^>]*action="([^"]+)"', resp.text).group(1))
            resp = send("POST", form, data={"accept": "Yes"})
        else:
            break
    query = parse_qs(urlsplit(resp.headers.get("location", "")).query)
    assert "code" in query, (resp.status_code, resp.headers.get("location"))
    return httpx.post(f"{base}/token", data={
        "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": redirect,
        "client_id": client_id, "code_verifier": verifier, "resource": resource})


def test_calculator_realm_is_what_the_guide_describes(tmp_path, kc_env, keycloak, realm_name):
    env = {**os.environ, "MCP_TEST_ALICE": ALICE, "NO_COLOR": "1", "COLUMNS": "200"}
    path = write_calculator(tmp_path, realm_name)
    applied = kcprov("apply", str(path), "--auto-approve", env=env, cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "# MCP server 'calculator'" in applied.stdout
    assert ALICE not in applied.stdout + applied.stderr
    again = kcprov("plan", str(path), "--detailed-exitcode", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout

    admin = Admin(keycloak, realm_name)
    # scopes: optional, consent text, audience mappers
    scopes = by_name(admin.get("/client-scopes"))
    optional = {s["name"] for s in admin.get("/default-optional-client-scopes")}
    assert {"mcp:tools", "mcp:admin"} <= optional
    tools = scopes["mcp:tools"]
    assert tools["protocol"] == "openid-connect"
    assert tools["attributes"]["consent.screen.text"] == "Call the calculator tools"
    assert tools["attributes"]["include.in.token.scope"] == "true"
    assert tools["attributes"]["display.on.consent.screen"] == "true"
    mappers = {m["name"]: m for m in tools["protocolMappers"]}
    assert mappers["mcp-audience"]["config"]["included.custom.audience"] == URL
    assert mappers["mcp-audience-2"]["config"]["included.custom.audience"] == "http://localhost:3000"
    assert mappers["mcp-resource-audience"]["config"]["included.client.audience"] == "calculator-resource"
    assert all(m["protocolMapper"] == "oidc-audience-mapper" for m in mappers.values())
    assert admin.client("calculator-resource")["attributes"]["resource_url"] == URL

    # realm settings
    rep = admin.get("")
    assert (rep["revokeRefreshToken"], rep["refreshTokenMaxReuse"], rep["accessTokenLifespan"]) == (True, 0, 300)

    # client profiles and policies
    profiles = by_name(admin.get("/client-policies/profiles")["profiles"])
    policies = by_name(admin.get("/client-policies/policies")["policies"])
    assert profiles["mcp-pkce"]["executors"] == [{"executor": "pkce-enforcer",
                                                  "configuration": {"auto-configure": "true"}}]
    assert policies["mcp-pkce"]["conditions"] == [{"condition": "any-client", "configuration": {}}]
    assert policies["mcp-pkce"]["profiles"] == ["mcp-pkce"] and policies["mcp-pkce"]["enabled"] is True
    expected = {
        "calculator-cimd": ({"cimd-allow-http-scheme": "true", "cimd-allow-permitted-domains": ["localhost", "127.0.0.1"],
                             "cimd-restrict-same-domain": "false"}, ["http", "https"], ["localhost", "127.0.0.1"]),
        "calculator-vscode": ({"cimd-allow-http-scheme": "false",
                               "cimd-allow-permitted-domains": ["vscode.dev", "127.0.0.1", "code.visualstudio.com"],
                               "cimd-restrict-same-domain": "false"}, ["https"], ["vscode.dev"]),
        "calculator-claude-code": ({"cimd-allow-http-scheme": "false",
                                    "cimd-allow-permitted-domains": ["claude.ai", "localhost", "127.0.0.1"],
                                    "cimd-restrict-same-domain": "false"}, ["https"], ["claude.ai"]),
    }
    for name, (executor, schemes, domains) in expected.items():
        [live] = profiles[name]["executors"]
        assert live["executor"] == "client-id-metadata-document"
        config = live["configuration"]
        assert {k: config[k] for k in executor} == executor, name
        assert config["only-allow-confidential-client"] == "false"
        assert config["cimd-resource-indicator-allow-list"] == [URL]
        policy = policies[name]
        assert policy["enabled"] is True and policy["profiles"] == [name]
        assert policy["conditions"] == [{"condition": "client-id-uri", "configuration": {
            "client-id-uri-scheme": schemes, "client-id-uri-allow-permitted-domains": domains}}]

    # anonymous registration policies
    components = admin.get("/components", type="org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy")
    anonymous = {c["providerId"]: c["config"] for c in components if c["subType"] == "anonymous"}
    assert sorted(anonymous["trusted-hosts"]["trusted-hosts"]) == ["127.0.0.1", "localhost"]
    assert anonymous["trusted-hosts"]["client-uris-must-match"] == ["true"]
    assert sorted(anonymous["allowed-client-templates"]["allowed-client-scopes"]) == [
        "mcp:admin", "mcp:tools", "offline_access"]
    assert anonymous["allowed-client-templates"]["allow-default-scopes"] == ["true"]
    assert anonymous["registration-web-origins"]["web-origins"] == ["http://localhost:6274"]

    # a pre-registered client: client credentials for mcp:tools carry the server URL as audience
    bot = admin.client("calc-bot")
    assert {"mcp:tools", "mcp:admin"} <= set(bot["optionalClientScopes"])
    resp = token(keycloak, realm_name, "calc-bot", admin.secret("calc-bot"), scope="mcp:tools")
    assert resp.status_code == 200, resp.text
    access = claims(resp.json()["access_token"])
    assert URL in access["aud"] and "mcp:tools" in access["scope"].split()

    # a DCR client (as the MCP SDK registers: its scopes + offline_access, loopback redirect) logs in
    # with PKCE and resource=<url>: the token's audience is exactly the server URL
    redirect = "http://127.0.0.1:33418/callback"
    registered = httpx.post(f"{keycloak.url}/realms/{realm_name}/clients-registrations/openid-connect", json={
        "redirect_uris": [redirect], "token_endpoint_auth_method": "none", "client_name": "sdk",
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "scope": "mcp:tools mcp:admin offline_access"})
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    assert admin.client(client_id)["attributes"]["pkce.code.challenge.method"] == "S256"  # mcp-pkce auto-configures
    no_pkce = httpx.get(f"{keycloak.url}/realms/{realm_name}/protocol/openid-connect/auth", params={
        "client_id": client_id, "redirect_uri": redirect, "response_type": "code", "scope": "mcp:tools"})
    assert parse_qs(urlsplit(no_pkce.headers["location"]).query)["error"] == ["invalid_request"]  # PKCE enforced
    resp = login(keycloak, realm_name, client_id, redirect, "mcp:tools", URL)
    assert resp.status_code == 200, resp.text
    access = claims(resp.json()["access_token"])
    assert access["aud"] in (URL, [URL])
    assert access["scope"].split() == ["mcp:tools"]
    # the inspector's browser origin may register
    preflight = httpx.options(f"{keycloak.url}/realms/{realm_name}/clients-registrations/openid-connect",
                              headers={"Origin": "http://localhost:6274", "Access-Control-Request-Method": "POST"})
    assert preflight.headers.get("access-control-allow-origin") == "http://localhost:6274"


def test_env_file_follows_the_introspection_secret(tmp_path, monkeypatch, keycloak, realm_name):
    monkeypatch.setenv("MCP_TEST_ALICE", ALICE)
    monkeypatch.chdir(tmp_path)
    spec = load_realm(write_calculator(tmp_path, realm_name, validation="introspection"))
    client = KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user, password=keycloak.password))
    run = plan_realm(client, spec, "calculator.yaml")
    result = apply_plan(client, run.plan, run.live, run.desired, KINDS)
    assert result.ok, result.failed
    assert plan_realm(client, spec, "calculator.yaml").plan.empty

    env_file = Path("calc.env")
    assert write_env_files(client, spec, source="calculator.yaml") == [(env_file, True)]
    first = env_file.read_bytes()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert write_env_files(client, spec, source="calculator.yaml") == [(env_file, False)]
    assert env_file.read_bytes() == first
    admin = Admin(keycloak, realm_name)
    values = dotenv_values(env_file)
    assert values["OAUTH_CLIENT_ID"] == "calculator-introspector"
    assert values["OAUTH_CLIENT_SECRET"] == admin.secret("calculator-introspector")
    assert values["OAUTH_ISSUER"] == f"{keycloak.url}/realms/{realm_name}"

    # the server can introspect a token with that secret (it is not in the token's audience)
    access = token(keycloak, realm_name, "calc-bot", admin.secret("calc-bot"), scope="mcp:tools").json()
    introspected = httpx.post(
        f"{keycloak.url}/realms/{realm_name}/protocol/openid-connect/token/introspect",
        data={"token": access["access_token"]}, auth=(values["OAUTH_CLIENT_ID"], values["OAUTH_CLIENT_SECRET"]))
    assert introspected.json()["active"] is True
    assert URL in introspected.json()["aud"]

    # rotate the secret in Keycloak: the next run writes the new one
    uuid = admin.client("calculator-introspector")["id"]
    rotated = admin.http.post(f"/clients/{uuid}/client-secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["value"]
    assert new_secret != values["OAUTH_CLIENT_SECRET"]
    assert write_env_files(client, spec, source="calculator.yaml") == [(env_file, True)]
    assert dotenv_values(env_file)["OAUTH_CLIENT_SECRET"] == new_secret
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
