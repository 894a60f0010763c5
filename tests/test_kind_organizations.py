"""Organizations: fields, domains, members, linked identity providers (issue 12).

Against the real Keycloak: the contract (tests/kindcontract.py), membership and domains that
converge after changes made by hand, a linked provider routing the organization's domain, and
what an in-sync plan costs. Pure functions are tested without it.
"""

from __future__ import annotations

from pathlib import Path

from kindcontract import ROOT, check_kind, cli_env, kcprov, ok, planned, round_trip

from kcprov.connection import ConnectionSettings
from kcprov.keycloak import KeycloakClient
from kcprov.resources.organizations import OrganizationKind, representation
from kcprov.spec import load_realm
from kcprov.state import RawRealm
from kcprov.workflow import plan_realm

KINDS_DIR = ROOT / "tests" / "realms" / "kinds"
ORGS = KINDS_DIR / "organizations.yaml"
ORGS_IDP = KINDS_DIR / "organizations-idp.yaml"


def realm_file(tmp_path: Path, source: Path, realm: str) -> Path:
    path = tmp_path / "realm.yaml"
    path.write_text(source.read_text().replace("realm: REALM", f"realm: {realm}", 1))
    return path


def apply(path: Path, env: dict) -> str:
    return ok(kcprov("apply", str(path), "--auto-approve", "--no-env", env=env, cwd=path.parent)).stdout


def org(keycloak, realm: str, alias: str) -> dict:
    admin = keycloak.admin(realm)
    return next(o for o in admin.get_organizations({"briefRepresentation": "false", "max": -1}) if o["alias"] == alias)


def members(keycloak, realm: str, alias: str) -> set[str]:
    admin = keycloak.admin(realm)
    return {m["username"] for m in admin.get_organization_members(org(keycloak, realm, alias)["id"], {"max": -1})}


def without_organizations(text: str) -> str:
    return text[:text.index("organizations:\n")]


def test_contract(tmp_path, keycloak, realm_name, second_realm_name):
    env = cli_env(keycloak)

    def edit(text: str) -> str:
        # an organization made by hand meanwhile: exported, never deleted by the removal below
        keycloak.admin(realm_name).create_organization({"name": "Hand Made", "alias": "hand-made",
                                                         "domains": [{"name": "hand.example"}]})
        return text.replace("Acme Corporation", "Acme Corp.")

    exported = check_kind(
        tmp_path, env, realm_name, second_realm_name, ORGS.read_text(),
        edit=edit, edited=("update", "organization", "acme"),
        remove=without_organizations,
        removed=[("delete", "organization", "acme"), ("delete", "organization", "Globex")],
    )
    assert "  - name: Acme Inc\n    alias: acme\n    description: Acme Corp.\n" in exported
    assert "      - name: acme.org\n        verified: true\n" in exported
    assert "    members: [alice, bob]\n" in exported
    assert "  - name: Hand Made\n    alias: hand-made\n" in exported
    left = {o["alias"] for o in keycloak.admin(realm_name).get_organizations({"max": -1})}
    assert left == {"hand-made"}


def test_membership_and_domains_converge(tmp_path, keycloak, realm_name):
    env = cli_env(keycloak)
    path = realm_file(tmp_path, ORGS, realm_name)
    apply(path, env)
    assert members(keycloak, realm_name, "acme") == {"alice", "bob"}
    admin = keycloak.admin(realm_name)
    acme = org(keycloak, realm_name, "acme")
    assert {d["name"]: d["verified"] for d in acme["domains"]} == {"acme.com": False, "acme.org": True}
    assert acme["attributes"] == {"tier": ["gold"]} and acme["redirectUrl"] == "https://acme.example.com/welcome"

    # by hand: alice leaves, carol joins, a domain goes, an attribute comes
    admin.organization_user_remove(admin.get_user_id("alice"), acme["id"])
    carol = admin.create_user({"username": "carol", "enabled": True})
    admin.organization_user_add(carol, acme["id"])
    admin.update_organization(acme["id"], {**acme, "domains": [{"name": "acme.com"}], "attributes": {"tier": ["gold"], "hand": ["x"]}})
    assert planned(path, env) == [("update", "organization", "acme")]
    apply(path, env)
    assert planned(path, env) == []
    acme = org(keycloak, realm_name, "acme")
    assert members(keycloak, realm_name, "acme") == {"alice", "bob"}
    assert {d["name"] for d in acme["domains"]} == {"acme.com", "acme.org"}
    assert acme["attributes"] == {"tier": ["gold"], "hand": ["x"]}  # only the keys the file gives are managed

    # the file moves bob to Globex only, and drops a domain
    text = path.read_text().replace("members: [alice, bob]", "members: [alice]").replace(
        "domains: [acme.com, {name: acme.org, verified: true}]", "domains: [acme.com]")
    path.write_text(text)
    apply(path, env)
    assert planned(path, env) == []
    assert members(keycloak, realm_name, "acme") == {"alice"}
    assert members(keycloak, realm_name, "Globex") == {"bob"}
    assert [d["name"] for d in org(keycloak, realm_name, "acme")["domains"]] == ["acme.com"]


def test_linked_identity_provider_routes_the_domain(tmp_path, keycloak, realm_name, second_realm_name):
    env = cli_env(keycloak)
    path = realm_file(tmp_path, ORGS_IDP, realm_name)
    apply(path, env)
    assert planned(path, env) == []
    admin = keycloak.admin(realm_name)
    acme = org(keycloak, realm_name, "Acme")
    assert [p["alias"] for p in admin.get_organization_idps(acme["id"])] == ["acme-sso"]
    config = admin.get_idp("acme-sso")["config"]
    assert config["kc.org.domain"] == "acme.com"
    assert config["kc.org.broker.redirect.mode.email-matches"] == "true"
    (tmp_path / "trip").mkdir()
    exported = round_trip(tmp_path / "trip", env, realm_name, second_realm_name)
    assert "      - alias: acme-sso\n        domain: acme.com\n        redirect_when_email_matches: true\n" in exported

    path.write_text(path.read_text().replace("redirect_when_email_matches: true", "redirect_when_email_matches: false"))
    assert planned(path, env) == [("update", "organization", "Acme")]
    apply(path, env)
    assert planned(path, env) == []

    path.write_text(path.read_text().split("    identity_providers:\n")[0] + "    identity_providers: []\n")
    apply(path, env)
    assert planned(path, env) == []
    assert admin.get_organization_idps(acme["id"]) == []


def test_in_sync_plan_requests(tmp_path, keycloak, realm_name, second_realm_name):
    """1 request for the organizations plus 2 per organization the file names (members, providers); a
    realm the same but for its organizations is the reference."""
    env = cli_env(keycloak)
    client = KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user, password=keycloak.password))

    def requests(path: Path) -> int:
        apply(path, env)
        client.requests = 0
        run = plan_realm(client, load_realm(path, {}), str(path))
        assert run.plan.empty, run.plan.summary()
        return client.requests

    with_orgs = realm_file(tmp_path, ORGS, realm_name)
    (tmp_path / "other").mkdir()
    without = realm_file(tmp_path / "other", ORGS, second_realm_name)
    without.write_text(without_organizations(without.read_text()))
    assert requests(with_orgs) == requests(without) + 1 + 2 * 2


# ---------------------------------------------------------------- pure


def test_update_sends_the_whole_representation():
    rep = {"id": "x", "name": "Acme", "alias": "acme", "enabled": True, "attributes": {"a": ["1"], "b": ["2"]},
           "domains": [{"name": "acme.com", "verified": False}]}
    body = representation(rep, {"description": "new", "attributes.b": ["3"], "domains": {"acme.org": True}})
    assert body == {"id": "x", "name": "Acme", "alias": "acme", "enabled": True, "description": "new",
                    "attributes": {"a": ["1"], "b": ["3"]}, "domains": [{"name": "acme.org", "verified": True}]}


def test_nothing_read_when_organizations_are_off():
    raw = RawRealm(name="r", export={"organizationsEnabled": False})
    OrganizationKind().read(None, raw, {"organization": {"acme": {}}}, {})  # no request: the client is never used
    assert OrganizationKind().live(raw) == {}


def test_live_members_are_the_unmanaged_ones_and_the_managed_ones_the_file_lists():
    raw = RawRealm(name="r", export={}, extra={"organization": {"acme": {
        "rep": {"id": "1", "name": "Acme", "alias": "acme", "enabled": True}, "listed": [],
        "members": [{"id": "u1", "username": "alice", "membershipType": "UNMANAGED"},
                    {"id": "u2", "username": "brokered", "membershipType": "MANAGED"}],
        "providers": [{"alias": "sso", "config": {"kc.org.domain": "acme.com"}}]}}})
    live = OrganizationKind().live(raw)["acme"]
    assert live["members"] == ["alice"]
    assert live["identity_providers"] == ["sso"]
    assert live["identity_provider.sso.domain"] == "acme.com"
    assert live["identity_provider.sso.redirect_when_email_matches"] is False
    raw.extra["organization"]["acme"]["listed"] = ["alice", "brokered"]  # a brokered member the file lists
    assert OrganizationKind().live(raw)["acme"]["members"] == ["alice", "brokered"]
