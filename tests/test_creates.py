"""Creates are what the reviewer saw: every value a create's plan shows is what Keycloak holds after it.

Each test writes a realm file that leaves most fields out, reads `kcprov plan --json`,
applies it, and reads every created object back through its own Admin API endpoint
(not the partial export kcprov plans from), field by field, against the plan's `after`
values, the `(default)` ones included. A second plan must be empty.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

import pytest
from test_apply import assert_clean, kcprov

pytestmark = pytest.mark.keycloak

NEW_REALM_DEFAULT_SCOPES = ["acr", "basic", "email", "profile", "roles", "web-origins"]


def plan_json(path: Path, env: dict) -> dict:
    result = kcprov("plan", str(path), "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    [plan] = json.loads(result.stdout)["plans"]
    return plan


def apply(path: Path, env: dict) -> None:
    result = kcprov("apply", str(path), "--auto-approve", "--no-env", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_clean(result)


@pytest.fixture
def env(kc_env, realm_name):
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def test_client_with_only_optional_scopes_keeps_the_realm_default_scopes(tmp_path, env, realm_name, keycloak):
    path = tmp_path / "realm.yaml"
    path.write_text(f"realm: {realm_name}\nclients:\n  - client_id: app\n    optional_scopes: [phone]\n")
    apply(path, env)
    admin = keycloak.admin(realm_name)
    uuid = admin.get_client_id("app")
    assert sorted(s["name"] for s in admin.get_client_default_client_scopes(uuid)) == NEW_REALM_DEFAULT_SCOPES
    assert [s["name"] for s in admin.get_client_optional_client_scopes(uuid)] == ["phone"]


EVERY_KIND = """\
realm: {realm}
roles:
  - name: reader
client_scopes:
  - name: mcp:tools
    mappers:
      - name: audience
        audience: http://localhost:3000
    scope_roles: {{realm: [reader]}}
client_registration:
  anonymous:
    trusted_hosts: [localhost]
client_policies:
  profiles:
    - name: hardening
      executors:
        - type: pkce-enforcer
          config: {{auto-configure: "true"}}
  policies:
    - name: everyone
      conditions:
        - type: any-client
      profiles: [hardening]
clients:
  - client_id: public-app
    redirect_uris: [http://localhost:5173/cb]
    optional_scopes: [mcp:tools]
  - client_id: service
    service_account: true
    service_account_roles: {{realm: [reader]}}
    roles: [audit]
    mappers:
      - name: self
        client_audience: service
users:
  - username: alice
    password: alice-pw-1234
    realm_roles: [reader]
"""

REGISTRATION = "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy"
CLIENT_FLAGS = {
    "enabled": "enabled", "service_account": "serviceAccountsEnabled", "standard_flow": "standardFlowEnabled",
    "implicit_flow": "implicitFlowEnabled", "direct_access_grants": "directAccessGrantsEnabled",
    "consent_required": "consentRequired", "front_channel_logout": "frontchannelLogout",
    "full_scope_allowed": "fullScopeAllowed",
}


def names(reps) -> list[str]:
    return sorted(r["name"] for r in reps)


def role_refs(mappings: dict, realm: str) -> list[str]:
    """Direct role mappings of a user -> kcprov's flat references (the automatic default role left out)."""
    refs = [f"realm/{r['name']}" for r in mappings.get("realmMappings") or [] if r["name"] != f"default-roles-{realm}"]
    for client_id, client in (mappings.get("clientMappings") or {}).items():
        refs += [f"{client_id}/{r['name']}" for r in client.get("mappings") or []]
    return sorted(refs)


def steps(entries: list, field: str, type_key: str) -> dict:
    """A client profile's executors / a policy's conditions -> the flat fields of the plan."""
    flat = {field: [e[type_key] for e in entries]}
    for i, e in enumerate(entries):
        flat.update({f"{field}[{i}].{k}": v for k, v in (e.get("configuration") or {}).items()})
    return flat


class LiveReader:
    """Each created object read back from its own Admin API endpoint, in the plan's flat field names."""

    def __init__(self, admin, realm: str):
        self.admin, self.realm = admin, realm

    def get(self, path: str):
        return self.admin.connection.raw_get(f"/admin/realms/{self.realm}{path}").json()

    def scope_id(self, name: str) -> str:
        return next(s["id"] for s in self.admin.get_client_scopes() if s["name"] == name)

    def realm_(self, key: str) -> dict:
        rep = self.admin.get_realm(self.realm)
        return {"enabled": rep["enabled"], "settings.ssl_required": rep["sslRequired"],
                "settings.registration_allowed": rep["registrationAllowed"]}

    def role(self, key: str) -> dict:
        return {"description": self.admin.get_realm_role(key).get("description")}

    def client_scope(self, key: str) -> dict:
        scope = self.admin.get_client_scope(self.scope_id(key))
        attributes = scope.get("attributes") or {}
        kind = ("default" if key in names(self.admin.get_default_default_client_scopes())
                else "optional" if key in names(self.admin.get_default_optional_client_scopes()) else "none")
        return {"protocol": scope["protocol"], "type": kind,
                "include_in_token_scope": attributes.get("include.in.token.scope") == "true",
                "display_on_consent_screen": attributes.get("display.on.consent.screen") == "true"}

    def mappers(self, reps: list, name: str) -> dict:
        m = next(m for m in reps if m["name"] == name)
        return {"protocol_mapper": m["protocolMapper"], **{f"config.{k}": v for k, v in m["config"].items()}}

    def scope_mapper(self, key: str) -> dict:
        scope, name = key.split("/", 1)
        return self.mappers(self.admin.get_mappers_from_client_scope(self.scope_id(scope)), name)

    def client_mapper(self, key: str) -> dict:
        client, name = key.split("/", 1)
        return self.mappers(self.admin.get_mappers_from_client(self.admin.get_client_id(client)), name)

    def client(self, key: str) -> dict:
        uuid = self.admin.get_client_id(key)
        rep = self.admin.get_client(uuid)
        attributes = rep.get("attributes") or {}
        return {**{f: rep[r] for f, r in CLIENT_FLAGS.items()},
                "confidential": not rep["publicClient"],
                "pkce": attributes.get("pkce.code.challenge.method"),
                "device_authorization_grant": attributes.get("oauth2.device.authorization.grant.enabled", "false") == "true",
                "redirect_uris": sorted(rep["redirectUris"]),
                "default_scopes": names(self.admin.get_client_default_client_scopes(uuid)),
                "optional_scopes": names(self.admin.get_client_optional_client_scopes(uuid))}

    def client_role(self, key: str) -> dict:
        client, name = key.split("/", 1)
        return {"description": self.admin.get_client_role(self.admin.get_client_id(client), name).get("description")}

    def registration_policy(self, key: str) -> dict:
        sub_type, provider = key.split("/", 1)
        comp = next(c for c in self.admin.get_components({"type": REGISTRATION})
                    if c.get("subType") == sub_type and c["providerId"] == provider)
        return {f"config.{k}": sorted(v) for k, v in comp["config"].items()}

    def client_profile(self, key: str) -> dict:
        p = next(p for p in self.get("/client-policies/profiles")["profiles"] if p["name"] == key)
        return steps(p["executors"], "executors", "executor")

    def client_policy(self, key: str) -> dict:
        p = next(p for p in self.get("/client-policies/policies")["policies"] if p["name"] == key)
        return {"enabled": p["enabled"], "profiles": p["profiles"], **steps(p["conditions"], "conditions", "condition")}

    def service_account_roles(self, key: str) -> dict:
        user = self.admin.get_client_service_account_user(self.admin.get_client_id(key))
        return {"roles": role_refs(self.get(f"/users/{user['id']}/role-mappings"), self.realm)}

    def scope_roles(self, key: str) -> dict:
        return {"roles": role_refs(self.get(f"/client-scopes/{self.scope_id(key)}/scope-mappings"), self.realm)}

    def user(self, key: str) -> dict:
        [user] = self.admin.get_users({"username": key, "exact": True})
        return {"enabled": user["enabled"], "roles": role_refs(self.get(f"/users/{user['id']}/role-mappings"), self.realm)}


KINDS = ("realm", "role", "client_scope", "scope_mapper", "scope_roles", "registration_policy", "client_profile",
         "client_policy", "client", "client_role", "client_mapper", "service_account_roles", "user")


@pytest.fixture(scope="module")
def applied(keycloak, tmp_path_factory):
    """EVERY_KIND planned (`plan --json`) and applied once, in a realm of its own: (creates, reader)."""
    realm = f"t-creates-{secrets.token_hex(3)}"
    path = tmp_path_factory.mktemp("creates") / "realm.yaml"
    path.write_text(EVERY_KIND.format(realm=realm))
    env = {**os.environ, "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user,
           "KCPROV_PASSWORD": keycloak.password, "NO_COLOR": "1"}
    plan = plan_json(path, env)
    assert {c["action"] for c in plan["changes"]} == {"create"}
    apply(path, env)
    try:
        assert kcprov("plan", str(path), "--detailed-exitcode", env=env).returncode == 0  # defaults are not managed
        yield plan["changes"], LiveReader(keycloak.admin(realm), realm)
    finally:
        keycloak.admin().delete_realm(realm)


@pytest.mark.parametrize("kind", KINDS)
def test_created_objects_hold_what_the_plan_showed(applied, kind):
    changes, reader = applied
    creates = [c for c in changes if c["kind"] == kind]
    assert creates, f"EVERY_KIND creates no {kind}"
    for change in creates:
        live = getattr(reader, "realm_" if kind == "realm" else kind)(change["key"])
        for diff in change["diffs"]:
            if diff["sensitive"]:
                continue  # the password: write-only
            address = f"{kind}.{change['key']}.{diff['field']}"
            assert diff["field"] in live, f"{address}: the test reads no such field"
            expected = diff["after"]
            if kind == "registration_policy":  # component config values are lists of strings
                expected = sorted(expected) if isinstance(expected, list) else [expected]
            assert live[diff["field"]] == expected, address


def test_the_plan_shows_defaults_for_every_kind_whose_create_fills_some_in(applied):
    changes, _ = applied
    defaulted = {c["kind"] for c in changes if any(d["default"] for d in c["diffs"])}
    assert defaulted == {"realm", "client_scope", "client", "client_policy", "user"}


def test_created_clients_are_oauth21_safe_and_say_so_in_the_plan(tmp_path, env, realm_name):
    path = tmp_path / "realm.yaml"
    path.write_text(EVERY_KIND.format(realm=realm_name))
    result = kcprov("plan", str(path), env=env)
    assert result.returncode == 0, result.stderr
    text = re.sub(r" +", " ", result.stdout)
    public_app = text[text.index("+ client.public-app"):text.index("+ client.service")]
    for line in ('direct_access_grants = false (default)', 'implicit_flow = false (default)',
                 'confidential = false (default)', 'pkce = "S256" (default)',
                 'default_scopes = ["acr", "basic", "email", "profile", "roles", "web-origins"] (default)',
                 'optional_scopes = ["mcp:tools"]\n'):
        assert line in public_app, line
    service = text[text.index("+ client.service"):]
    assert "confidential = true (default)" in service


def test_defaults_are_set_once_and_a_hand_change_is_left_alone(tmp_path, env, realm_name, keycloak):
    path = tmp_path / "realm.yaml"
    path.write_text(f"realm: {realm_name}\nclients:\n  - client_id: app\n    redirect_uris: [http://localhost/cb]\n")
    apply(path, env)
    admin = keycloak.admin(realm_name)
    uuid = admin.get_client_id("app")
    admin.update_client(uuid, {"clientId": "app", "directAccessGrantsEnabled": True})
    assert kcprov("plan", str(path), "--detailed-exitcode", env=env).returncode == 0


def test_an_update_keeps_what_the_file_does_not_write_of_a_client_policy(tmp_path, env, realm_name, keycloak):
    policy = ("client_policies:\n  profiles:\n    - name: p\n      executors:\n        - type: pkce-enforcer\n"
              "  policies:\n    - name: everyone\n{extra}      conditions:\n        - type: any-client\n      profiles: [p]\n")
    path = tmp_path / "realm.yaml"
    path.write_text(f"realm: {realm_name}\n" + policy.format(extra=""))
    apply(path, env)
    reader = LiveReader(keycloak.admin(realm_name), realm_name)
    doc = reader.get("/client-policies/policies")
    doc["policies"][0]["enabled"] = False  # switched off by hand
    keycloak.admin(realm_name).connection.raw_put(f"/admin/realms/{realm_name}/client-policies/policies",
                                                  data=json.dumps(doc))
    path.write_text(f"realm: {realm_name}\n" + policy.format(extra="      description: for all\n"))
    apply(path, env)
    assert reader.client_policy("everyone")["enabled"] is False
    assert kcprov("plan", str(path), "--detailed-exitcode", env=env).returncode == 0
