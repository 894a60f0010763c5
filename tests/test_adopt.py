"""Adoption: `kcprov adopt`, `apply --adopt`, and what a plain apply does not take.

Ownership is the licence to delete (kcprov.plan.adopt): an object made by hand
becomes kcprov's only when adopted explicitly; from then on removing it from
the file deletes it. Adopting changes nothing in Keycloak but the ownership
record. The pure parts (what is adoptable, what an apply records) are unit
tests; the rest runs the CLI as a subprocess against the real Keycloak (those
tests take the `keycloak` fixture, which marks them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_apply import assert_clean, kcprov

from kcprov.apply import ApplyResult, _ownership
from kcprov.connection import ConnectionSettings
from kcprov.keycloak import KeycloakClient
from kcprov.lock import RealmLock
from kcprov.plan import compute_plan
from kcprov.plan.adopt import adoptable, adoptions_only, updates_of_adopted, with_adoptions
from kcprov.resources import KINDS, KINDS_BY_NAME
from kcprov.resources.realm import OWNERSHIP_ATTRIBUTE
from kcprov.state import LiveState, RawRealm

SECRET = "adopt-secret-5150-qq"
HAND_MADE = "clients:\n  - client_id: hand-made\n    description: written by the file\n"


# -- pure: what is adoptable, what a plan adopts, what an apply records -----------------------
DESIRED = {"client": {"hand-made": {"description": "file"}, "mine": {}, "account": {}, "new": {}},
           "client_mapper": {"hand-made/aud": {}}, "scope_mapper": {"profile/email": {}},
           "realm": {"r": {}}, "role": {"new-role": {}}}
LIVE = {"client": {"hand-made": {"description": "hand"}, "mine": {}, "account": {}},
        "client_mapper": {"hand-made/aud": {}}, "client_scope": {"profile": {}},
        "scope_mapper": {"profile/email": {}}, "realm": {"r": {}}}


def live_state(owned=None) -> LiveState:
    return LiveState(realm="r", exists=True, objects=LIVE, owned=owned or {"client": {"mine"}}, raw=RawRealm("r", {}))


def test_adoptable_are_existing_unowned_objects_of_deletable_kinds_built_ins_never():
    assert adoptable("r", DESIRED, live_state(), KINDS) == [("client", "hand-made"), ("client_mapper", "hand-made/aud")]


def test_a_plan_lists_what_it_does_not_adopt_and_adopts_first_when_asked():
    state = live_state()
    plan = compute_plan("r", DESIRED, state, KINDS)
    found = adoptable("r", DESIRED, state, KINDS)
    plain = with_adoptions(plan, found, KINDS)
    assert plain.not_adopted == found and plain.changes == plan.changes
    adopting = with_adoptions(plan, found, KINDS, adopt=True)
    assert [(c.action, c.address) for c in adopting.changes] == [
        ("adopt", "client.hand-made"), ("adopt", "client_mapper.hand-made/aud"),
        ("create", "role.new-role"), ("update", "client.hand-made"), ("create", "client.new")]
    assert adopting.summary() == "2 to adopt, 2 to create, 1 to update, 0 to delete"
    assert adopting.content_digest() != plain.content_digest()  # a saved plan cannot gain adoptions
    only = adoptions_only(adopting)
    assert only.count("adopt") == 2 and len(only.changes) == 2 and len(only.deferred) == 3
    assert updates_of_adopted(only) == 1


def test_an_apply_records_what_it_creates_or_adopts_never_what_it_only_found():
    state = live_state()
    plan = compute_plan("r", DESIRED, state, KINDS)
    found = adoptable("r", DESIRED, state, KINDS)
    assert _ownership(state, with_adoptions(plan, found, KINDS), KINDS_BY_NAME, ApplyResult()) == {
        "client": {"mine", "new"}, "role": {"new-role"}}
    adopting = with_adoptions(plan, found, KINDS, adopt=True)
    assert _ownership(state, adopting, KINDS_BY_NAME, ApplyResult()) == {
        "client": {"mine", "new", "hand-made"}, "client_mapper": {"hand-made/aud"}, "role": {"new-role"}}
    stopped = ApplyResult(not_run=list(adopting.changes))  # e.g. the first ownership write failed
    assert _ownership(state, adopting, KINDS_BY_NAME, stopped) == {"client": {"mine"}}


# -- against the real Keycloak -------------------------------------------------------------
@pytest.fixture
def env(keycloak):
    return {**os.environ, "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user,
            "KCPROV_PASSWORD": keycloak.password, "NO_COLOR": "1", "COLUMNS": "200"}


def realm_file(tmp_path: Path, realm: str, body: str, name: str = "realm.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"realm: {realm}\n{body}")
    return path


def owned(keycloak, realm: str) -> dict[str, list[str]]:
    attributes = keycloak.admin(realm).get_realm(realm).get("attributes") or {}
    return json.loads(attributes.get(OWNERSHIP_ATTRIBUTE) or "{}")


def snapshot(keycloak, realm: str) -> dict:
    """The realm's partial export without kcprov's ownership record."""
    export = keycloak.admin(realm).connection.raw_post(
        f"/admin/realms/{realm}/partial-export?exportClients=true&exportGroupsAndRoles=true", data="{}").json()
    export.get("attributes", {}).pop(OWNERSHIP_ATTRIBUTE, None)
    return export


def make_clients(keycloak, realm: str, *client_ids: str) -> None:
    admin = keycloak.admin(realm)
    for client_id in client_ids:
        admin.create_client({"clientId": client_id, "publicClient": True, "description": "made by hand"})


def ok(result) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert_clean(result)


def test_an_adopted_client_is_deleted_once_removed_from_the_file_and_others_stay_unmanaged(
        tmp_path, env, realm, keycloak):
    make_clients(keycloak, realm, "hand-made", "not-in-file")
    path = realm_file(tmp_path, realm, "clients:\n  - client_id: hand-made\n")
    refused = kcprov("adopt", str(path), env=env, stdin="yes\n")  # not a terminal: needs --auto-approve
    assert refused.returncode == 1 and "--auto-approve" in refused.stderr
    assert owned(keycloak, realm) == {}

    adopted = kcprov("adopt", str(path), "--auto-approve", env=env)
    ok(adopted)
    assert "= client.hand-made (exists, will be adopted)" in adopted.stdout
    assert "Plan: 1 to adopt, 0 to create, 0 to update, 0 to delete." in adopted.stdout
    assert "Adopted 1 objects" in adopted.stdout and "The next plan shows 0 updates" in adopted.stdout
    assert owned(keycloak, realm) == {"client": ["hand-made"]}

    removed = kcprov("apply", str(realm_file(tmp_path, realm, "", "removed.yaml")), "--auto-approve", env=env)
    ok(removed)
    assert "- client.hand-made" in removed.stdout
    not_managed = removed.stdout.split("Not managed by this file")[1]
    assert "client.not-in-file" in not_managed
    admin = keycloak.admin(realm)
    assert admin.get_client_id("hand-made") is None
    assert admin.get_client_id("not-in-file")
    assert owned(keycloak, realm) == {}


def test_apply_adopt_adopts_and_applies_in_one_run(tmp_path, env, realm, keycloak):
    make_clients(keycloak, realm, "hand-made")
    path = realm_file(tmp_path, realm, "roles:\n  - name: new-role\n" + HAND_MADE)
    applied = kcprov("apply", str(path), "--adopt", "--auto-approve", env=env)
    ok(applied)
    for line in ("= client.hand-made (exists, will be adopted)", "~ client.hand-made", "+ role.new-role",
                 "Plan: 1 to adopt, 1 to create, 1 to update, 0 to delete."):
        assert line in applied.stdout
    assert owned(keycloak, realm) == {"client": ["hand-made"], "role": ["new-role"]}
    admin = keycloak.admin(realm)
    assert admin.get_client(admin.get_client_id("hand-made"))["description"] == "written by the file"
    assert kcprov("plan", str(path), "--detailed-exitcode", env=env).returncode == 0

    gone = kcprov("plan", str(realm_file(tmp_path, realm, "roles:\n  - name: new-role\n", "gone.yaml")),
                  "--detailed-exitcode", env=env)
    assert gone.returncode == 2 and "- client.hand-made" in gone.stdout


def test_adopt_changes_nothing_but_the_ownership_record_and_tells_what_the_next_plan_updates(
        tmp_path, env, realm, keycloak):
    admin = keycloak.admin(realm)
    make_clients(keycloak, realm, "hand-made")
    client_uuid = admin.get_client_id("hand-made")
    admin.add_mapper_to_client(client_uuid, {
        "name": "aud", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
        "config": {"included.custom.audience": "http://localhost:3000", "access.token.claim": "true",
                   "id.token.claim": "false", "introspection.token.claim": "true"}})
    admin.create_realm_role({"name": "reader"})
    admin.create_client_scope({"name": "mcp:tools", "protocol": "openid-connect"})
    admin.create_client({"clientId": "confidential", "publicClient": False, "secret": SECRET})
    body = ("roles:\n  - name: reader\nclient_scopes:\n  - name: mcp:tools\n"
            + HAND_MADE + "    mappers:\n      - name: aud\n        audience: http://localhost:3000\n"
            "  - client_id: confidential\n    confidential: true\n    secret: \"{{ env.ADOPT_SECRET }}\"\n"
            "  - client_id: account\n")  # a built-in: never adopted
    path = realm_file(tmp_path, realm, body)
    before = snapshot(keycloak, realm)

    adopted = kcprov("adopt", str(path), "--auto-approve", env={**env, "ADOPT_SECRET": SECRET})
    ok(adopted)
    assert_clean(adopted, SECRET)
    assert "Plan: 5 to adopt, 0 to create, 0 to update, 0 to delete." in adopted.stdout
    assert "Left for `kcprov apply`" in adopted.stdout and "~ client.hand-made" in adopted.stdout
    assert "The next plan shows 1 update for them (they differ from the file)." in adopted.stdout
    assert snapshot(keycloak, realm) == before
    assert owned(keycloak, realm) == {"client": ["confidential", "hand-made"], "client_mapper": ["hand-made/aud"],
                                      "client_scope": ["mcp:tools"], "role": ["reader"]}

    planned = kcprov("plan", str(path), "--detailed-exitcode", env={**env, "ADOPT_SECRET": SECRET})
    assert planned.returncode == 2
    assert "1 to update" in planned.stdout and "~ client.hand-made" in planned.stdout
    assert "Named by this file but not created by kcprov" not in planned.stdout


def test_adopting_twice_is_a_no_op(tmp_path, env, realm, keycloak):
    make_clients(keycloak, realm, "hand-made")
    path = realm_file(tmp_path, realm, "clients:\n  - client_id: hand-made\n")
    ok(kcprov("adopt", str(path), "--auto-approve", env=env))
    record = keycloak.admin(realm).get_realm(realm)["attributes"][OWNERSHIP_ATTRIBUTE]
    again = kcprov("adopt", str(path), env=env)  # nothing to confirm: no terminal needed
    ok(again)
    assert "Nothing to adopt" in again.stdout and "Plan: 0 to create, 0 to update, 0 to delete." in again.stdout
    assert "Adopted" not in again.stdout
    assert keycloak.admin(realm).get_realm(realm)["attributes"][OWNERSHIP_ATTRIBUTE] == record


def test_a_plain_apply_updates_a_hand_made_object_but_never_takes_it_over(tmp_path, env, realm, keycloak):
    make_clients(keycloak, realm, "hand-made")
    path = realm_file(tmp_path, realm, "roles:\n  - name: new-role\n" + HAND_MADE)
    planned = kcprov("plan", str(path), env=env)
    assert "Named by this file but not created by kcprov" in planned.stdout
    assert "client.hand-made" in planned.stdout.split("Named by this file")[1]
    applied = kcprov("apply", str(path), "--auto-approve", env=env)
    ok(applied)
    assert "~ client.hand-made" in applied.stdout and "will be adopted" not in applied.stdout
    admin = keycloak.admin(realm)
    assert admin.get_client(admin.get_client_id("hand-made"))["description"] == "written by the file"
    assert owned(keycloak, realm) == {"role": ["new-role"]}  # what it created, not what it found

    removed = kcprov("apply", str(realm_file(tmp_path, realm, "roles:\n  - name: new-role\n", "removed.yaml")),
                     "--auto-approve", env=env)
    ok(removed)
    assert "- client.hand-made" not in removed.stdout
    assert "client.hand-made" in removed.stdout.split("Not managed by this file")[1]
    assert admin.get_client_id("hand-made")


def test_adopt_writes_the_record_only_under_the_realm_lock(tmp_path, env, realm, keycloak):
    make_clients(keycloak, realm, "hand-made")
    path = realm_file(tmp_path, realm, "clients:\n  - client_id: hand-made\n")
    held = RealmLock(KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user,
                                                       password=keycloak.password)), realm)
    held.acquire()
    try:
        refused = kcprov("adopt", str(path), "--auto-approve", env=env)
    finally:
        held.release()
    assert refused.returncode == 1 and f"realm '{realm}' is being applied by" in refused.stderr
    assert_clean(refused)
    assert owned(keycloak, realm) == {}


def test_apply_adopt_refuses_a_saved_plan_that_did_not_adopt(tmp_path, env, realm, keycloak):
    make_clients(keycloak, realm, "hand-made")
    path = realm_file(tmp_path, realm, "clients:\n  - client_id: hand-made\n")
    saved = tmp_path / "plan.json"
    assert kcprov("plan", str(path), "-o", str(saved), env=env).returncode == 0
    refused = kcprov("apply", str(saved), "--adopt", env=env)
    assert refused.returncode == 1 and "adoptions are applied only as reviewed" in refused.stderr
    assert owned(keycloak, realm) == {}


def test_a_plan_saved_with_adopt_adopts_when_applied(tmp_path, env, realm, keycloak):
    make_clients(keycloak, realm, "hand-made")
    path = realm_file(tmp_path, realm, "clients:\n  - client_id: hand-made\n")
    saved = tmp_path / "plan.json"
    planned = kcprov("plan", str(path), "--adopt", "-o", str(saved), env=env)
    assert planned.returncode == 0 and "= client.hand-made (exists, will be adopted)" in planned.stdout
    assert owned(keycloak, realm) == {}  # a plan changes nothing
    ok(kcprov("apply", str(saved), env=env))
    assert owned(keycloak, realm) == {"client": ["hand-made"]}
