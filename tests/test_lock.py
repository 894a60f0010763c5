"""The realm lock against the real Keycloak: one apply per realm at a time.

Applies run as subprocesses, as users run them; the test process holds a lock
itself (a RealmLock, exactly what a running apply holds) where it needs a
holder that stays put.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kcprov.connection import ConnectionSettings
from kcprov.keycloak import KeycloakClient
from kcprov.lock import HOLDER_ATTRIBUTE, LOCK_GROUP, RealmLock, RealmLocked

pytestmark = pytest.mark.keycloak

ROOT = Path(__file__).resolve().parents[1]


def kcprov(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kcprov.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


@pytest.fixture
def env(keycloak):
    return {**os.environ, "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user,
            "KCPROV_PASSWORD": keycloak.password, "NO_COLOR": "1", "COLUMNS": "200"}


@pytest.fixture
def client(keycloak) -> KeycloakClient:
    return KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user, password=keycloak.password))


def realm_file(tmp_path: Path, realm: str, clients: int = 3, extra: str = "") -> Path:
    path = tmp_path / f"{realm}.yaml"
    body = "".join(f"  - client_id: app-{i:03d}\n    redirect_uris: ['http://localhost:{9000 + i}/cb']\n"
                   for i in range(clients))
    path.write_text(f"realm: {realm}\nroles:\n  - name: reader\nclients:\n{body}{extra}")
    return path


def lock_groups(keycloak, realm: str) -> list[dict]:
    return [g for g in keycloak.admin(realm).get_groups({"briefRepresentation": "false"}) if g["name"] == LOCK_GROUP]


def assert_clean(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_an_apply_refuses_a_realm_another_apply_holds_naming_the_holder(tmp_path, env, client, realm, keycloak):
    held = RealmLock(client, realm)
    held.acquire()
    try:
        result = kcprov("apply", str(realm_file(tmp_path, realm)), "--auto-approve", env=env)
        assert result.returncode == 1
        assert_clean(result)
        assert f"realm '{realm}' is being applied by" in result.stderr
        assert f"on {socket.gethostname()} (pid {os.getpid()}) since 20" in result.stderr
        assert "--lock-timeout" in result.stderr
        # plans are read-only: they neither take the lock nor show it
        plan = kcprov("plan", str(realm_file(tmp_path, realm)), "--detailed-exitcode", env=env)
        assert plan.returncode == 2, plan.stderr
        assert LOCK_GROUP not in plan.stdout and "not managed" not in plan.stdout
    finally:
        held.release()
    assert lock_groups(keycloak, realm) == []
    assert kcprov("apply", str(realm_file(tmp_path, realm)), "--auto-approve", env=env).returncode == 0


def test_two_applies_at_once_never_interleave(tmp_path, env, realm, keycloak):
    path = realm_file(tmp_path, realm, clients=60)
    procs = [subprocess.Popen([sys.executable, "-m", "kcprov.cli", "apply", str(path), "--auto-approve"],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert all("Traceback" not in out + err for _, out, err in outcomes), outcomes
    winners = [o for o in outcomes if o[0] == 0 and "61 created" in o[1]]
    assert len(winners) == 1, outcomes
    [(code, out, err)] = [o for o in outcomes if o is not winners[0]]
    if code == 0:
        # on a loaded machine the second process may start planning only after the first finished
        assert "No changes" in out, out + err
    else:
        # refused before changing anything: either the lock was held, or the winner had finished already
        assert code == 1 and ("is being applied by" in err or "changed since it was planned" in err), out + err
    assert kcprov("plan", str(path), "--detailed-exitcode", env=env).returncode == 0
    assert lock_groups(keycloak, realm) == []


def test_an_apply_reads_an_existing_realm_once_and_only_under_its_lock(tmp_path, env, client, realm, keycloak,
                                                                       monkeypatch):
    """The lock is taken before the plan reads the realm (as Terraform locks its state before refreshing):
    the plan applied is the plan read, with no second read of the realm to check nothing moved meanwhile."""
    import io

    from rich.console import Console

    from kcprov.realms import plan_realms
    from kcprov.run import realm_locks, run_apply
    from kcprov.spec.loader import load_realms

    assert kcprov("apply", str(realm_file(tmp_path, realm)), "--auto-approve", env=env).returncode == 0
    path = realm_file(tmp_path, realm, clients=5)
    reads = []
    export = KeycloakClient.realm_export

    def counted(self, name):
        reads.append(len(lock_groups(keycloak, name)))  # locks held while the realm is read
        return export(self, name)

    monkeypatch.setattr(KeycloakClient, "realm_export", counted)
    quiet = Console(file=io.StringIO())
    specs = load_realms([path])
    with realm_locks(client, [realm], 0.0) as locks:
        runs = plan_realms(client, specs, [path])
        run_apply(client, runs, quiet, quiet, approved=True, force=False, workers=8, locks=locks)
    assert reads == [1]
    assert "2 created" in quiet.file.getvalue()
    assert lock_groups(keycloak, realm) == []


def test_only_a_run_of_one_realm_is_locked_before_it_is_read(client, realm, keycloak):
    """Several realms are locked after planning, those with changes only: locking every in-sync realm of a
    directory first would cost two requests per realm, one after another."""
    from kcprov.run import realm_locks

    before = client.requests
    with realm_locks(client, [realm, f"{realm}-other"], 0.0) as locks:
        assert locks == {} and lock_groups(keycloak, realm) == []
    assert client.requests == before
    with realm_locks(client, [realm], 0.0) as locks:
        assert locks[realm].held and len(lock_groups(keycloak, realm)) == 1
    assert lock_groups(keycloak, realm) == []


@pytest.mark.parametrize("holder", [
    {"host": "build-agent-7", "pid": 4242, "user": "ci", "since": "2026-01-01T00:00:00+00:00",
     "expires": "2026-01-01T00:10:00+00:00", "token": "old"},
    {"host": socket.gethostname(), "pid": 2**22 + 17, "user": "me", "since": "2099-01-01T00:00:00+00:00",
     "expires": "2099-01-01T00:10:00+00:00", "token": "dead-pid"},
], ids=["expired", "dead-process-on-this-host"])
def test_a_stale_lock_is_taken_over(tmp_path, env, realm, keycloak, holder):
    keycloak.admin(realm).create_group({"name": LOCK_GROUP, "attributes": {HOLDER_ATTRIBUTE: [json.dumps(holder)]}})
    result = kcprov("apply", str(realm_file(tmp_path, realm)), "--auto-approve", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lock_groups(keycloak, realm) == []


def test_the_lock_is_released_after_a_failed_apply_and_for_a_new_realm(tmp_path, env, realm_name, keycloak):
    broken = realm_file(tmp_path, realm_name, extra="  - client_id: bad-uris\n    redirect_uris: ['javascript:alert(1)']\n")
    result = kcprov("apply", str(broken), "--auto-approve", env=env)
    assert result.returncode == 1 and "failed client.bad-uris" in result.stdout
    assert_clean(result)
    assert lock_groups(keycloak, realm_name) == []
    assert kcprov("apply", str(realm_file(tmp_path, realm_name)), "--auto-approve", env=env).returncode == 0
    assert lock_groups(keycloak, realm_name) == []


def test_a_waiting_apply_gets_the_lock_once_it_is_released(client, realm, keycloak):
    first = RealmLock(client, realm)
    first.acquire()
    with pytest.raises(RealmLocked):
        RealmLock(client, realm).acquire(wait=0)
    threading.Timer(1.0, first.release).start()
    second = RealmLock(client, realm)
    second.acquire(wait=30)
    try:
        [group] = lock_groups(keycloak, realm)
        assert json.loads(group["attributes"][HOLDER_ATTRIBUTE][0])["token"] == second.token
    finally:
        second.release()


def test_a_held_lock_is_kept_fresh_while_its_apply_runs(client, realm, keycloak):
    lock = RealmLock(client, realm, ttl=1.5)  # refreshed every 0.5 s
    lock.acquire()
    try:
        def expiry() -> str:
            [group] = lock_groups(keycloak, realm)
            return json.loads(group["attributes"][HOLDER_ATTRIBUTE][0])["expires"]

        first = expiry()
        deadline = time.monotonic() + 30
        while expiry() == first:
            assert time.monotonic() < deadline, "the lock was never refreshed"
            time.sleep(0.3)
    finally:
        lock.release()
    assert lock_groups(keycloak, realm) == []


def test_an_account_that_may_not_manage_groups_is_told_which_role_the_lock_needs(tmp_path, env, realm, keycloak):
    admin = keycloak.admin(realm)
    uuid = admin.create_client({"clientId": "clients-only", "publicClient": False, "serviceAccountsEnabled": True,
                                "standardFlowEnabled": False, "secret": "clients-only-secret-123"})
    management = admin.get_client_id("realm-management")
    roles = [admin.get_client_role(management, r) for r in ("manage-realm", "manage-clients", "view-realm", "view-users")]
    admin.assign_client_role(admin.get_client_service_account_user(uuid)["id"], management, roles)
    service = {k: v for k, v in env.items() if k not in ("KCPROV_USER", "KCPROV_PASSWORD")}
    service.update(KCPROV_AUTH_REALM=realm, KCPROV_CLIENT_ID="clients-only", KCPROV_CLIENT_SECRET="clients-only-secret-123")
    result = kcprov("apply", str(realm_file(tmp_path, realm)), "--auto-approve", env=service)
    assert result.returncode == 1
    assert_clean(result)
    assert "clients-only-secret-123" not in result.stdout + result.stderr
    assert f"lock of realm '{realm}': Keycloak answered 403" in result.stderr
    assert "manage-users" in result.stderr
    assert [c for c in admin.get_clients() if c["clientId"].startswith("app-")] == []
