"""Authentication flows, flow bindings and client flow overrides against the real Keycloak.

The must-show of issue 12: a flow changes in place. Making one execution REQUIRED is
one update of the flow, and the flow (and every execution the edit does not touch)
keeps its id; adding, removing and reordering executions and sub-flows converges the
same way, each time with an empty second plan.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path

import httpx
import pytest
from kindcontract import check_kind, cli_env, kcprov, ok, planned, round_trip

from kcprov.apply import apply_plan
from kcprov.connection import ConnectionSettings
from kcprov.keycloak import KeycloakClient, seg
from kcprov.resources import KINDS
from kcprov.resources.flows import execution_tree, priorities, step_names
from kcprov.spec import load_realm
from kcprov.workflow import plan_realm

KINDS_DIR = Path(__file__).parent / "realms" / "kinds"
FLOWS = (KINDS_DIR / "flows.yaml").read_text()
BINDINGS = (KINDS_DIR / "flows-bindings.yaml").read_text()
OTP = "              - authenticator: auth-otp-form\n                requirement: DISABLED\n"


# ---------------------------------------------------------------- pure parts


def test_priorities_keep_what_already_sorts_right():
    assert priorities(["a", "b", "c"], {"a": 10, "b": 20, "c": 30}) == {"a": 10, "b": 20, "c": 30}
    # one new step in front, one at the end: only they get priorities
    assert priorities(["n", "a", "b", "m"], {"a": 10, "b": 20}) == {"n": 5, "a": 10, "b": 20, "m": 30}
    # a step moved to the front: the others keep theirs
    assert priorities(["c", "a", "b"], {"a": 10, "b": 20, "c": 30}) == {"c": 5, "a": 10, "b": 20}
    # no room between 0 and 1 (executions posted without a priority): everything is renumbered
    assert priorities(["a", "n", "b"], {"a": 0, "b": 1}) == {"a": 10, "n": 20, "b": 30}
    assert priorities([], {}) == {}


def test_step_names_number_a_repeated_authenticator():
    assert step_names(["x", "flow:f", "x", "x"]) == ["x", "flow:f", "x#2", "x#3"]


def test_execution_tree_follows_levels():
    infos = [
        {"id": "1", "level": 0, "providerId": "auth-cookie"},
        {"id": "2", "level": 0, "authenticationFlow": True, "displayName": "sub"},
        {"id": "3", "level": 1, "authenticationFlow": True, "displayName": "subsub"},
        {"id": "4", "level": 2, "providerId": "auth-otp-form"},
        {"id": "5", "level": 1, "providerId": "auth-username-password-form"},
        {"id": "6", "level": 0, "providerId": "auth-spnego"},
    ]
    tree = execution_tree(infos, "top")
    assert {k: [i["id"] for i in v] for k, v in tree.items()} == {"top": ["1", "2", "6"], "sub": ["3", "5"], "subsub": ["4"]}


# ---------------------------------------------------------------- against Keycloak


@pytest.fixture
def client(keycloak) -> KeycloakClient:
    return KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user, password=keycloak.password))


class Realm:
    """A realm file applied and planned in process, as `kcprov apply` does."""

    def __init__(self, client: KeycloakClient, realm: str, tmp_path: Path):
        self.client, self.realm, self.path = client, realm, tmp_path / "realm.yaml"

    def write(self, text: str) -> None:
        self.path.write_text(text.replace("realm: REALM", f"realm: {self.realm}", 1))

    def plan(self):
        return plan_realm(self.client, load_realm(self.path, {}), str(self.path))

    def apply(self) -> int:
        """Apply the file; the requests the apply made."""
        run = self.plan()
        self.client.requests = 0
        result = apply_plan(self.client, run.plan, run.live, run.desired, KINDS)
        assert result.ok, [str(e) for e in result.errors]
        assert self.plan().plan.empty, "the second plan is not empty"
        return self.client.requests

    def changes(self) -> list[tuple[str, str, str]]:
        return [(c.action, c.kind, c.key) for c in self.plan().plan.changes]

    def get(self, path: str, **params):
        return self.client.get(f"/admin/realms/{seg(self.realm)}{path}", "test", **params)

    def flow_ids(self) -> dict[str, str]:
        """Every flow's id by alias, sub-flows included (from the partial export)."""
        export = self.client.realm_export(self.realm)
        return {f["alias"]: f["id"] for f in export["authenticationFlows"]}

    def executions(self, alias: str) -> list[dict]:
        return self.get(f"/authentication/flows/{seg(alias)}/executions")


def test_contract(tmp_path, keycloak, realm_name, second_realm_name):
    check_kind(
        tmp_path, cli_env(keycloak), realm_name, second_realm_name, FLOWS,
        edit=lambda text: text.replace(OTP, OTP.replace("DISABLED", "REQUIRED")),
        edited=("update", "authentication_flow", "browser-with-otp"),
        remove=lambda text: text.split("authentication_flows:")[0],
        removed=[("delete", "authentication_flow", "browser-with-otp"),
                 ("delete", "authentication_flow", "signed-jwt-clients")],
    )


def test_one_requirement_changes_in_place(tmp_path, client, realm_name):
    realm = Realm(client, realm_name, tmp_path)
    realm.write(FLOWS)
    realm.apply()
    ids_before = realm.flow_ids()
    executions_before = {e["id"] for e in realm.executions("browser-with-otp")}

    realm.write(FLOWS.replace(OTP, OTP.replace("DISABLED", "REQUIRED")))
    plan = realm.plan().plan
    assert [(c.action, c.key) for c in plan.changes] == [("update", "browser-with-otp")]
    [diff] = plan.changes[0].diffs
    assert diff.field == "flow:browser-with-otp forms/flow:browser-with-otp conditional otp/auth-otp-form.requirement"
    assert (diff.before, diff.after) == ("DISABLED", "REQUIRED")
    in_place = realm.apply()

    assert realm.flow_ids() == ids_before  # no flow or sub-flow was re-created
    after = realm.executions("browser-with-otp")
    assert {e["id"] for e in after} == executions_before
    assert next(e for e in after if e.get("providerId") == "auth-otp-form")["requirement"] == "REQUIRED"

    # the flow's part of that apply: one GET of its executions and one PUT (a realm setting's edit costs one PUT)
    realm.write(FLOWS.replace(OTP, OTP.replace("DISABLED", "REQUIRED")).replace(
        "realm: REALM", "realm: REALM\ndisplay_name: Flows", 1))
    assert in_place - realm.apply() == 1


EXTRA = """      - flow: browser-with-otp extra
        requirement: DISABLED
        executions: []
"""
SPNEGO = "      - authenticator: auth-spnego\n        requirement: DISABLED\n"
COOKIE = "      - authenticator: auth-cookie\n        requirement: ALTERNATIVE\n"
FORMS = "      - flow: browser-with-otp forms\n"
# each edit of the file, made in turn: (what, new text from the previous one)
EDITS = [
    ("an execution added in front", lambda t: t.replace(COOKIE, SPNEGO + COOKIE)),
    ("two executions swapped", lambda t: t.replace(SPNEGO + COOKIE, COOKIE + SPNEGO)),
    ("an execution removed", lambda t: t.replace(SPNEGO, "")),
    ("a sub-flow added at the end", lambda t: t.replace("  - alias: signed-jwt-clients", EXTRA + "  - alias: signed-jwt-clients")),
    ("a sub-flow moved up", lambda t: t.replace(EXTRA, "").replace(FORMS, EXTRA + FORMS)),
    ("an execution added in a new-born spot of a sub-flow",
     lambda t: t.replace("        executions: []\n", "        executions:\n          - authenticator: auth-otp-form\n"
                                                    "            requirement: REQUIRED\n")),
    ("a sub-flow's type", lambda t: t.replace("      - flow: browser-with-otp extra\n",
                                               "      - flow: browser-with-otp extra\n        type: form-flow\n")
     .replace("        executions:\n          - authenticator: auth-otp-form\n            requirement: REQUIRED\n",
              "        executions: []\n")),
    ("a sub-flow's description", lambda t: t.replace("Username, password and OTP", "Password, then OTP if set up")),
    ("a config value", lambda t: t.replace("defaultProvider: company-sso", "defaultProvider: other-sso")),
    ("a config alias", lambda t: t.replace("alias: to-sso,", "alias: to-other-sso,")),
    ("a sub-flow removed", lambda t: t.replace("      - flow: browser-with-otp extra\n        type: form-flow\n"
                                                "        requirement: DISABLED\n        executions: []\n", "")),
]


def test_structure_converges_in_place(tmp_path, client, realm_name):
    realm = Realm(client, realm_name, tmp_path)
    text = FLOWS
    realm.write(text)
    realm.apply()
    flow_id = realm.flow_ids()["browser-with-otp"]
    password = next(e["id"] for e in realm.executions("browser-with-otp")
                    if e.get("providerId") == "auth-username-password-form")
    for what, edit in EDITS:
        edited = edit(text)
        assert edited != text, what
        text = edited
        realm.write(text)
        assert realm.changes() == [("update", "authentication_flow", "browser-with-otp")], what
        realm.apply()  # the second plan is empty: Keycloak holds the file's order, requirements and configs
        assert realm.flow_ids()["browser-with-otp"] == flow_id, what
        assert password in {e["id"] for e in realm.executions("browser-with-otp")}, what
    configs = {c["alias"]: c["config"] for c in client.realm_export(realm_name)["authenticatorConfig"]}
    assert configs["to-other-sso"] == {"defaultProvider": "other-sso"} and "to-sso" not in configs
    assert "browser-with-otp extra" not in realm.flow_ids()  # the removed sub-flow is gone, not orphaned


def test_in_sync_plan_costs_no_extra_request(tmp_path, client, realm_name):
    realm = Realm(client, realm_name, tmp_path)
    realm.write(BINDINGS)
    realm.apply()
    client.requests = 0
    assert realm.plan().plan.empty
    with_flows = client.requests
    realm.write("realm: REALM\n")
    client.requests = 0
    realm.plan()
    assert with_flows == client.requests


def test_bindings_overrides_and_back(tmp_path, keycloak, client, realm_name, second_realm_name):
    realm = Realm(client, realm_name, tmp_path)
    realm.write(BINDINGS)
    realm.apply()
    rep = realm.get("")
    assert (rep["browserFlow"], rep["registrationFlow"], rep["clientAuthenticationFlow"]) == (
        "password-only", "short-registration", "jwt-clients")
    assert rep["directGrantFlow"] == "direct grant"  # left out: kept
    [app] = realm.get("/clients", clientId="app")
    assert app["authenticationFlowBindingOverrides"] == {"browser": realm.flow_ids()["otp-always"]}

    env = cli_env(keycloak)
    work = tmp_path / "trip"
    work.mkdir()
    exported = round_trip(work, env, realm_name, second_realm_name)
    assert "flow_bindings:" in exported and "authentication_flow_overrides:" in exported
    footer = exported.partition("\n# Not exported:")[2]
    assert "authentication flow" not in footer and "authenticator config" not in footer

    # a changed built-in flow is listed by an export, and not planned
    [spnego] = [e for e in realm.executions("browser") if e.get("providerId") == "auth-spnego"]
    client.put(f"/admin/realms/{seg(realm_name)}/authentication/flows/browser/executions",
               {**spnego, "requirement": "ALTERNATIVE"}, "test")
    assert realm.changes() == []
    ok(kcprov("export", "--realm", realm_name, "-o", "changed.yaml", env=env, cwd=work))
    assert "authentication flow 'browser': a built-in flow, changed here" in (work / "changed.yaml").read_text()

    back = BINDINGS.split("authentication_flows:")[0] + (
        "flow_bindings: {browser: browser, registration: registration, client_authentication: clients}\n"
        "clients:\n  - client_id: app\n    redirect_uris: [http://localhost:3000/callback]\n"
        "    authentication_flow_overrides: {browser: ''}\n")
    realm.write(back)
    assert sorted(realm.changes()) == sorted([
        ("update", "flow_bindings", realm_name), ("update", "client", "app"),
        *[("delete", "authentication_flow", a) for a in ("password-only", "otp-always", "short-registration",
                                                          "jwt-clients")]])
    realm.apply()  # bindings and overrides move back before the flows go (Keycloak answers 500 otherwise)
    rep = realm.get("")
    assert (rep["browserFlow"], rep["registrationFlow"], rep["clientAuthenticationFlow"]) == (
        "browser", "registration", "clients")
    [app] = realm.get("/clients", clientId="app")
    assert not app.get("authenticationFlowBindingOverrides")
    assert planned(realm.path, env) == []


def test_a_flow_still_bound_is_not_deleted(tmp_path, client, realm_name):
    """The realm binds the flow by hand; the file drops it: a clear error instead of Keycloak's 500."""
    realm = Realm(client, realm_name, tmp_path)
    realm.write(FLOWS)
    realm.apply()
    client.put(f"/admin/realms/{seg(realm_name)}", {"browserFlow": "browser-with-otp"}, "test")
    realm.write("realm: REALM\n")
    run = realm.plan()
    result = apply_plan(client, run.plan, run.live, run.desired, KINDS)
    assert not result.ok
    [(change, error)] = result.failed
    assert change.key == "browser-with-otp"
    assert "is still the realm's browser flow" in str(error) and "flow_bindings" in error.hint
    assert "browser-with-otp" in realm.flow_ids()


LOGIN_REALM = """realm: REALM
authentication_flows:
  - alias: password-form
    executions:
      - authenticator: auth-username-password-form
        requirement: REQUIRED
  - alias: nobody-passes
    executions:
      - authenticator: auth-username-password-form
        requirement: REQUIRED
      - authenticator: deny-access-authenticator
        requirement: REQUIRED
flow_bindings: {browser: password-form}
clients:
  - client_id: open
    redirect_uris: [http://127.0.0.1:9/callback]
  - client_id: closed
    redirect_uris: [http://127.0.0.1:9/callback]
    authentication_flow_overrides: {browser: nobody-passes}
users:
  - username: alice
    password: flows-e2e-password-1
    email: alice@example.com
    email_verified: true
    first_name: Alice
    last_name: Example
"""


def log_in(keycloak, realm: str, client_id: str) -> httpx.Response:
    """Keycloak's login page for `client_id`, filled in as alice; the answer to posting it."""
    verifier = "v" * 43
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"client_id": client_id, "redirect_uri": "http://127.0.0.1:9/callback", "response_type": "code",
              "scope": "openid", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"}
    with httpx.Client(timeout=30) as http:  # follows nothing: the answer to the login form is what counts
        page = http.get(f"{keycloak.url}/realms/{realm}/protocol/openid-connect/auth", params=params)
        assert page.status_code == 200, page.text[:300]
        form = re.search(r'<form[^>]*id="kc-form-login"[^>]*>', page.text)
        action = html.unescape(re.search(r'action="([^"]+)"', form.group(0)).group(1))
        cookies = {c.split("=", 1)[0]: c.split("=", 1)[1].split(";", 1)[0] for c in page.headers.get_list("set-cookie")}
        return http.post(action, data={"username": "alice", "password": "flows-e2e-password-1"},
                         headers={"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})


def test_login_goes_through_the_bound_flow_and_the_clients_override(tmp_path, keycloak, client, realm_name):
    """A real login: the realm's browser flow (bound to a custom flow) lets alice in; the client whose
    override names a flow ending in deny-access refuses her with the same password."""
    realm = Realm(client, realm_name, tmp_path)
    realm.write(LOGIN_REALM)
    realm.apply()
    let_in = log_in(keycloak, realm_name, "open")
    assert let_in.status_code == 302 and "code=" in let_in.headers["location"], let_in.text[:300]
    refused = log_in(keycloak, realm_name, "closed")
    assert "code=" not in refused.headers.get("location", ""), refused.text[:300]
    assert "Access denied" in refused.text, refused.text[:300]


def test_copies_of_builtin_flows_round_trip(tmp_path, keycloak, client, realm, second_realm_name):
    """Flows copied in the admin console (four levels of sub-flows, conditions, configs) export as a file
    that plans empty against the realm and makes the same flows in a new one."""
    for builtin, copy in (("browser", "my browser"), ("first broker login", "my first broker login")):
        client.post(f"/admin/realms/{seg(realm)}/authentication/flows/{seg(builtin)}/copy", {"newName": copy}, "test")
    exported = round_trip(tmp_path, cli_env(keycloak), realm, second_realm_name)
    assert "  - alias: my browser\n" in exported and "  - alias: my first broker login\n" in exported
    assert "alias: my first broker login review profile config" in exported
    assert "authentication flow" not in exported.partition("\n# Not exported:")[2]


RECAPTCHA = """realm: REALM
authentication_flows:
  - alias: captcha-registration
    executions:
      - flow: captcha-registration form
        type: form-flow
        requirement: REQUIRED
        executions:
          - authenticator: registration-user-creation
            requirement: REQUIRED
          - authenticator: registration-password-action
            requirement: REQUIRED
          - authenticator: registration-recaptcha-action
            requirement: DISABLED
            config:
              alias: captcha
              site.key: SITE-KEY
              secret.key: "{{ env.FLOWS_TEST_CAPTCHA_SECRET }}"
"""
CAPTCHA_SECRET = "captcha-secret-5150-qqq"


def test_a_secret_config_value_is_never_shown_nor_read_back(tmp_path, keycloak, realm_name):
    """reCAPTCHA's secret.key: Keycloak answers `**********` for it, so kcprov writes it and never compares it;
    plans, output and exports never hold it."""
    env = {**cli_env(keycloak), "FLOWS_TEST_CAPTCHA_SECRET": CAPTCHA_SECRET}
    path = tmp_path / "realm.yaml"
    path.write_text(RECAPTCHA.replace("REALM", realm_name))
    shown = ok(kcprov("plan", str(path), env=env, cwd=tmp_path), CAPTCHA_SECRET).stdout
    assert "secret.key" in shown and "(sensitive)" in shown
    ok(kcprov("apply", str(path), "--auto-approve", "--no-env", env=env, cwd=tmp_path), CAPTCHA_SECRET)
    assert planned(path, env, CAPTCHA_SECRET) == []
    path.write_text(path.read_text().replace("SITE-KEY", "OTHER-SITE-KEY"))
    assert planned(path, env, CAPTCHA_SECRET) == [("update", "authentication_flow", "captcha-registration")]
    ok(kcprov("apply", str(path), "--auto-approve", "--no-env", env=env, cwd=tmp_path), CAPTCHA_SECRET)
    assert planned(path, env, CAPTCHA_SECRET) == []
    ok(kcprov("export", "--realm", realm_name, "-o", "out.yaml", env=env, cwd=tmp_path), CAPTCHA_SECRET)
    exported = (tmp_path / "out.yaml").read_text()
    assert "site.key: OTHER-SITE-KEY" in exported and "**********" not in exported and CAPTCHA_SECRET not in exported
    assert "secret.key: Keycloak does not return secret config values" in exported
