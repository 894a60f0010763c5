"""End to end, the seed tutorial's "Keycloak -> company SSO" setup: realms/mcp-sso.yaml brokering to realms/company-sso.yaml.

``kcprov apply`` (subprocess) makes both files into two fresh realms of the
test Keycloak: the company SSO (users alice, in its group mcp-admins, and bob,
in none; the confidential client mcp-broker) and the MCP realm (no local users;
the OIDC identity provider company-sso, the group /mcp-admins holding the admin
role, identity provider mappers, the calculator server from realms/mcp-dev.yaml).
The reference server runs on the env file that apply wrote.

Then, as an MCP client application does it (the official SDK, a CIMD client,
authorization code + PKCE S256 + ``resource``), a person logs in in a real
headless Chromium (the browserless fallback where there is none, as everywhere
in tests/e2e): at the MCP realm's login page they click "Company SSO", log
in at the company SSO's page, and come back through the broker without any
extra form (Keycloak's own first broker login flow asks nothing when the SSO
sends email and names). The identity provider mappers decide what they may do:
alice's ``groups`` claim puts her in /mcp-admins, whose role reaches her access
token, and the admin-only tool runs; bob gets the tools but not the admin scope,
and the server refuses him the admin tool.

Afterwards the plans of both files are empty (brokered users are not in the files
and show as nothing), and the identity provider's client secret appeared in no
output of any kcprov command.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from e2e_client import MemoryStorage, Traffic, UserAgent, jwt_claims, mcp_session, user_provider
from e2e_login import LoginResult
from mcp.shared.exceptions import MCPError
from e2e_support import (
    ADMIN_SCOPE,
    REPO,
    SEEN_TOKENS,
    SUMMARY,
    TOOLS_SCOPE,
    CallbackListener,
    McpServer,
    MetadataDocuments,
    Realm,
    assert_no_tokens_in,
    challenge,
    delete_realm,
    free_port,
    kcprov,
    kcprov_env,
    realm_prefix,
    remember,
    start_server,
    stop_server,
    tool_result,
)

pytestmark = pytest.mark.keycloak

MCP_FILE = REPO / "realms" / "mcp-sso.yaml"
SSO_FILE = REPO / "realms" / "company-sso.yaml"
IDP = "company-sso"
SSO_USERS = {"alice": "alice-sso-e2e-pw", "bob": "bob-sso-e2e-pw"}


@dataclass
class Brokered:
    """Both realms as applied, and every output kcprov printed for them (none may hold the secret)."""

    mcp: Realm
    sso_name: str
    secret: str = field(repr=False)
    env: dict[str, str] = field(repr=False)
    outputs: list[str] = field(default_factory=list, repr=False)

    def run(self, *args: str, check: bool = True, with_vars: bool = True) -> Any:
        """kcprov in a subprocess, with the realm files' --var values (commands that read a file)."""
        extra = self.mcp.var_args() if with_vars else []
        done = kcprov(*args, *extra, env=self.env, cwd=self.mcp.workdir, check=check)
        self.outputs += [done.stdout, done.stderr]
        return done


class ThroughBroker:
    """The session's login driver, logging in at the company SSO instead of the realm's own form."""

    def __init__(self, login: Any) -> None:
        self.login = login

    def authorize(self, url: str, **kwargs: Any) -> LoginResult:
        return self.login.authorize(url, identity_provider=IDP, **kwargs)


@pytest.fixture(scope="module")
def brokered(keycloak: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Brokered]:
    """``kcprov apply realms/company-sso.yaml``, then ``realms/mcp-sso.yaml``, into two fresh realms."""
    suffix = secrets.token_hex(3)
    workdir = tmp_path_factory.mktemp("mcp-sso")  # the env file mcp-sso.yaml names lands here
    port = free_port()
    mcp = Realm(
        keycloak=keycloak,
        name=f"{realm_prefix()}mcp-sso-{suffix}",
        resource=f"http://localhost:{port}/mcp",
        workdir=workdir,
        source=MCP_FILE,
        env_file=workdir / "examples" / "mcp-server" / ".env",
        consent={TOOLS_SCOPE: "Call the calculator tools", ADMIN_SCOPE: "Administer the calculator"},
    )
    secret = secrets.token_urlsafe(32)
    mcp.vars = {
        "keycloak_url": keycloak.url,
        "realm": mcp.name,
        "sso_realm": f"{realm_prefix()}company-sso-{suffix}",
        "mcp_port": str(port),
    }
    env = {
        **kcprov_env(keycloak),
        "COMPANY_SSO_SECRET": secret,
        "SSO_ALICE_PASSWORD": SSO_USERS["alice"],
        "SSO_BOB_PASSWORD": SSO_USERS["bob"],
    }
    realms = Brokered(mcp=mcp, sso_name=mcp.vars["sso_realm"], secret=secret, env=env)
    try:
        for source in (SSO_FILE, MCP_FILE):  # the SSO's client first: the provider names it
            started = time.monotonic()
            realms.run("apply", str(source), "--auto-approve")
            SUMMARY[f"kcprov apply realms/{source.name}"] = f"{time.monotonic() - started:.1f}s"
        yield realms
    finally:
        for name in (mcp.name, realms.sso_name):
            delete_realm(keycloak, name)


@pytest.fixture(scope="module")
def sso_server(brokered: Brokered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpServer]:
    """The reference server on the env file `kcprov apply realms/mcp-sso.yaml` wrote."""
    env_file = brokered.mcp.env_file
    assert env_file is not None and env_file.is_file(), "kcprov apply wrote no env file"
    server = start_server(env_file, tmp_path_factory.mktemp("mcp-sso-server") / "server.log", brokered.mcp.resource)
    yield server
    stop_server(server)


def brokered_user(brokered: Brokered, username: str) -> dict[str, Any]:
    """The user the broker made in the MCP realm: its links, groups and realm roles (Admin API)."""
    admin = brokered.mcp.keycloak.admin(brokered.mcp.name)
    (user,) = [u for u in admin.get_users({"username": username, "exact": True}) if u["username"] == username]
    return {
        "user": user,
        "links": admin.get_user_social_logins(user["id"]),
        "groups": [g["path"] for g in admin.get_user_groups(user["id"])],
        "roles": {r["name"] for r in admin.get_realm_roles_of_user(user["id"])},
    }


def log_in(
    server: McpServer,
    login: Any,
    callback: CallbackListener,
    documents: MetadataDocuments,
    artifacts: Path,
    username: str,
) -> tuple[dict[str, Any], UserAgent, MemoryStorage, Traffic]:
    """A CIMD client (the SDK's flow): `add`, then `reset` (403 -> step-up to mcp:admin -> a second login)."""
    traffic, storage = Traffic(), MemoryStorage()
    agent = UserAgent(
        ThroughBroker(login),  # type: ignore[arg-type]
        username=username,
        password=SSO_USERS[username],
        redirect_uri=callback.redirect_uri,
        screenshot_dir=artifacts,
        name=f"broker-{username}",
    )
    provider = user_provider(
        server.url, agent, name="e2e CIMD client", storage=storage, client_metadata_url=documents.url("client")
    )
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with mcp_session(server.url, provider, traffic) as session:
            seen["add"] = tool_result(await session.call_tool("add", {"a": 1, "b": 2}))
            try:
                seen["reset"] = await session.call_tool("reset", {})
            except Exception as exc:  # noqa: BLE001 - the refusal's form is what the test looks at
                seen["reset_error"] = exc

    started = time.monotonic()
    anyio.run(scenario)
    SUMMARY[f"{username}: brokered logins + tool calls"] = f"{time.monotonic() - started:.1f}s"
    remember(*(t.access_token for t in storage.history))
    return seen, agent, storage, traffic


def assert_brokered_pages(brokered: Brokered, result: LoginResult) -> None:
    """The realm's login page (with the provider's button), the SSO's login page, the consent page: nothing else."""
    mcp_page, sso_page, consent = result.pages
    # Case and spacing apart (the browser's text follows the theme's CSS): the realm's name and the button ...
    mcp_text, sso_text = (" ".join(page.upper().split()) for page in (mcp_page, sso_page))
    assert "MCP (COMPANY SSO)" in mcp_text and "OR SIGN IN WITH COMPANY SSO" in mcp_text
    # ... then the company SSO's own login page.
    assert "COMPANY SSO" in sso_text and "MCP" not in sso_text and "SIGN IN TO YOUR ACCOUNT" in sso_text
    assert result.consent_text == consent and "Do you grant these access privileges?" in consent


# --------------------------------------------------------------------------- provisioning


def test_both_files_validate_and_a_second_plan_is_empty(brokered: Brokered) -> None:
    """`kcprov validate` takes both files; right after apply, both plans are in sync (exit 0)."""
    for source in (SSO_FILE, MCP_FILE):
        assert "ok" in brokered.run("validate", str(source)).stdout
        plan = brokered.run("plan", str(source), "--detailed-exitcode", check=False)
        assert plan.returncode == 0, f"{source.name}: not in sync (exit {plan.returncode}):\n{plan.stdout}\n{plan.stderr}"
    admin = brokered.mcp.keycloak.admin(brokered.mcp.name)
    (provider,) = admin.get_idps()
    assert provider["alias"] == IDP and provider["trustEmail"] is True
    assert provider["firstBrokerLoginFlowAlias"] == "first broker login"
    issuer = f"{brokered.mcp.keycloak.url}/realms/{brokered.sso_name}"
    assert provider["config"]["issuer"] == issuer and provider["config"]["clientId"] == "mcp-broker"
    assert provider["config"]["clientSecret"] != brokered.secret  # the Admin API masks it
    broker = brokered.mcp.keycloak.admin(brokered.sso_name).get_clients()
    (client,) = [c for c in broker if c["clientId"] == "mcp-broker"]
    assert client["redirectUris"] == [f"{brokered.mcp.issuer}/broker/{IDP}/endpoint"]


# --------------------------------------------------------------------------- the people


def test_alice_logs_in_through_the_company_sso_and_calls_the_admin_tool(
    brokered: Brokered,
    sso_server: McpServer,
    login: Any,
    callback: CallbackListener,
    metadata_documents: MetadataDocuments,
    artifacts: Path,
) -> None:
    """alice: SSO group mcp-admins -> IdP mapper -> /mcp-admins -> mcp-admin in her token -> `reset` runs."""
    seen, agent, storage, traffic = log_in(sso_server, login, callback, metadata_documents, artifacts, "alice")

    assert seen["add"] == 3.0
    assert "reset_error" not in seen, seen.get("reset_error")
    assert not seen["reset"].is_error, seen["reset"]
    # Two authorizations (the base scope, then the step-up to mcp:admin), each through the company SSO.
    assert len(agent.results) == 2
    for result in agent.results:
        assert_brokered_pages(brokered, result)
    assert {TOOLS_SCOPE, ADMIN_SCOPE} <= set(agent.authorization_params(1)["scope"].split())
    assert agent.callback_params(1)["iss"] == brokered.mcp.issuer

    # The broker made her in the MCP realm, linked to the SSO; the mappers gave her the group and mcp-user.
    made = brokered_user(brokered, "alice")
    assert [link["identityProvider"] for link in made["links"]] == [IDP]
    assert made["user"]["email"] == "alice@company.example" and made["user"]["emailVerified"] is True  # trust_email
    assert made["user"]["requiredActions"] == []
    assert made["groups"] == ["/mcp-admins"]
    assert "mcp-user" in made["roles"] and "mcp-admin" not in made["roles"]  # mcp-admin only through the group

    # The group's role reached the access token the server accepted.
    claims = jwt_claims(storage.tokens.access_token)
    assert claims["iss"] == brokered.mcp.issuer and sso_server.url in claims["aud"]
    assert ADMIN_SCOPE in claims["scope"].split() and "mcp-admin" in claims["realm_access"]["roles"]
    assert [e.status for e in traffic.to(sso_server.url, "POST") if e.status in (401, 403)] == [401, 403]


def test_bob_logs_in_the_same_way_and_is_refused_the_admin_tool(
    brokered: Brokered,
    sso_server: McpServer,
    login: Any,
    callback: CallbackListener,
    metadata_documents: MetadataDocuments,
    artifacts: Path,
) -> None:
    """bob: in no SSO group -> mcp-user only -> the tools work, `reset` is refused (403 insufficient_scope)."""
    seen, agent, storage, traffic = log_in(sso_server, login, callback, metadata_documents, artifacts, "bob")

    assert seen["add"] == 3.0
    for result in agent.results:
        assert_brokered_pages(brokered, result)
    made = brokered_user(brokered, "bob")
    assert [link["identityProvider"] for link in made["links"]] == [IDP]
    assert made["groups"] == [] and "mcp-user" in made["roles"] and "mcp-admin" not in made["roles"]

    # `reset` got 403 insufficient_scope; the SDK stepped up (a second brokered login) asking for mcp:admin,
    # Keycloak left the scope out (bob holds none of its roles), and the retry got 403 again: the tool never ran.
    assert len(agent.results) == 2
    assert ADMIN_SCOPE in agent.authorization_params(1)["scope"].split()
    claims = jwt_claims(storage.tokens.access_token)
    assert ADMIN_SCOPE not in claims["scope"].split() and TOOLS_SCOPE in claims["scope"].split()
    assert "mcp-admin" not in claims.get("realm_access", {}).get("roles", [])
    refused = [e for e in traffic.to(sso_server.url, "POST") if e.status == 403]
    assert len(refused) == 2, [e.status for e in traffic.to(sso_server.url)]
    for exchange in refused:
        params = challenge(httpx.Response(403, headers=exchange.response_headers))
        assert params["error"] == "insufficient_scope" and ADMIN_SCOPE in params["scope"].split()
    assert "reset" not in seen and isinstance(seen["reset_error"], MCPError), seen
    assert "tool 'reset' refused" not in sso_server.log()  # refused by scope, before the role check


# --------------------------------------------------------------------------- afterwards


def test_plans_stay_empty_after_the_brokered_logins(brokered: Brokered) -> None:
    """The users the broker made are not in the files: not a change, not listed (exit 0, no username)."""
    for source in (SSO_FILE, MCP_FILE):
        plan = brokered.run("plan", str(source), "--detailed-exitcode", check=False)
        assert plan.returncode == 0, f"{source.name}: not in sync (exit {plan.returncode}):\n{plan.stdout}\n{plan.stderr}"
    plan = brokered.run("plan", str(MCP_FILE), "--json", check=False)
    document = json.loads(plan.stdout)
    (realm_plan,) = document["plans"]
    assert realm_plan["changes"] == [], realm_plan
    # Only what MCP clients made themselves is listed (the CIMD client); no user, no group membership.
    assert [u for u in realm_plan["unmanaged"] if u["kind"] != "client"] == [], realm_plan["unmanaged"]
    assert all(u["key"].startswith("http://127.0.0.1:") for u in realm_plan["unmanaged"]), realm_plan["unmanaged"]


def test_the_identity_providers_secret_is_in_no_output(brokered: Brokered, sso_server: McpServer) -> None:
    """Runs last: no output of any kcprov run (apply, validate, plan, --json, export of the realm and its brokered
    users) held the identity provider's client secret; nor did the server's env file or log."""
    exported = brokered.run("export", "--realm", brokered.mcp.name, "--include", "users", with_vars=False).stdout
    assert f"alias: {IDP}" in exported and 'client_secret: "{{ env.' in exported, exported
    brokered.run("plan", str(MCP_FILE), "--json")
    assert len(brokered.outputs) >= 2 * 4  # stdout and stderr of both applies, this export and plan, and any before
    for output in brokered.outputs:
        assert brokered.secret not in output
    env_file = brokered.mcp.env_file
    assert env_file is not None and brokered.secret not in env_file.read_text()
    assert brokered.secret not in sso_server.log()
    if SEEN_TOKENS:  # the logins ran in this session
        assert_no_tokens_in(sso_server.log())
