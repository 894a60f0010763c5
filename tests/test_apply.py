"""Plan and apply against the real Keycloak started by the session fixture.

Each test gets its own realm. The CLI runs as a subprocess, as a user runs it;
every output is checked for the secrets the test knows.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.keycloak

ROOT = Path(__file__).resolve().parents[1]
EVERY_KEY = ROOT / "tests" / "realms" / "every-key.yaml"
SECRET = "every-key-secret-4711-zzz"


def kcprov(*args: str, env: dict, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kcprov.cli", *args],
        env=env, input=stdin, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )


@pytest.fixture
def env(keycloak, realm_name):
    return {**os.environ, "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user,
            "KCPROV_PASSWORD": keycloak.password, "EVERY_KEY_SECRET": SECRET, "NO_COLOR": "1",
            "COLUMNS": "200"}


def assert_clean(result: subprocess.CompletedProcess, *secrets: str) -> None:
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    for secret in secrets:
        assert secret not in text, "a secret leaked into the output"


def write_realm(tmp_path: Path, source: Path, realm: str, edit=None) -> Path:
    text = source.read_text().replace('"{{ vars.realm }}"', realm)
    if edit:
        text = edit(text)
    path = tmp_path / f"{realm}{'-edited' if edit else ''}.yaml"
    path.write_text(text)
    return path


def token_claims(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_every_key_applies_then_plans_empty(tmp_path, env, realm_name, keycloak):
    path = write_realm(tmp_path, EVERY_KEY, realm_name)
    first = kcprov("apply", str(path), "--auto-approve", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert_clean(first, SECRET, keycloak.password)
    second = kcprov("plan", str(path), "--detailed-exitcode", env=env)
    assert second.returncode == 0, second.stdout
    assert "No changes" in second.stdout
    again = kcprov("apply", str(path), "--auto-approve", env=env)
    assert again.returncode == 0 and "0 to create, 0 to update, 0 to delete" in again.stdout

    # the confidential client works with the secret from the file, and its token has the audience
    resp = httpx.post(f"{keycloak.url}/realms/{realm_name}/protocol/openid-connect/token",
                      data={"grant_type": "client_credentials", "client_id": "mcp-server",
                            "client_secret": SECRET, "scope": "mcp:tools"})
    assert resp.status_code == 200, resp.text
    claims = token_claims(resp.json()["access_token"])
    assert "http://localhost:3000" in claims["aud"]
    assert "mcp:tools" in claims["scope"].split()


EDITS = [
    ("rename a redirect URI",
     lambda t: t.replace("http://localhost:5173/callback,", "http://localhost:5173/cb,"),
     ("update", "client.web-app", "redirect_uris")),
    ("drop a mapper",
     lambda t: t.replace("      - name: server-audience\n        client_audience: mcp-server\n", ""),
     ("delete", "scope_mapper.mcp:tools/server-audience", None)),
    ("change a trusted host",
     lambda t: t.replace("trusted_hosts: [localhost, 127.0.0.1]", "trusted_hosts: [localhost, 127.0.0.2]"),
     ("update", "registration_policy.anonymous/trusted-hosts", "config.trusted-hosts")),
    ("remove a client",
     lambda t: t[: t.index("  - client_id: web-app")] + t[t.index("users:"):],
     ("delete", "client.web-app", None)),
    ("change a scope's role mappings (one realm role and one client role added, one removed)",
     lambda t: t.replace("scope_roles: {realm: [mcp-admin], mcp-server: [audit]}",
                         "scope_roles: {realm: [mcp-user], mcp-server: [audit, introspect]}"),
     ("update", "scope_roles.mcp:admin", "roles")),
    ("change the secret",
     lambda t: t.replace("{{ env.EVERY_KEY_SECRET }}", "{{ env.EVERY_KEY_SECRET }}-rotated"),
     ("update", "client.mcp-server", "secret")),
]


def test_each_single_edit_gives_exactly_one_change(tmp_path, env, realm_name, keycloak):
    path = write_realm(tmp_path, EVERY_KEY, realm_name)
    assert kcprov("apply", str(path), "--auto-approve", env=env).returncode == 0
    for label, edit, (action, address, field) in EDITS:
        edited = write_realm(tmp_path, EVERY_KEY, realm_name, edit)
        result = kcprov("plan", str(edited), "--json", env=env)
        assert result.returncode == 0, result.stderr
        [plan] = json.loads(result.stdout)["plans"]
        assert [(c["action"], f"{c['kind']}.{c['key']}") for c in plan["changes"]] == [(action, address)], label
        if field:
            assert [d["field"] for d in plan["changes"][0]["diffs"]] == [field], label
        assert SECRET not in result.stdout
        applied = kcprov("apply", str(edited), "--auto-approve", env=env)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert_clean(applied, SECRET)
        assert kcprov("plan", str(edited), "--detailed-exitcode", env=env).returncode == 0, label
        assert kcprov("apply", str(path), "--auto-approve", env=env).returncode == 0  # back to the base file


def test_hand_made_objects_survive_and_prune_removes_them(tmp_path, env, realm_name, keycloak):
    path = write_realm(tmp_path, EVERY_KEY, realm_name)
    assert kcprov("apply", str(path), "--auto-approve", env=env).returncode == 0
    admin = keycloak.admin(realm_name)
    admin.create_client({"clientId": "made-by-hand", "publicClient": True})
    admin.create_realm_role({"name": "hand-role"})
    result = kcprov("apply", str(path), "--auto-approve", env=env)
    assert result.returncode == 0
    assert "client.made-by-hand" in result.stdout and "--prune" in result.stdout
    assert admin.get_client_id("made-by-hand")
    pruned = kcprov("apply", str(path), "--auto-approve", "--prune", env=env)
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert "- client.made-by-hand" in pruned.stdout and "- role.hand-role" in pruned.stdout
    assert admin.get_client_id("made-by-hand") is None
    # built-in objects are never pruned
    assert admin.get_client_id("account") and admin.get_client_id("admin-cli")


def test_saved_plan_applies_once_and_is_refused_when_stale(tmp_path, env, realm_name, keycloak):
    path = write_realm(tmp_path, EVERY_KEY, realm_name)
    saved = tmp_path / "plan.json"
    result = kcprov("plan", str(path), "-o", str(saved), env=env)
    assert result.returncode == 0, result.stderr
    assert SECRET not in saved.read_text() and "alice-pw" not in saved.read_text()
    assert (saved.stat().st_mode & 0o777) == 0o600
    applied = kcprov("apply", str(saved), env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr

    kcprov("plan", str(path), "-o", str(saved), env=env)
    keycloak.admin(realm_name).create_realm_role({"name": "sneaked-in"})
    stale = kcprov("apply", str(saved), env=env)
    assert stale.returncode == 1
    assert "stale" in stale.stderr
    assert_clean(stale, SECRET)


def test_non_tty_apply_needs_auto_approve(tmp_path, env, realm_name):
    path = write_realm(tmp_path, EVERY_KEY, realm_name)
    result = kcprov("apply", str(path), env=env, stdin="yes\n")
    assert result.returncode == 1
    assert "--auto-approve" in result.stderr
    assert_clean(result, SECRET)
    assert kcprov("plan", str(path), "--detailed-exitcode", env=env).returncode == 2  # nothing was applied


def test_mass_deletion_refused_without_force(tmp_path, env, realm_name):
    many = "roles:\n" + "".join(f"  - name: bulk-{i}\n" for i in range(12))
    base = tmp_path / "base.yaml"
    base.write_text(f"realm: {realm_name}\n{many}")
    assert kcprov("apply", str(base), "--auto-approve", env=env).returncode == 0
    fewer = tmp_path / "fewer.yaml"
    fewer.write_text(f"realm: {realm_name}\nroles:\n  - name: bulk-0\n")
    refused = kcprov("apply", str(fewer), "--auto-approve", env=env)
    assert refused.returncode == 1
    assert "safety threshold" in refused.stderr and "--force" in refused.stderr
    forced = kcprov("apply", str(fewer), "--auto-approve", "--force", env=env)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "11 deleted" in forced.stdout or "11 to delete" in forced.stdout


def test_wrong_admin_password_is_one_clear_line(tmp_path, env, realm_name, keycloak):
    path = write_realm(tmp_path, EVERY_KEY, realm_name)
    bad = {**env, "KCPROV_PASSWORD": "definitely-wrong-pw"}
    result = kcprov("plan", str(path), env=bad)
    assert result.returncode == 1
    assert "refused the login" in result.stderr
    assert_clean(result, "definitely-wrong-pw", SECRET)


def test_detailed_exitcode_reports_pending_changes(tmp_path, env, realm_name):
    path = write_realm(tmp_path, EVERY_KEY, realm_name)
    result = kcprov("plan", str(path), "--detailed-exitcode", env=env)
    assert result.returncode == 2, result.stderr
    assert "(new realm)" in result.stdout and "to create" in result.stdout
    assert_clean(result, SECRET)


def test_failed_apply_reports_done_and_not_run_and_next_plan_shows_the_rest(tmp_path, env, realm_name):
    path = tmp_path / "broken.yaml"
    path.write_text(
        f"realm: {realm_name}\n"
        "roles:\n  - name: first\n"
        "clients:\n  - client_id: bad-uris\n    redirect_uris: ['javascript:alert(1)']\n"
        "users:\n  - username: later\n    realm_roles: [first]\n"
    )
    result = kcprov("apply", str(path), "--auto-approve", env=env)
    assert result.returncode == 1, result.stdout
    assert_clean(result)
    assert "failed client.bad-uris" in result.stdout
    assert "not run user.later" in result.stdout
    rest = kcprov("plan", str(path), "--json", env=env)
    [plan] = json.loads(rest.stdout)["plans"]
    assert sorted(f"{c['action']} {c['kind']}.{c['key']}" for c in plan["changes"]) == [
        "create client.bad-uris", "create user.later"]
