"""`kcprov export` against the real Keycloak: the round trip is the contract.

For each realm: export it (with --secrets-env), `plan --detailed-exitcode` of
the export against the same realm exits 0, the export applied to a new realm
and exported again gives the same file but for the realm name. The CLI runs
as a subprocess, as a user runs it; no output may carry a secret.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

from kindcontract import kcprov, ok, round_trip

pytestmark = pytest.mark.keycloak

ROOT = Path(__file__).resolve().parents[1]
EVERY_KEY = ROOT / "tests" / "realms" / "every-key.yaml"
MCP_DEV = ROOT / "realms" / "mcp-dev.yaml"
SECRET = "every-key-secret-4711-zzz"


@pytest.fixture
def env(keycloak):
    return {**os.environ, "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user,
            "KCPROV_PASSWORD": keycloak.password, "EVERY_KEY_SECRET": SECRET, "NO_COLOR": "1", "COLUMNS": "200"}


def test_every_key_realm_round_trips_and_its_secret_stays_out(tmp_path, env, realm_name, second_realm_name):
    source = tmp_path / "every-key.yaml"
    source.write_text(EVERY_KEY.read_text().replace('"{{ vars.realm }}"', realm_name))
    ok(kcprov("apply", str(source), "--auto-approve", env=env, cwd=tmp_path), SECRET)

    text = round_trip(tmp_path, env, realm_name, second_realm_name, SECRET, extra=("--include", "users"))
    assert dotenv_values(tmp_path / "first.env") == {
        f"KC_{re.sub(r'[^A-Za-z0-9]+', '_', realm_name).upper()}_CLIENT_MCP_SERVER_SECRET": SECRET}
    assert "secret: \"{{ env.KC_" in text
    assert "username: alice" in text and "password:" not in text
    for entry in ("name: mcp:tools", "audience: http://localhost:3000", "max_clients: 150", "name: mcp-hardening",
                  "service_account_roles:", "scope_roles:", "custom.flag: \"on\"",
                  # the issue-12 kinds
                  "alias: company-saml", "hardcoded_group: /staff", "default_groups: [/staff]", "alias: browser-sso",
                  "browser: browser-sso", "alias: CONFIGURE_TOTP", "host: smtp.example.com", "types: [LOGIN",
                  "name: department", "alias: every-key", "groups: [/staff/mcp-admins]", "group_membership: groups"):
        assert entry in text

    # (d) export twice: byte-identical (stdout this time)
    once = ok(kcprov("export", "--realm", realm_name, "--include", "users", env=env, cwd=tmp_path), SECRET)
    again = ok(kcprov("export", "--realm", realm_name, "--include", "users", env=env, cwd=tmp_path), SECRET)
    assert once.stdout == again.stdout == text

    # --all is a full snapshot that still plans empty
    ok(kcprov("export", "--realm", realm_name, "--all", "-o", "all.yaml", env=env, cwd=tmp_path), SECRET)
    snapshot = (tmp_path / "all.yaml").read_text()
    assert "client_id: realm-management" in snapshot and "name: profile" in snapshot
    with_secrets = {**env, **dotenv_values(tmp_path / "first.env")}
    ok(kcprov("plan", "all.yaml", "--detailed-exitcode", env=with_secrets, cwd=tmp_path), SECRET)


def test_mcp_dev_realm_exported_as_primitives_round_trips(tmp_path, env, realm_name, second_realm_name):
    source = tmp_path / "mcp-dev.yaml"
    source.write_text(re.sub(r"(?m)^realm: mcp-dev$", f"realm: {realm_name}", MCP_DEV.read_text()))
    ok(kcprov("apply", str(source), "--auto-approve", "--no-env", env=env, cwd=tmp_path))
    text = round_trip(tmp_path, env, realm_name, second_realm_name)
    assert "mcp_servers" not in text  # primitives: --mcp is a separate feature
    assert "name: mcp:tools" in text and "client_policies:" in text


def make_by_hand(admin, realm: str) -> str:
    """Through the Admin API as an operator would: a scope with an audience mapper, a confidential client
    with a service account, a longer token lifespan, a built-in scope moved, a default role added and an
    GitHub identity provider (whose client secret Keycloak never returns). Returns the client's
    Keycloak-generated secret."""
    admin.update_realm(realm, {"accessTokenLifespan": 600})
    scope_id = admin.create_client_scope({"name": "mcp:tools", "protocol": "openid-connect",
                                          "attributes": {"include.in.token.scope": "true"}})
    admin.add_mapper_to_client_scope(scope_id, {
        "name": "audience", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
        "config": {"included.custom.audience": "https://mcp.example.com/mcp", "access.token.claim": "true",
                   "id.token.claim": "false", "introspection.token.claim": "true", "lightweight.claim": "false"}})
    admin.add_default_optional_client_scope(scope_id)
    profile = next(s for s in admin.get_client_scopes() if s["name"] == "profile")
    admin.delete_default_default_client_scope(profile["id"])
    admin.add_default_optional_client_scope(profile["id"])
    admin.create_realm_role({"name": "mcp-user"})
    admin.add_composite_realm_roles_to_role(f"default-roles-{realm}", [admin.get_realm_role("mcp-user")])
    uuid = admin.create_client({"clientId": "mcp-server", "protocol": "openid-connect", "publicClient": False,
                                "serviceAccountsEnabled": True, "standardFlowEnabled": False,
                                "optionalClientScopes": ["mcp:tools"]})
    admin.create_idp({"alias": "github", "providerId": "github", "enabled": True,
                      "config": {"clientId": "gh", "clientSecret": "gh-secret-never-shown"}})
    return admin.get_client_secrets(uuid)["value"]


def test_realm_made_by_hand_round_trips_with_notes(tmp_path, env, keycloak, realm, second_realm_name):
    secret = make_by_hand(keycloak.admin(realm), realm)
    exported = ok(kcprov("export", "--realm", realm, env=env, cwd=tmp_path), secret)
    assert "identity provider 'github'" in exported.stderr  # its client secret: only the operator knows it
    assert "gh-secret-never-shown" not in exported.stdout + exported.stderr
    idp_secret = f"KC_{re.sub(r'[^A-Za-z0-9]+', '_', realm).upper()}_IDENTITY_PROVIDER_GITHUB_SECRET"
    assert f"client_secret: \"{{{{ env.{idp_secret} }}}}\"" in exported.stdout

    # the operator sets the provider's secret, as the export's note says; the copy realm reads the same name
    copy_secret = f"KC_{re.sub(r'[^A-Za-z0-9]+', '_', second_realm_name).upper()}_IDENTITY_PROVIDER_GITHUB_SECRET"
    env = {**env, idp_secret: "gh-secret-never-shown", copy_secret: "gh-secret-never-shown"}
    text = round_trip(tmp_path, env, realm, second_realm_name, secret, "gh-secret-never-shown")
    assert "access_token_lifespan: 600  # Keycloak default is 300" in text
    assert re.search(r"(?m)^default_roles:\n  account: \[manage-account, view-profile\]\n"
                     r"  realm: \[mcp-user, offline_access, uma_authorization\]$", text)
    assert re.search(r"(?m)^  - name: profile\n    type: optional$", text)
    assert "included.custom.audience: https://mcp.example.com/mcp" in text
    assert "provider_id: github" in text
    assert dotenv_values(tmp_path / "first.env")[
        f"KC_{re.sub(r'[^A-Za-z0-9]+', '_', realm).upper()}_CLIENT_MCP_SERVER_SECRET"] == secret
