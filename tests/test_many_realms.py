"""Many realms in one run: directory arguments, realms planned at once, an apply of several realms.

The directory rules (which entries, the symlink rule, duplicates, an empty
directory) are plain unit tests; plan and apply of a directory run the CLI
against the real Keycloak, as a user runs it, in realms named `h3-…` that
are deleted afterwards.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from keycloak import KeycloakOpenIDConnection

from kcprov.connection import ConnectionSettings
from kcprov.errors import KcprovError
from kcprov.keycloak import KeycloakClient
from kcprov.lock import RealmLock
from kcprov.realms import env_selection, plan_realms, realm_files
from kcprov.spec import SpecError, load_realms

ROOT = Path(__file__).resolve().parents[1]


def kcprov(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kcprov.cli", *args], env=env or {**os.environ, "NO_COLOR": "1"},
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def realm_text(realm: str, server: bool = False) -> str:
    text = (f"realm: {realm}\nroles:\n  - name: reader\nclients:\n"
            "  - client_id: app\n    redirect_uris: ['http://localhost:9000/cb']\n")
    if server:
        text += ("mcp_servers:\n  - name: tools\n    url: http://localhost:3000/mcp\n"
                 f"    env_file: {realm}.env\n"
                 "    scopes: {mcp:tools: Call the tools}\n    clients:\n      - dcr: {trusted_hosts: [localhost]}\n")
    return text


def write_dir(directory: Path, realms: list[str], server: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for realm in realms:
        (directory / f"{realm}.yaml").write_text(realm_text(realm, server))
    return directory


# -- which files a directory names (no Keycloak) ----------------------------------------
def test_a_directory_is_its_realm_files_sorted_not_recursive_and_files_are_kept_as_given(tmp_path):
    realms = write_dir(tmp_path / "realms", ["b", "a"])
    (realms / "c.yml").write_text(realm_text("c"))
    (realms / ".editor-temp.yaml").write_text("junk")
    (realms / "notes.txt").write_text("not a realm")
    (realms / "sub").mkdir()
    (realms / "sub" / "d.yaml").write_text(realm_text("d"))
    single = tmp_path / "z.yaml"
    assert realm_files([single, realms]) == [single, realms / "a.yaml", realms / "b.yaml", realms / "c.yml"]


def test_a_directory_without_realm_files_is_one_clear_error(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "a.yaml").write_text(realm_text("a"))
    with pytest.raises(KcprovError) as caught:
        realm_files([tmp_path / "empty"])
    assert "holds no realm file (*.yaml or *.yml)" in caught.value.message
    assert "subdirectories are not read" in caught.value.hint


def test_a_symlink_leading_out_of_the_working_tree_is_refused(tmp_path, monkeypatch):
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    realms = write_dir(tree / "realms", ["a"])
    write_dir(outside, ["secret"])
    (tree / "shared.yaml").write_text(realm_text("shared"))
    (realms / "shared.yaml").symlink_to(tree / "shared.yaml")  # inside the working tree: read
    (realms / "again.yaml").symlink_to(realms / "a.yaml")
    monkeypatch.chdir(tree)
    assert [p.name for p in realm_files([Path("realms")])] == ["a.yaml", "again.yaml", "shared.yaml"]
    (realms / "z.yaml").symlink_to(outside / "secret.yaml")
    with pytest.raises(KcprovError) as caught:
        realm_files([Path("realms")])
    assert caught.value.message.startswith("realms/z.yaml: a symlink to ")
    assert "outside the working directory" in caught.value.message
    assert realm_files([outside / "secret.yaml"]) == [outside / "secret.yaml"]  # named on the command line: as given


def test_two_files_of_a_directory_naming_one_realm_are_refused_with_both_places(tmp_path, monkeypatch):
    realms = write_dir(tmp_path / "realms", ["a"])
    (realms / "b.yaml").write_text("# a copy\n" + realm_text("a"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_realms(realm_files([Path("realms")]))
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == ("realms/b.yaml", 2)
    assert "realm 'a' is also defined in realms/a.yaml:1" in problem.message


def test_validate_of_a_directory_reports_each_realm_in_file_order(tmp_path):
    write_dir(tmp_path / "realms", ["b", "a"])
    result = kcprov("validate", "realms", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["realms/a.yaml: ok (realm a)", "realms/b.yaml: ok (realm b)"]
    (tmp_path / "empty").mkdir()
    result = kcprov("validate", "empty", cwd=tmp_path)
    assert result.returncode == 1 and "holds no realm file" in result.stderr and "Traceback" not in result.stderr


def test_env_of_a_directory_picks_the_realms_with_mcp_servers_and_a_server_by_name(tmp_path):
    with_server = write_dir(tmp_path / "a", ["a", "c"], server=True)
    write_dir(with_server, ["b"])
    files = realm_files([with_server])
    specs = load_realms(files)
    assert [(f.name, only) for f, _, only in env_selection(with_server, files, specs, None)] == [
        ("a.yaml", None), ("c.yaml", None)]
    assert [(f.name, only) for f, _, only in env_selection(with_server, files, specs, ["tools"])] == [
        ("a.yaml", ["tools"]), ("c.yaml", ["tools"])]
    with pytest.raises(KcprovError, match="no realm file has an MCP server named nope"):
        env_selection(with_server, files, specs, ["nope"])
    plain = write_dir(tmp_path / "plain", ["x", "y"])
    with pytest.raises(KcprovError, match="none of its 2 realm files has mcp_servers"):
        env_selection(plain, realm_files([plain]), load_realms(realm_files([plain])), None)


# -- against the real Keycloak -------------------------------------------------------------
@pytest.fixture
def names(keycloak):
    """Three fresh realm names, deleted afterwards."""
    tag = secrets.token_hex(3)
    made = [f"h3-{tag}-{letter}" for letter in "abc"]
    yield made
    for name in made:
        try:
            keycloak.admin().delete_realm(name)
        except Exception:  # noqa: BLE001 - a realm the test never made
            pass


@pytest.fixture
def env(keycloak):
    return {**os.environ, "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user,
            "KCPROV_PASSWORD": keycloak.password, "NO_COLOR": "1", "COLUMNS": "200"}


@pytest.fixture
def client(keycloak) -> KeycloakClient:
    return KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user, password=keycloak.password))


def test_a_directory_of_three_realms_plans_applies_and_then_is_in_sync(tmp_path, env, names):
    write_dir(tmp_path / "realms", list(reversed(names)), server=True)
    plan = kcprov("plan", "--detailed-exitcode", "realms", env=env, cwd=tmp_path)
    assert plan.returncode == 2, plan.stderr
    positions = [plan.stdout.index(f"Realm '{name}' at") for name in names]
    assert positions == sorted(positions), "realms are shown in file order"
    applied = kcprov("apply", "--auto-approve", "realms", env=env, cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Realms: 3 of 3 with changes applied, 0 in sync." in applied.stdout
    assert [line.split()[:2] for line in applied.stdout.splitlines() if line.startswith("  applied ")] == [
        ["applied", f"{name}:"] for name in names]
    assert [line for line in applied.stdout.splitlines() if line.startswith("Wrote ")] == [
        f"Wrote {name}.env (mode 0600)" for name in names]
    again = kcprov("apply", "--auto-approve", "realms", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "Applied" not in again.stdout and "Realms:" not in again.stdout, again.stdout
    assert kcprov("plan", "--detailed-exitcode", "realms", env=env, cwd=tmp_path).returncode == 0
    rewritten = kcprov("env", "realms", env=env, cwd=tmp_path)
    assert rewritten.stdout.splitlines() == [f"Unchanged {name}.env (mode 0600)" for name in names], rewritten.stderr


def test_an_in_sync_plan_of_many_realms_costs_the_same_requests_per_realm(tmp_path, env, names, client):
    realms = write_dir(tmp_path / "realms", names, server=True)
    assert kcprov("apply", "--auto-approve", "--no-env", str(realms), env=env).returncode == 0
    specs = load_realms(realm_files([realms]))
    client.requests = 0
    [one] = plan_realms(client, specs[:1], [realms / "x"])
    alone = client.requests  # the server info (the MCP setup is checked against it) and the realm's reads
    client.requests = 0
    runs = plan_realms(client, specs, names)
    assert all(run.plan.empty for run in [one, *runs])
    assert client.requests == 1 + len(specs) * (alone - 1), "one server info for all, the same reads per realm"


def test_a_realm_that_cannot_be_applied_does_not_stop_the_others_and_the_summary_says_which(
        tmp_path, env, names, client, keycloak):
    realms = write_dir(tmp_path / "realms", names)
    assert kcprov("apply", "--auto-approve", str(realms), env=env).returncode == 0
    for name in names:
        (realms / f"{name}.yaml").write_text(realm_text(name) + "  - client_id: second\n    confidential: false\n"
                                             "    redirect_uris: ['http://localhost:9001/cb']\n")
    held = RealmLock(client, names[1])
    held.acquire()
    try:
        result = kcprov("apply", "--auto-approve", str(realms), env=env)
    finally:
        held.release()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert f"Apply of realm '{names[1]}' refused: realm '{names[1]}' is being applied by" in result.stdout
    lines = [line.split(maxsplit=2) for line in result.stdout.splitlines()
             if line.startswith(("  applied ", "  failed "))]
    assert [(outcome, realm) for outcome, realm, _ in lines] == [
        ("applied", f"{names[0]}:"), ("failed", f"{names[1]}:"), ("applied", f"{names[2]}:")]
    assert "Realms: 2 of 3 with changes applied, 0 in sync." in result.stdout
    rest = kcprov("apply", "--auto-approve", str(realms), env=env)
    assert rest.returncode == 0 and f"Applied realm '{names[1]}': 1 created" in rest.stdout, rest.stdout
    assert f"Applied realm '{names[0]}'" not in rest.stdout


def test_threads_sharing_a_client_renew_its_expired_token_once(client, monkeypatch):
    renewals = []
    renew = KeycloakOpenIDConnection.refresh_token

    def counted(self):
        renewals.append(1)
        renew(self)

    monkeypatch.setattr(KeycloakOpenIDConnection, "refresh_token", counted)
    client._conn._expires_at = client._conn.expires_at.replace(year=2000)  # expired for every thread at once
    start = threading.Barrier(8)
    answers = []

    def read() -> None:
        start.wait()
        answers.append(client.get("/admin/realms/master", "realm master")["realm"])

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == ["master"] * 8
    assert len(renewals) == 1
