"""Pure tests of the diff engine: no Keycloak, synthetic desired/live objects."""

from __future__ import annotations

import json

import pytest

from kcprov.plan import compute_plan
from kcprov.plan.changes import Plan, UnsafePlan
from kcprov.secret import SENSITIVE, Secret
from kcprov.plan.render import render_json, render_text
from kcprov.resources import KINDS
from kcprov.state import LiveState, RawRealm


def live(objects, owned=None, exists=True):
    return LiveState(realm="r", exists=exists, objects=objects, owned=owned or {}, raw=RawRealm("r", {} if exists else None))


def plan_of(desired, objects, owned=None, prune=False, exists=True):
    return compute_plan("r", desired, live(objects, owned, exists), KINDS, prune=prune)


def test_in_sync_is_empty_and_only_written_fields_compare():
    desired = {"client": {"app": {"standard_flow": False}}}
    objects = {"client": {"app": {"standard_flow": False, "implicit_flow": False, "name": "whatever"}}}
    assert plan_of(desired, objects).empty


def test_update_lists_only_changed_fields():
    desired = {"client": {"app": {"redirect_uris": ["http://localhost/b"], "enabled": True}}}
    objects = {"client": {"app": {"redirect_uris": ["http://localhost/a"], "enabled": True}}}
    plan = plan_of(desired, objects)
    [change] = plan.changes
    assert (change.action, change.kind, change.key) == ("update", "client", "app")
    assert [(d.field, d.before, d.after) for d in change.diffs] == [
        ("redirect_uris", ["http://localhost/a"], ["http://localhost/b"])]


def test_creates_follow_dependency_order_and_deletes_reverse_it():
    desired = {"client_scope": {"s": {}}, "role": {"r1": {}}, "scope_mapper": {"s/m": {"protocol_mapper": "x"}},
               "client": {"c": {}}, "user": {"u": {}}}
    objects = {"user": {"old": {}}, "client": {"oldc": {}}, "client_scope": {"olds": {}}}
    owned = {"user": {"old"}, "client": {"oldc"}, "client_scope": {"olds"}}
    plan = plan_of(desired, objects, owned)
    order = [(c.action, c.kind) for c in plan.changes]
    creates = [k for a, k in order if a == "create"]
    assert creates.index("role") < creates.index("client") < creates.index("user")
    assert creates.index("client_scope") < creates.index("scope_mapper")
    deletes = [k for a, k in order if a == "delete"]
    assert deletes == ["user", "client", "client_scope"]
    assert order.index(("delete", "user")) > order.index(("create", "user"))


def test_a_create_lists_the_defaults_it_sets_and_they_are_not_compared_later():
    desired = {"client": {"app": {"optional_scopes": ["phone"]}}}
    raw = RawRealm("r", {"defaultDefaultClientScopes": ["basic", "roles"], "defaultOptionalClientScopes": ["phone"]})
    scopes = {name: {"protocol": "openid-connect"} for name in ("basic", "roles", "phone")}
    scopes["saml_organization"] = {"protocol": "saml"}  # in the realm's default list, never attached to an OIDC client
    raw.export["defaultDefaultClientScopes"].append("saml_organization")
    state = LiveState(realm="r", exists=True, objects={"client": {}, "client_scope": scopes}, owned={}, raw=raw)
    [create] = compute_plan("r", desired, state, KINDS).changes
    diffs = {d.field: d for d in create.diffs}
    assert not diffs["optional_scopes"].default and diffs["optional_scopes"].after == ["phone"]
    assert diffs["default_scopes"].default and diffs["default_scopes"].after == ["basic", "roles"]
    assert (diffs["direct_access_grants"].after, diffs["implicit_flow"].after, diffs["confidential"].after) == (
        False, False, False)
    assert diffs["pkce"].after == "S256"
    assert plan_of(desired, {"client": {"app": {"optional_scopes": ["phone"], "direct_access_grants": True}}}).empty


def test_defaulted_client_scope_lists_follow_the_files_scope_types_and_new_realms():
    desired = {"client_scope": {"mine": {"type": "default"}, "basic": {"type": "none"}}, "client": {"app": {}}}
    plan = plan_of(desired, {}, exists=False)
    [client] = [c for c in plan.changes if c.kind == "client"]
    after = {d.field: d.after for d in client.diffs}
    assert after["default_scopes"] == ["acr", "email", "mine", "profile", "roles", "web-origins"]
    assert "phone" in after["optional_scopes"]


def test_a_secret_or_service_account_makes_a_created_client_confidential():
    for attrs in ({"secret": Secret("s3cr3t")}, {"service_account": True}):
        [create] = plan_of({"client": {"c": attrs}}, {"client": {}}).changes
        assert {d.field: d.after for d in create.diffs}["confidential"] is True


def test_defaults_are_marked_in_text_json_and_digest(capsys):
    from rich.console import Console

    plan = plan_of({"user": {"u": {}}}, {"user": {}})
    render_text([plan], Console(force_terminal=False, width=120))
    assert "+ enabled = true (default)" in capsys.readouterr().out
    [diff] = plan.to_json()["changes"][0]["diffs"]
    assert diff == {"field": "enabled", "before": None, "after": True, "sensitive": False, "default": True}
    written = plan_of({"user": {"u": {"enabled": True}}}, {"user": {}})
    assert written.content_digest() != plan.content_digest()


def test_unowned_objects_are_unmanaged_unless_pruned_and_builtins_never_listed():
    objects = {"client": {"by-hand": {}, "admin-cli": {}}, "role": {"offline_access": {}, "manual": {}}}
    plan = plan_of({}, objects)
    assert plan.empty
    assert plan.unmanaged == [("client", "by-hand"), ("role", "manual")]
    pruned = plan_of({}, objects, prune=True)
    assert sorted(c.address for c in pruned.changes) == ["client.by-hand", "role.manual"]


def test_prune_never_offers_keycloaks_own_objects_nor_their_children():
    master = {
        "role": {n: {} for n in ("offline_access", "uma_authorization", "default-roles-master", "admin", "create-realm")},
        "client": {n: {} for n in ("account", "admin-cli", "broker", "master-realm", "security-admin-console",
                                    "t-other-realm", "account-console")},
        "client_role": {"master-realm/manage-users": {}, "t-other-realm/view-users": {}, "account/manage-account": {}},
        "client_mapper": {"security-admin-console/locale": {}},
        "client_scope": {n: {} for n in ("profile", "email", "roles", "web-origins", "acr", "basic", "address", "phone",
                                          "offline_access", "microprofile-jwt", "organization", "service_account",
                                          "role_list", "saml_organization")},
        "scope_mapper": {"roles/realm roles": {}},
    }
    desired = {"client": {"account": {}, "master-realm": {}, "security-admin-console": {}}, "client_scope": {"roles": {}}}
    plan = compute_plan("master", desired, live(master), KINDS, prune=True)
    assert plan.empty and plan.unmanaged == []
    realm = {"client": {"realm-management": {}, "r-realm": {}}, "client_role": {"realm-management/view-users": {}},
             "role": {"admin": {}}}
    plan = compute_plan("r", {"client": {"realm-management": {}}}, live(realm), KINDS, prune=True)
    assert [c.address for c in plan.changes] == ["role.admin"]  # only master's `admin` is Keycloak's


def test_a_builtin_object_a_file_adopted_and_then_left_out_is_not_deleted():
    objects = {"client": {"account": {}}, "client_scope": {"roles": {}}, "scope_mapper": {"roles/realm roles": {}},
               "client_role": {"account/manage-account": {}}}
    owned = {"client": {"account"}, "client_scope": {"roles"}, "scope_mapper": {"roles/realm roles"},
             "client_role": {"account/manage-account"}}
    assert plan_of({}, objects, owned).empty
    assert plan_of({"client": {"account": {}}, "client_scope": {"roles": {}}}, objects, owned, prune=True).empty


def test_children_of_unmanaged_parents_are_not_listed_and_go_with_deleted_parents():
    objects = {"client_scope": {"s": {}}, "scope_mapper": {"s/m": {}}}
    assert plan_of({}, objects).unmanaged == [("client_scope", "s")]
    plan = plan_of({}, objects, owned={"client_scope": {"s"}, "scope_mapper": {"s/m"}})
    assert [c.address for c in plan.changes] == ["client_scope.s"]


def test_realm_and_registration_policies_are_never_deleted():
    objects = {"realm": {"r": {}}, "registration_policy": {"anonymous/trusted-hosts": {}}}
    plan = plan_of({}, objects, owned={"realm": {"r"}}, prune=True)
    assert plan.empty and plan.unmanaged == []


def test_write_only_password_is_set_on_create_but_never_compared():
    desired = {"user": {"alice": {"password": Secret("pw"), "email": "a@x"}}}
    assert plan_of(desired, {"user": {"alice": {"email": "a@x"}}}).empty
    created = plan_of(desired, {"user": {}})
    assert {d.field for d in created.changes[0].diffs if not d.default} == {"password", "email"}


def test_secret_change_detected_without_showing_values(capsys):
    desired = {"client": {"c": {"secret": Secret("new-secret-value")}}}
    plan = plan_of(desired, {"client": {"c": {"secret": Secret("old-secret-value")}}})
    assert plan.count("update") == 1
    from rich.console import Console

    render_text([plan], Console(force_terminal=False, width=120))
    text = capsys.readouterr().out + render_json([plan]) + json.dumps(plan.to_json())
    assert "new-secret-value" not in text and "old-secret-value" not in text
    assert SENSITIVE in text
    assert plan_of(desired, {"client": {"c": {"secret": Secret("new-secret-value")}}}).empty


def test_safety_threshold_refuses_mass_deletion_unless_forced():
    owned = {"client": {f"c{i}" for i in range(10)}}
    objects = {"client": {f"c{i}": {} for i in range(10)}}
    desired = {"client": {f"c{i}": {} for i in range(7)}}
    plan_of(desired, objects, owned).raise_if_unsafe()  # 3 of 10 = 30%: allowed
    plan = plan_of({"client": {f"c{i}": {} for i in range(6)}}, objects, owned)
    with pytest.raises(UnsafePlan, match=r"deletes 4 of 10 managed objects \(40%\)"):
        plan.raise_if_unsafe()
    plan.raise_if_unsafe(force=True)


def test_small_realms_are_below_the_threshold():
    owned = {"client": {"a", "b"}}
    plan = plan_of({}, {"client": {"a": {}, "b": {}}}, owned)
    assert plan.count("delete") == 2
    plan.raise_if_unsafe()


def test_plan_digest_is_stable_and_tracks_content():
    desired = {"role": {"a": {"description": "x"}}}
    p1, p2 = plan_of(desired, {"role": {}}), plan_of(desired, {"role": {}})
    assert p1.content_digest() == p2.content_digest()
    p3 = plan_of({"role": {"a": {"description": "y"}}}, {"role": {}})
    assert p3.content_digest() != p1.content_digest()


def test_new_realm_plans_creates_only():
    plan = plan_of({"realm": {"r": {"enabled": True}}, "role": {"a": {}}}, {}, exists=False)
    assert not plan.realm_exists
    assert [c.action for c in plan.changes] == ["create", "create"]
    assert isinstance(plan, Plan) and plan.summary() == "2 to create, 0 to update, 0 to delete"


def test_a_realm_file_cannot_write_the_ownership_record():
    from kcprov.errors import KcprovError
    from kcprov.resources.realm import RealmKind
    from kcprov.spec.models import RealmSpec

    spec = RealmSpec(realm="r", settings={"attributes": {"kcprov.managed": '{"user": ["admin"]}'}})
    with pytest.raises(KcprovError, match="kcprov.managed"):
        RealmKind().desired(spec)
