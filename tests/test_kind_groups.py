"""Groups, default groups, users' group membership and the group-membership mapper (issue 12).

The contract (tests/kindcontract.py) and what the kinds are for, against the real Keycloak:
a user's groups and their roles reach a token, default groups reach a new user, a three-level
tree applies parents first and goes with its parent. Pure functions are tested without it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from kindcontract import ROOT, cli_env, check_kind, kcprov, ok, planned

from kcprov.export.document import ExportContext
from kcprov.lock import LOCK_GROUP
from kcprov.plan.changes import Change
from kcprov.resources.groups import DefaultGroupsKind, GroupKind, live_groups, split
from kcprov.resources.scopes import mapper_attrs, mapper_shortcut
from kcprov.resources.users import UserKind
from kcprov.spec.models import ProtocolMapper, RealmSpec
from kcprov.state import LiveState, RawRealm

GROUPS = ROOT / "tests" / "realms" / "kinds" / "groups.yaml"
PASSWORD = "groups-test-pw-7301-qq"


# ---------------------------------------------------------------- against Keycloak


def realm_file(tmp_path: Path, realm: str, edit=lambda t: t) -> Path:
    path = tmp_path / "realm.yaml"
    path.write_text(edit(GROUPS.read_text().replace("realm: REALM", f"realm: {realm}", 1)))
    return path


def apply(path: Path, env: dict) -> None:
    ok(kcprov("apply", str(path), "--auto-approve", "--no-env", env=env, cwd=path.parent), PASSWORD)


def claims(keycloak, realm: str, username: str) -> dict:
    resp = httpx.post(f"{keycloak.url}/realms/{realm}/protocol/openid-connect/token",
                      data={"grant_type": "password", "client_id": "mcp-cli", "username": username,
                            "password": PASSWORD, "scope": "openid"})
    assert resp.status_code == 200, resp.text
    body = resp.json()["access_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def without_groups(text: str) -> str:
    """The file without its groups, default groups and alice's membership (the kinds' entries)."""
    start, end = text.index("groups:\n  - name: staff"), text.index("users:")
    return (text[:start] + text[end:]).replace("    groups: [/staff/mcp-admins]\n", "")


def test_contract(tmp_path, keycloak, realm_name, second_realm_name):
    env = cli_env(keycloak, GROUPS_TEST_PASSWORD=PASSWORD)

    def edit(text: str) -> str:
        # a group made by hand meanwhile: exported, never deleted by the removal below
        keycloak.admin(realm_name).create_group({"name": "hand-made"})
        return text.replace("Administrators of the MCP server", "Admins of the MCP server")

    exported = check_kind(
        tmp_path, env, realm_name, second_realm_name, GROUPS.read_text(),
        edit=edit, edited=("update", "group", "/staff/mcp-admins"),
        remove=without_groups,
        removed=[("delete", "group", "/staff"), ("delete", "group", "/contractors")],
        secrets=(PASSWORD,),
    )
    assert "  - name: hand-made\n" in exported
    assert "default_groups: [/contractors]" in exported
    assert "        group_membership: groups\n        full_path: false\n" in exported
    assert "    groups: [/staff/mcp-admins]\n" in exported
    left = {g["path"] for g in keycloak.admin(realm_name).get_groups()}
    assert left == {"/hand-made"}


def test_membership_roles_and_default_groups_reach_tokens(tmp_path, keycloak, realm_name):
    env = cli_env(keycloak, GROUPS_TEST_PASSWORD=PASSWORD)
    apply(realm_file(tmp_path, realm_name), env)

    alice = claims(keycloak, realm_name, "alice")
    assert alice["groups"] == ["mcp-admins"]  # the mapper, names (full_path: false)
    assert {"mcp-user", "mcp-admin"} <= set(alice["realm_access"]["roles"])  # mcp-user from the parent group
    assert set(alice["resource_access"]["mcp-server"]["roles"]) == {"reader", "writer"}

    bob = claims(keycloak, realm_name, "bob")  # no groups: in the file, so the realm's default groups
    assert bob["groups"] == ["contractors"]
    assert "mcp-admin" not in bob["realm_access"]["roles"]
    assert "resource_access" not in bob or "mcp-server" not in bob["resource_access"]


def test_three_levels_apply_parents_first_and_go_with_their_parent(tmp_path, keycloak, realm_name):
    env = cli_env(keycloak, GROUPS_TEST_PASSWORD=PASSWORD)
    path = realm_file(tmp_path, realm_name)
    doc = json.loads(ok(kcprov("plan", str(path), "--json", env=env, cwd=tmp_path), PASSWORD).stdout)
    order = [(c["key"], c["stage"]) for c in doc["plans"][0]["changes"] if c["kind"] == "group"]
    assert [k for k, _ in order if k.startswith("/staff")] == ["/staff", "/staff/mcp-admins", "/staff/mcp-admins/on-call"]
    assert [s for k, s in order if k.startswith("/staff")] == sorted(s for k, s in order if k.startswith("/staff"))
    apply(path, env)
    admin = keycloak.admin(realm_name)
    assert admin.get_group_by_path("/staff/mcp-admins/on-call")["attributes"] == {"pager": ["true"]}

    def drop_admins(text: str) -> str:
        start, end = text.index("    subgroups:\n      - name: mcp-admins"), text.index("  - name: contractors")
        return (text[:start] + text[end:]).replace("groups: [/staff/mcp-admins]", "groups: [/staff]")

    path.write_text(drop_admins(path.read_text()))
    assert sorted(planned(path, env, PASSWORD)) == [("delete", "group", "/staff/mcp-admins"),
                                                     ("update", "user", "alice")]
    apply(path, env)
    assert planned(path, env, PASSWORD) == []
    assert {g["path"] for g in admin.get_groups()} == {"/staff", "/contractors"}
    assert admin.get_group_by_path("/staff")["subGroupCount"] == 0


# ---------------------------------------------------------------- pure functions


def spec(**keys) -> RealmSpec:
    return RealmSpec.model_validate({"realm": "r", "roles": [{"name": "u"}], **keys})


TREE = [{"name": "staff", "description": "d", "attributes": {"b": ["2", "1"], "a": "x"}, "realm_roles": ["u"],
         "subgroups": [{"name": "admins", "subgroups": [{"name": "on-call"}]}]}]


def test_desired_groups_are_keyed_by_path():
    assert GroupKind().desired(spec(groups=TREE)) == {
        "/staff": {"description": "d", "roles": ["realm/u"], "attributes.b": ["1", "2"], "attributes.a": ["x"]},
        "/staff/admins": {}, "/staff/admins/on-call": {}}


def test_live_groups_walk_parents_first_without_the_lock():
    export = {"groups": [
        {"name": LOCK_GROUP, "subGroups": []},
        {"name": "b", "subGroups": [{"name": "c", "subGroups": [{"name": "d"}]}]},
        {"name": "a"},
    ]}
    assert [p for p, _ in live_groups(export)] == ["/b", "/b/c", "/b/c/d", "/a"]


def test_live_shape_matches_the_desired_one():
    export = {"groups": [{"name": "staff", "description": "d", "attributes": {"b": ["2", "1"], "a": ["x"]},
                          "realmRoles": ["u"], "clientRoles": {}, "subGroups": [
                              {"name": "admins", "realmRoles": [], "clientRoles": {"app": ["r"]}, "subGroups": []}]}]}
    live = GroupKind().live(RawRealm("r", export))
    assert live["/staff"] == {"description": "d", "roles": ["realm/u"], "attributes.b": ["1", "2"],
                              "attributes.a": ["x"]}
    assert live["/staff/admins"] == {"description": None, "roles": ["app/r"]}


def test_subgroups_come_after_their_parent_and_are_deleted_before_it():
    kind = GroupKind()
    assert split("/staff/admins") == ("/staff", "admins") and split("/staff") == (None, "staff")
    assert kind.parent("/staff/admins") == ("group", "/staff") and kind.parent("/staff") is None
    stages = [kind.stage_of(k) for k in ("/a", "/a/b", "/a/b/c")]
    assert stages == sorted(stages) and len(set(stages)) == 3 and stages[-1] < DefaultGroupsKind.stage < 5
    deletes = [Change("delete", "group", k, kind.stage_of(k)) for k in ("/a", "/a/b/c", "/a/b")]
    assert [c.key for c in sorted(deletes, key=Change.sort_key)] == ["/a/b/c", "/a/b", "/a"]


def test_default_groups_left_out_are_not_managed():
    assert DefaultGroupsKind().desired(spec()) == {}
    assert DefaultGroupsKind().desired(spec(default_groups=[])) == {"r": {"groups": []}}
    assert DefaultGroupsKind().live(RawRealm("r", {"defaultGroups": ["/b", "/a"]})) == {"r": {"groups": ["/a", "/b"]}}


@pytest.mark.parametrize("short", [
    {"group_membership": "groups"},
    {"group_membership": "groups", "full_path": False},
    {"group_membership": "realm_groups", "id_token": False, "userinfo": False, "introspection": False},
    {"audience": "https://x", "id_token": True},
])
def test_mapper_shortcuts_come_back_from_their_expansion(short):
    assert mapper_shortcut("m", mapper_attrs(ProtocolMapper(name="m", **short))) == short


def test_group_membership_expands_to_keycloaks_mapper():
    attrs = mapper_attrs(ProtocolMapper(name="m", group_membership="groups", full_path=False))
    assert attrs == {"protocol_mapper": "oidc-group-membership-mapper", "config.claim.name": "groups",
                     "config.full.path": "false", "config.access.token.claim": "true",
                     "config.id.token.claim": "true", "config.introspection.token.claim": "true",
                     "config.userinfo.token.claim": "true"}
    assert mapper_shortcut("m", {**attrs, "config.lightweight.claim": "true"}) is None  # stays generic


def test_export_nests_subgroups_and_lists_what_paths_cannot_name():
    export = {"groups": [{"name": "staff", "subGroups": [{"name": "admins", "realmRoles": ["u"], "subGroups": []}]},
                         {"name": "a/b", "subGroups": []}],
              "defaultGroups": ["/a/b"]}
    raw = RawRealm("r", export, users={"alice": {"rep": {}, "roles": {}, "groups": ["/a/b", "/staff"]}})
    ctx = ExportContext("r", LiveState("r", True, {}, {}, raw))
    kind = GroupKind()
    for key, attrs in kind.live(raw).items():
        kind.export(key, {f: v for f, v in attrs.items() if v is not None}, ctx)
    DefaultGroupsKind().export("r", {"groups": ["/a/b"]}, ctx)
    UserKind().export("alice", {"groups": ["/a/b", "/staff"]}, ctx)
    assert ctx.doc["groups"] == {"staff": {"name": "staff", "subgroups": {
        "admins": {"name": "admins", "realm_roles": ["u"]}}}}
    assert "default_groups" not in ctx.doc and "groups" not in ctx.doc["users"]["alice"]  # not a part of them
    assert {line.split(":")[0] for line in ctx.skipped} == {"group '/a/b'", "default groups 'r'", "user 'alice'"}
