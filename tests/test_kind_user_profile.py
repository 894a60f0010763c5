"""The user profile kinds: policy, attribute groups, attributes (issue 12).

Against the real Keycloak: the contract (tests/kindcontract.py), a user attribute that
Keycloak keeps only once the profile declares it or the policy allows it, several attribute
changes of one apply (one stage, run concurrently) that all land, and what an in-sync plan
costs. Pure functions are tested without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kindcontract import ROOT, check_kind, cli_env, kcprov, ok, planned

from kcprov.apply import apply_plan
from kcprov.connection import ConnectionSettings
from kcprov.plan.admin_realm import AdminRealmChange, refuse_admin_realm_lockout
from kcprov.plan.changes import Change, FieldDiff, Plan
from kcprov.keycloak import KeycloakClient
from kcprov.resources import KINDS
from kcprov.resources.user_profile import UserProfileAttributeKind, UserProfileKind, _required
from kcprov.spec.models import RealmSpec
from kcprov.spec.user_profile import Required
from kcprov.state import RawRealm
from kcprov.workflow import plan_realm

PROFILE = ROOT / "tests" / "realms" / "kinds" / "user_profile.yaml"


def write(tmp_path: Path, text: str, name: str = "realm.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def apply(path: Path, env: dict) -> str:
    return ok(kcprov("apply", str(path), "--auto-approve", "--no-env", env=env, cwd=path.parent)).stdout


def alice_attributes(keycloak, realm: str) -> dict:
    admin = keycloak.admin(realm)
    return admin.get_user(admin.get_user_id("alice")).get("attributes") or {}


def add_by_hand(keycloak, realm: str, attribute: dict) -> None:
    admin = keycloak.admin(realm)
    profile = admin.get_realm_users_profile()
    profile["attributes"].append(attribute)
    admin.update_realm_users_profile(profile)


def without_profile(text: str) -> str:
    """The file without its user_profile section and alice's attributes (the kinds' entries and what needs them)."""
    start, end = text.index("user_profile:\n"), text.index("users:")
    return (text[:start] + text[end:]).replace("    attributes: {department: eng, badges: [b1, b2]}\n", "")


def test_contract(tmp_path, keycloak, realm_name, second_realm_name):
    env = cli_env(keycloak)

    def edit(text: str) -> str:
        # an attribute made by hand meanwhile: exported, never deleted by the removal below
        add_by_hand(keycloak, realm_name, {"name": "hand-made", "permissions": {"view": ["admin"], "edit": ["admin"]}})
        return text.replace("display_name: Department", "display_name: Dept.")

    exported = check_kind(
        tmp_path, env, realm_name, second_realm_name, PROFILE.read_text(),
        edit=edit, edited=("update", "user_profile_attribute", "department"),
        remove=without_profile,
        removed=[("delete", "user_profile_attribute", "department"), ("delete", "user_profile_attribute", "badges"),
                 ("delete", "user_profile_group", "work")],
    )
    assert "  unmanaged_attribute_policy: ADMIN_VIEW\n" in exported
    assert "    - name: hand-made\n" in exported
    assert "    - name: email\n      display_name: E-mail address\n" in exported
    assert "name: username" not in exported  # unchanged built-ins stay out
    names = {a["name"] for a in keycloak.admin(realm_name).get_realm_users_profile()["attributes"]}
    assert names == {"username", "email", "firstName", "lastName", "hand-made"}
    # the policy is not deleted with the section: it stays as the file last set it
    assert keycloak.admin(realm_name).get_realm_users_profile().get("unmanagedAttributePolicy") == "ADMIN_VIEW"


def test_user_attribute_kept_once_declared_or_allowed(tmp_path, keycloak, realm_name):
    env = cli_env(keycloak)
    bare = f"realm: {realm_name}\nusers:\n  - username: alice\n    attributes: {{department: eng, shoe: '42'}}\n"
    path = write(tmp_path, bare)
    out = apply(path, env)
    assert "user attributes alice.department, alice.shoe are not declared in user_profile" in out
    assert alice_attributes(keycloak, realm_name) == {}  # Keycloak dropped both
    assert ("update", "user", "alice") in planned(path, env)

    declared = bare.replace("users:", "user_profile:\n  attributes:\n    - name: department\nusers:")
    path.write_text(declared)
    out = apply(path, env)
    assert "alice.shoe" in out and "alice.department" not in out
    assert alice_attributes(keycloak, realm_name) == {"department": ["eng"]}

    path.write_text(declared.replace("user_profile:\n", "user_profile:\n  unmanaged_attribute_policy: ADMIN_EDIT\n"))
    out = apply(path, env)
    assert "not declared in user_profile" not in out
    assert alice_attributes(keycloak, realm_name) == {"department": ["eng"], "shoe": ["42"]}
    assert planned(path, env) == []


def test_concurrent_attribute_changes_all_land(tmp_path, keycloak, realm_name):
    """Ten attribute creates and updates plus the policy in one stage: each a GET-modify-PUT, serialised."""
    env = cli_env(keycloak)
    names = [f"attr{i}" for i in range(8)]
    entries = "".join(f"    - name: {n}\n      display_name: {n.upper()}\n" for n in names)
    text = (f"realm: {realm_name}\nuser_profile:\n  unmanaged_attribute_policy: ENABLED\n  attributes:\n{entries}"
            "    - name: firstName\n      display_name: Given name\n    - name: lastName\n      display_name: Family name\n")
    path = write(tmp_path, text)
    apply(path, env)
    assert planned(path, env) == []
    changed = text.replace("display_name: ATTR", "display_name: Attribute ").replace("ENABLED", "ADMIN_EDIT")
    path.write_text(changed)
    assert len(planned(path, env)) == len(names) + 1
    apply(path, env)
    assert planned(path, env) == []
    profile = keycloak.admin(realm_name).get_realm_users_profile()
    shown = {a["name"]: a.get("displayName") for a in profile["attributes"]}
    assert {n: shown[n] for n in names} == {n: f"Attribute {n.removeprefix('attr')}" for n in names}
    assert (shown["firstName"], shown["lastName"]) == ("Given name", "Family name")
    assert profile["unmanagedAttributePolicy"] == "ADMIN_EDIT"


def test_in_sync_plan_requests(keycloak, realm):
    """0 extra requests once the profile was changed (it is in the partial export), 1 before."""
    client = KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user, password=keycloak.password))

    def requests(doc: dict) -> int:
        spec = RealmSpec.model_validate({"realm": realm, **doc})
        client.requests = 0
        run = plan_realm(client, spec, "<test>")
        assert run.plan.empty, run.plan.summary()
        return client.requests

    bare = requests({})
    assert requests({"user_profile": {"unmanaged_attribute_policy": "DISABLED"}}) == bare + 1  # never changed: one GET
    profile = {"user_profile": {"attributes": [{"name": "department"}]}}
    spec = RealmSpec.model_validate({"realm": realm, **profile})
    run = plan_realm(client, spec, "<test>")
    assert apply_plan(client, run.plan, run.live, run.desired, KINDS).ok
    assert requests(profile) == bare  # read from the export's UserProfileProvider component


# ---------------------------------------------------------------- pure


def test_required_normalised():
    assert _required(None) is False and _required(False) is False
    assert _required(True) == {} and _required({}) == {}
    assert _required(Required(roles=["user", "admin"])) == {"roles": ["admin", "user"]}
    assert _required({"roles": ["user"], "scopes": ["b", "a"]}) == {"roles": ["user"], "scopes": ["a", "b"]}


def test_live_reads_the_export_component():
    config = '{"attributes":[{"name":"username"},{"name":"dept","permissions":{"edit":["admin"]}}],"groups":[]}'
    export = {"components": {"org.keycloak.userprofile.UserProfileProvider": [{"config": {"kc.user.profile.config": [config]}}]}}
    raw = RawRealm(name="r", export=export)
    UserProfileKind().read(None, raw, {"realm": {"r": {}}}, {})  # no request: the client is never used
    assert UserProfileKind().live(raw) == {"r": {"unmanaged_attribute_policy": "DISABLED"}}
    dept = UserProfileAttributeKind().live(raw)["dept"]
    assert dept["permissions.edit"] == ["admin"] and dept["permissions.view"] == [] and dept["multivalued"] is False


def test_new_attribute_is_admins_only():
    kind = UserProfileAttributeKind()
    assert kind.create_defaults("dept", {}, {}, None) == {"permissions.view": ["admin"], "permissions.edit": ["admin"]}
    assert kind.create_defaults("email", {}, {}, None) == {}


def test_a_required_attribute_in_the_admin_realm_is_refused():
    """Verified on 26.7.3: a user attribute required for users makes the password grant answer
    'Account is not fully set up' for a user without it, so kcprov would lock itself out."""
    required = Change("create", "user_profile_attribute", "badge", 1.5, (FieldDiff("required", None, {"roles": ["user"]}),))
    optional = Change("create", "user_profile_attribute", "nick", 1.5, (FieldDiff("required", None, False),))
    with pytest.raises(AdminRealmChange, match="user_profile_attribute.badge"):
        refuse_admin_realm_lockout(Plan("master", True, [required, optional], 0, "x"), "master", "admin", None, KINDS)
    refuse_admin_realm_lockout(Plan("master", True, [optional], 0, "x"), "master", "admin", None, KINDS)
    refuse_admin_realm_lockout(Plan("mcp", True, [required], 0, "x"), "master", "admin", None, KINDS)
