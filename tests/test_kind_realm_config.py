"""Required actions, the SMTP server and event settings (issue 12).

The contract (tests/kindcontract.py) for each kind against the real Keycloak (they are
never deleted: removing a section from the file plans nothing), and what they are for:
the SMTP password reaches the SMTP server (a stand-in that records logins) and is never
shown, LOGIN events are recorded, a required action the realm lacks is registered, a
provider or listener Keycloak lacks fails the plan. Pure functions are tested without it.
"""

from __future__ import annotations

import base64
import json
import re
import socketserver
import threading
from pathlib import Path

import httpx
import pytest
from kindcontract import ROOT, cli_env, check_kind, kcprov, ok, planned

from kcprov.export.document import env_name
from kcprov.resources.events import EventsKind
from kcprov.resources.required_actions import RequiredActionKind
from kcprov.resources.smtp import SmtpKind
from kcprov.secret import Secret
from kcprov.spec.models import RealmSpec
from kcprov.state import RawRealm

FILE = ROOT / "tests" / "realms" / "kinds" / "realm_config.yaml"
PASSWORD = "smtp-test-pw-5521-zz"
USER_PASSWORD = "events-user-pw-8812-yy"


def env_for(keycloak, realm: str) -> dict:
    """The CLI's environment: the file's password, and the one the export's reference names."""
    return cli_env(keycloak, REALM_CONFIG_SMTP_PASSWORD=PASSWORD, REALM_CONFIG_USER_PASSWORD=USER_PASSWORD,
                   **{env_name(realm, "smtp", "password"): PASSWORD})


def realm_file(tmp_path: Path, realm: str, text: str | None = None) -> Path:
    path = tmp_path / "realm.yaml"
    path.write_text((text or FILE.read_text()).replace("realm: REALM", f"realm: {realm}", 1))
    return path


def apply(path: Path, env: dict) -> str:
    return ok(kcprov("apply", str(path), "--auto-approve", "--no-env", env=env, cwd=path.parent), PASSWORD).stdout


def section_removed(name: str):
    def remove(text: str) -> str:
        return re.sub(rf"(?ms)^{name}:\n.*?(?=^\S|\Z)", "", text)
    return remove


CONTRACT = {
    "smtp": (lambda t: t.replace("from_display_name: MCP", "from_display_name: MCP servers"),
             lambda realm: ("update", "smtp", realm), "smtp"),
    "events": (lambda t: t.replace("types: [LOGIN, LOGIN_ERROR]", "types: [LOGIN, LOGIN_ERROR, LOGOUT]"),
               lambda realm: ("update", "events", realm), "events"),
    "required_action": (lambda t: t.replace("priority: 5", "priority: 7"),
                        lambda realm: ("update", "required_action", "CONFIGURE_TOTP"), "required_actions"),
}


@pytest.mark.parametrize("kind", sorted(CONTRACT))
def test_contract(kind, tmp_path, keycloak, realm_name, second_realm_name):
    edit, edited, section = CONTRACT[kind]
    exported = check_kind(
        tmp_path, env_for(keycloak, realm_name), realm_name, second_realm_name, FILE.read_text(),
        edit=edit, edited=edited(realm_name), remove=section_removed(section), removed=[], secrets=(PASSWORD,),
    )
    assert PASSWORD not in exported
    assert f'  password: "{{{{ env.{env_name(realm_name, "smtp", "password")} }}}}"\n' in exported
    assert "  - alias: CONFIGURE_TOTP\n    default_action: true\n" in exported
    assert "    config:\n      max_auth_age: \"600\"\n" in exported
    assert "  types: [LOGIN, LOGIN_ERROR" in exported and "  expiration: 604800\n" in exported
    assert "realm setting" not in exported and "required action '" not in exported
    # left out of the file, nothing changed in Keycloak
    admin = keycloak.admin(realm_name)
    assert admin.get_realm(realm_name)["smtpServer"]["host"] == "127.0.0.1"
    assert admin.get_realm(realm_name)["eventsEnabled"] is True


# ---------------------------------------------------------------- SMTP: the password


class _Recorder(socketserver.StreamRequestHandler):
    """Just enough SMTP (EHLO, AUTH LOGIN, MAIL, RCPT, DATA) to record who logged in with what."""

    logins: list[tuple[str, str]]

    def handle(self) -> None:
        say = lambda line: self.wfile.write(line.encode() + b"\r\n")  # noqa: E731
        say("220 recorder")
        while line := self.rfile.readline().decode().strip():
            verb = line.upper()
            if verb.startswith("EHLO"):
                self.wfile.write(b"250-recorder\r\n250 AUTH LOGIN\r\n")
            elif verb.startswith("AUTH LOGIN"):
                say("334 VXNlcm5hbWU6")
                user = base64.b64decode(self.rfile.readline().strip()).decode()
                say("334 UGFzc3dvcmQ6")
                self.server.logins.append((user, base64.b64decode(self.rfile.readline().strip()).decode()))
                say("235 ok")
            elif verb == "DATA":
                say("354 go on")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("250 ok")


@pytest.fixture
def smtp_server(free_ports):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", free_ports(1)[0]), _Recorder)
    server.logins = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_smtp_password_reaches_the_server_and_is_never_shown(tmp_path, keycloak, realm_name, smtp_server):
    env = env_for(keycloak, realm_name)
    port = smtp_server.server_address[1]
    text = FILE.read_text().replace("port: 2525", f"port: {port}")
    text += "users:\n  - username: bob\n    email: bob@example.com\n"
    path = realm_file(tmp_path, realm_name, text)
    plan = ok(kcprov("plan", str(path), env=env, cwd=tmp_path), PASSWORD).stdout
    assert "+ password          = (sensitive)" in plan
    ok(kcprov("plan", str(path), "--json", "-o", "plan.json", env=env, cwd=tmp_path), PASSWORD)
    assert PASSWORD not in (tmp_path / "plan.json").read_text()
    apply(tmp_path / "plan.json", env)

    admin = keycloak.admin(realm_name)
    bob = admin.get_user_id("bob")

    def mail() -> tuple[str, str]:
        admin.send_update_account(user_id=bob, payload=["UPDATE_PASSWORD"])
        return smtp_server.logins[-1]

    assert mail() == ("mailer", PASSWORD)
    assert admin.get_realm(realm_name)["smtpServer"]["password"] == "**********"

    # an update of another key keeps what Keycloak holds, and writes the file's password with it
    path.write_text(path.read_text().replace("reply_to: help@example.com", "reply_to: support@example.com"))
    assert planned(path, env, PASSWORD) == [("update", "smtp", realm_name)]
    out = apply(path, env)
    assert " password " not in out
    assert mail() == ("mailer", PASSWORD)
    assert admin.get_realm(realm_name)["smtpServer"]["replyTo"] == "support@example.com"

    # write-only: a password changed alone plans nothing (Keycloak cannot say what it holds)
    assert planned(path, {**env, "REALM_CONFIG_SMTP_PASSWORD": "another-pw-1"}, PASSWORD, "another-pw-1") == []
    export = ok(kcprov("export", "--realm", realm_name, "-o", "-", env=env, cwd=tmp_path), PASSWORD)
    assert "Keycloak does not return it" in export.stdout + export.stderr


def test_strict_secrets_refuses_an_inline_smtp_password(tmp_path, keycloak, realm_name):
    text = FILE.read_text().replace('"{{ env.REALM_CONFIG_SMTP_PASSWORD }}"', PASSWORD)
    path = realm_file(tmp_path, realm_name, text)
    result = kcprov("validate", str(path), "--strict-secrets", env=env_for(keycloak, realm_name), cwd=tmp_path)
    assert result.returncode == 1 and PASSWORD not in result.stdout + result.stderr
    assert "password is written inline in the file (--strict-secrets)" in result.stdout + result.stderr


# ---------------------------------------------------------------- events


def test_login_events_are_recorded(tmp_path, keycloak, realm_name):
    env = env_for(keycloak, realm_name)
    text = FILE.read_text() + (
        "clients:\n  - client_id: cli\n    confidential: false\n    direct_access_grants: true\n"
        "users:\n  - username: dev\n    email: dev@example.com\n    first_name: Dev\n    last_name: User\n"
        "    password: \"{{ env.REALM_CONFIG_USER_PASSWORD }}\"\n")
    apply(realm_file(tmp_path, realm_name, text), env)
    admin = keycloak.admin(realm_name)

    def login() -> httpx.Response:
        return httpx.post(f"{keycloak.url}/realms/{realm_name}/protocol/openid-connect/token",
                          data={"grant_type": "password", "client_id": "cli", "username": "dev", "password": USER_PASSWORD})

    # CONFIGURE_TOTP is a default action: the new user must set up OTP first (a LOGIN_ERROR)
    user = admin.get_user(admin.get_user_id("dev"))
    assert user["requiredActions"] == ["CONFIGURE_TOTP"]
    assert login().json()["error_description"] == "Account is not fully set up"
    admin.update_user(user["id"], {"requiredActions": []})
    resp = login()
    assert resp.status_code == 200, resp.text
    events = admin.get_events(query={"client": "cli"})
    assert sorted(e["type"] for e in events) == ["LOGIN", "LOGIN_ERROR"]
    config = admin.get_realm(realm_name)
    assert config["eventsExpiration"] == 604800 and config["adminEventsEnabled"] is True


def test_an_unknown_listener_fails_the_plan(tmp_path, keycloak, realm):
    env = env_for(keycloak, realm)
    path = realm_file(tmp_path, realm, FILE.read_text().replace("[jboss-logging]", "[jboss-loging]"))
    result = kcprov("plan", str(path), env=env, cwd=tmp_path)
    text = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in text
    assert "no event listener 'jboss-loging'" in text and "jboss-logging" in text


# ---------------------------------------------------------------- required actions


def test_a_required_action_the_realm_lacks_is_registered(tmp_path, keycloak, realm):
    admin = keycloak.admin(realm)
    admin.connection.raw_delete(f"admin/realms/{realm}/authentication/required-actions/TERMS_AND_CONDITIONS")
    env = env_for(keycloak, realm)
    text = "realm: REALM\nrequired_actions:\n  - alias: TERMS_AND_CONDITIONS\n    priority: 15\n"
    path = realm_file(tmp_path, realm, text)
    assert planned(path, env) == [("create", "required_action", "TERMS_AND_CONDITIONS")]
    apply(path, env)
    assert planned(path, env) == []
    action = admin.get_required_action_by_alias("TERMS_AND_CONDITIONS")
    assert (action["name"], action["priority"], action["enabled"]) == ("Terms and Conditions", 15, True)
    path.write_text(f"realm: {realm}\n")  # left out: kept as it is, never unregistered
    assert planned(path, env) == []


def test_an_unknown_required_action_fails_the_plan(tmp_path, keycloak, realm):
    path = realm_file(tmp_path, realm, "realm: REALM\nrequired_actions:\n  - alias: CONFIGURE_TOTPP\n")
    result = kcprov("plan", str(path), env=env_for(keycloak, realm), cwd=tmp_path)
    text = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in text
    assert "required action 'CONFIGURE_TOTPP': this Keycloak has no such provider" in text
    assert "CONFIGURE_TOTP," in text


# ---------------------------------------------------------------- pure functions


def spec(**parts) -> RealmSpec:
    return RealmSpec.model_validate({"realm": "r", **parts})


def test_smtp_desired_and_live_meet_in_the_file_shape():
    desired = SmtpKind().desired(spec(smtp={"host": "h", "port": 587, "from": "a@b.c", "starttls": True,
                                            "auth": True, "user": "u", "password": "pw"}))
    assert desired == {"r": {"host": "h", "port": 587, "from": "a@b.c", "starttls": True, "auth": True,
                             "user": "u", "password": Secret("pw")}}
    stored = {"host": "h", "port": "587", "from": "a@b.c", "starttls": "true", "auth": "true", "user": "u",
              "password": "**********", "debug": "true"}
    live = SmtpKind().live(RawRealm("r", {"smtpServer": stored}))["r"]
    assert {f: v for f, v in live.items() if v is not None} == {f: v for f, v in desired["r"].items() if f != "password"}
    assert SmtpKind().live(RawRealm("r", {"smtpServer": {}})) == {}


def test_events_compare_types_and_listeners_as_sets():
    desired = EventsKind().desired(spec(events={"types": ["LOGIN_ERROR", "LOGIN"], "listeners": ["email", "jboss-logging"],
                                                "admin_events": {"enabled": True}}))
    live = EventsKind().live(RawRealm("r", {"enabledEventTypes": ["LOGIN", "LOGIN_ERROR"],
                                            "eventsListeners": ["jboss-logging", "email"], "adminEventsEnabled": True}))
    assert all(live["r"][f] == v for f, v in desired["r"].items())


def test_required_action_config_keys_are_managed_one_by_one():
    desired = RequiredActionKind().desired(spec(required_actions=[{"alias": "UPDATE_PASSWORD", "config": {"max_auth_age": 600}}]))
    assert desired == {"UPDATE_PASSWORD": {"config.max_auth_age": "600"}}
    live = RequiredActionKind().live(RawRealm("r", {"requiredActions": [
        {"alias": "UPDATE_PASSWORD", "providerId": "UPDATE_PASSWORD", "enabled": True, "defaultAction": False,
         "priority": 57, "config": {"max_auth_age": "600", "other": "x"}}]}))
    assert live["UPDATE_PASSWORD"]["config.max_auth_age"] == "600" and live["UPDATE_PASSWORD"]["priority"] == 57
