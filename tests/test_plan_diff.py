"""Pure tests of the diff engine: no Keycloak, synthetic desired/live objects."""

from __future__ import annotations

import json

import pytest

from kcprov.plan import compute_plan
from kcprov.plan.changes import SENSITIVE, Plan, Secret, UnsafePlan
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


def test_unowned_objects_are_unmanaged_unless_pruned_and_builtins_never_listed():
    objects = {"client": {"by-hand": {}, "admin-cli": {}}, "role": {"offline_access": {}, "manual": {}}}
    plan = plan_of({}, objects)
    assert plan.empty
    assert plan.unmanaged == [("client", "by-hand"), ("role", "manual")]
    pruned = plan_of({}, objects, prune=True)
    assert sorted(c.address for c in pruned.changes) == ["client.by-hand", "role.manual"]


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
    assert {d.field for d in created.changes[0].diffs} == {"password", "email"}


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
