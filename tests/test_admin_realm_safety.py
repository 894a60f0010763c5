"""A realm file cannot lock kcprov out of Keycloak, and --prune never offers Keycloak's own objects.

The pure tests run the check on synthetic plans. The Keycloak tests never write
to the shared Keycloak's master realm: on master they only plan; everything that
applies uses a realm of its own as the admin realm (`KCPROV_AUTH_REALM`), with a
user that administers only that realm.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from test_apply import assert_clean, kcprov

from kcprov.plan import compute_plan
from kcprov.plan.admin_realm import AdminRealmChange, refuse_admin_realm_lockout
from kcprov.resources import KINDS
from kcprov.state import LiveState, RawRealm

OPS_PASSWORD = "ops-pw-5521-zz"
BUILTIN_ROLES = {"offline_access", "uma_authorization", "admin", "create-realm"}
BUILTIN_SCOPES = {"profile", "email", "roles", "web-origins", "acr", "basic", "address", "phone", "offline_access",
                  "microprofile-jwt", "organization", "service_account", "role_list", "saml_organization"}
BUILTIN_CLIENTS = {"account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console"}


def plan_for(realm: str, desired: dict, objects: dict, prune: bool = False):
    live = LiveState(realm=realm, exists=True, objects=objects, owned={}, raw=RawRealm(realm, {}))
    return compute_plan(realm, desired, live, KINDS, prune=prune)


def refused(plan, user: str | None = "admin", client: str | None = None) -> str:
    with pytest.raises(AdminRealmChange) as info:
        refuse_admin_realm_lockout(plan, "master", user, client, KINDS)
    return info.value.message


def test_disabling_the_admin_realm_is_refused_unless_allowed():
    plan = plan_for("master", {"realm": {"master": {"enabled": False}}}, {"realm": {"master": {"enabled": True}}})
    message = refused(plan)
    assert "realm 'master'" in message and "update realm.master (enabled:" in message
    refuse_admin_realm_lockout(plan, "master", "admin", None, KINDS, allow=True)
    other = plan_for("t-x", {"realm": {"t-x": {"enabled": False}}}, {"realm": {"t-x": {"enabled": True}}})
    refuse_admin_realm_lockout(other, "master", "admin", None, KINDS)  # not the realm kcprov logs in to


@pytest.mark.parametrize("field, after", [("settings.ssl_required", "all"), ("settings.password_policy", "forceExpiredPasswordChange(1)"),
                                          ("attributes.frontendUrl", "https://elsewhere"), ("settings.permanent_lockout", True)])
def test_login_settings_of_the_admin_realm_are_refused(field, after):
    plan = plan_for("master", {"realm": {"master": {field: after}}}, {"realm": {"master": {}}})
    assert field in refused(plan)


def test_harmless_admin_realm_changes_pass():
    plan = plan_for("master", {"realm": {"master": {"display_name": "Admin"}}, "role": {"ops": {}},
                               "user": {"admin": {"email": "a@x", "roles": ["realm/admin", "realm/ops"]}}},
                    {"realm": {"master": {}}, "role": {}, "user": {"admin": {"roles": ["realm/admin"]}}})
    refuse_admin_realm_lockout(plan, "master", "admin", None, KINDS)


@pytest.mark.parametrize("desired, objects, expected", [
    ({"user": {"admin": {"roles": []}}}, {"user": {"admin": {"roles": ["realm/admin"]}}}, "update user.admin (roles:"),
    ({"user": {"admin": {"enabled": False}}}, {"user": {"admin": {"enabled": True}}}, "update user.admin (enabled:"),
    ({"client": {"admin-cli": {"enabled": False}}}, {"client": {"admin-cli": {"enabled": True}}}, "update client.admin-cli"),
    ({"client": {"master-realm": {}}, "client_role": {"master-realm/x": {}}}, {"client": {"master-realm": {}}},
     "create client_role.master-realm/x"),
    ({"client_scope": {"basic": {"type": "none"}}}, {"client_scope": {"basic": {"type": "default"}}}, "update client_scope.basic"),
    ({"client_policy": {"everyone": {"conditions": ["any-client"]}}}, {"client_policy": {}}, "create client_policy.everyone"),
])
def test_the_admins_user_and_keycloaks_own_objects_are_refused(desired, objects, expected):
    assert expected in refused(plan_for("master", desired, objects))


def test_deleting_the_login_user_or_changing_the_login_client_is_refused():
    plan = compute_plan("master", {}, LiveState("master", True, {"user": {"admin": {}}}, {"user": {"admin"}},
                                                RawRealm("master", {})), KINDS)
    assert "delete user.admin" in refused(plan)
    rotate = plan_for("master", {"client": {"ci": {"enabled": False}}, "service_account_roles": {"ci": {"roles": []}}},
                      {"client": {"ci": {"enabled": True}}, "service_account_roles": {"ci": {"roles": ["realm/admin"]}}})
    message = refused(rotate, user="service-account-ci", client="ci")
    assert "update client.ci" in message and "update service_account_roles.ci" in message


# -- against Keycloak ---------------------------------------------------------------------


@pytest.fixture
def env(kc_env):
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


@pytest.fixture
def ops_env(env, realm, keycloak):
    """`realm` as kcprov's admin realm: user `ops` there administers it (realm-management/realm-admin)."""
    admin = keycloak.admin(realm)
    user_id = admin.create_user({"username": "ops", "enabled": True, "email": "ops@example.com", "firstName": "O",
                                 "lastName": "Ps", "emailVerified": True,
                                 "credentials": [{"type": "password", "value": OPS_PASSWORD, "temporary": False}]})
    management = admin.get_client_id("realm-management")
    admin.assign_client_role(user_id, management, [admin.get_client_role(management, "realm-admin")])
    return {**env, "KCPROV_AUTH_REALM": realm, "KCPROV_USER": "ops", "KCPROV_PASSWORD": OPS_PASSWORD}


def write(tmp_path, text: str):
    path = tmp_path / "realm.yaml"
    path.write_text(text)
    return path


def test_plan_of_master_disabled_is_refused_naming_realm_change_and_flag(tmp_path, env, keycloak):
    result = kcprov("plan", str(write(tmp_path, "realm: master\nenabled: false\n")), env=env)
    assert result.returncode == 1, result.stdout
    assert_clean(result, keycloak.password)
    message = " ".join(result.stderr.split())
    assert "realm 'master'" in message and "realm.master (enabled:" in message
    assert "--allow-admin-realm-changes" in message
    assert keycloak.admin().get_realm("master")["enabled"] is True


@pytest.mark.parametrize("text, change", [
    ("enabled: false\n", "realm.{realm} (enabled:"),
    ("settings:\n  ssl_required: all\n", "settings.ssl_required"),
    ("users:\n  - username: ops\n    realm_roles: []\n    client_roles: {{}}\n", "user.ops (roles:"),
    ("users:\n  - username: ops\n    enabled: false\n", "user.ops (enabled:"),
    ("clients:\n  - client_id: admin-cli\n    enabled: false\n", "client.admin-cli"),
    ("clients:\n  - client_id: realm-management\n    roles: [extra]\n", "client_role.realm-management/extra"),
])
def test_apply_refuses_to_lock_the_admin_out_and_changes_nothing(tmp_path, ops_env, realm, keycloak, text, change):
    path = write(tmp_path, f"realm: {realm}\n" + text.format(realm=realm))
    result = kcprov("apply", str(path), "--auto-approve", env=ops_env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_clean(result, OPS_PASSWORD)
    message = " ".join(result.stderr.split())
    assert change.format(realm=realm) in message and "--allow-admin-realm-changes" in message
    assert "Applied" not in result.stdout
    admin = keycloak.admin(realm)
    assert admin.get_realm(realm)["enabled"] is True and admin.get_realm(realm)["sslRequired"] == "external"
    [ops] = admin.get_users({"username": "ops", "exact": True})
    assert ops["enabled"] is True
    assert admin.get_client(admin.get_client_id("admin-cli"))["enabled"] is True
    management = admin.get_client_id("realm-management")
    assert [r["name"] for r in admin.get_client_roles_of_user(ops["id"], management)] == ["realm-admin"]


def test_harmless_changes_to_the_admin_realm_apply_and_the_flag_allows_the_rest(tmp_path, ops_env, realm, keycloak):
    harmless = write(tmp_path, f"realm: {realm}\ndisplay_name: Ops realm\nroles:\n  - name: reader\n")
    result = kcprov("apply", str(harmless), "--auto-approve", env=ops_env)
    assert result.returncode == 0, result.stdout + result.stderr
    disable = write(tmp_path, f"realm: {realm}\nenabled: false\n")
    allowed = kcprov("apply", str(disable), "--auto-approve", "--allow-admin-realm-changes", env=ops_env)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert keycloak.admin(realm).get_realm(realm)["enabled"] is False


def test_a_realm_file_cannot_rename_a_realm(tmp_path, env):
    result = kcprov("validate", str(write(tmp_path, "realm: master\nsettings:\n  realm: elsewhere\n")), env=env)
    assert result.returncode == 1
    assert re.search(r"realm\.yaml:3:\d+: error:.*realm", result.stdout + result.stderr)


def builtin_deletes(plan: dict, realm: str) -> list[str]:
    """Deletes or unmanaged entries of a plan that name Keycloak's own objects."""
    entries = [(c["kind"], c["key"]) for c in plan["changes"] if c["action"] == "delete"]
    entries += [(u["kind"], u["key"]) for u in plan["unmanaged"]]
    found = []
    for kind, key in entries:
        owner = key.split("/", 1)[0]
        if ((kind == "role" and key in BUILTIN_ROLES | {f"default-roles-{realm}"})
                or (kind in ("client", "client_role", "client_mapper") and (owner in BUILTIN_CLIENTS or owner.endswith("-realm")))
                or (kind in ("client_scope", "scope_mapper") and owner in BUILTIN_SCOPES)):
            found.append(f"{kind}.{key}")
    return found


def test_prune_plan_of_master_offers_none_of_keycloaks_objects(tmp_path, env):
    # plan only: a prune of the shared Keycloak's master must never be applied here
    path = write(tmp_path, "realm: master\nclients:\n  - client_id: account\n  - client_id: security-admin-console\n"
                           "client_scopes:\n  - name: roles\n  - name: basic\n")
    result = kcprov("plan", str(path), "--prune", "--json", env=env)
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)["plans"]
    assert builtin_deletes(plan, "master") == []
    assert not [c for c in plan["changes"] if c["action"] != "delete"]


def test_prune_plan_of_a_realm_offers_none_of_keycloaks_objects(tmp_path, env, realm):
    path = write(tmp_path, f"realm: {realm}\nclients:\n  - client_id: account\n  - client_id: realm-management\n"
                           "client_scopes:\n  - name: roles\n  - name: profile\n")
    result = kcprov("plan", str(path), "--prune", "--json", env=env)
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)["plans"]
    assert builtin_deletes(plan, realm) == []
    assert plan["changes"] == [] and plan["unmanaged"] == []
