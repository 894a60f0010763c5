"""Identity providers and their mappers (issue 12), against the real Keycloak and as pure functions.

The company SSO is a second realm of the same Keycloak, made with kcprov from a plain realm
file (a confidential client `mcp-broker` whose redirect URI is the broker endpoint, a user).
A login through the broker is driven over HTTP, without a browser: the auth endpoint with
`kc_idp_hint` redirects to the SSO's authorization URL (with PKCE S256), the SSO's login form
is posted, and the broker endpoint exchanges the code with the client secret kcprov wrote,
so a wrong secret fails the login: that is how the secret's write-only semantics are checked.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from keycloak.exceptions import KeycloakError
from kindcontract import ROOT, check_kind, cli_env, kcprov, ok, planned

from kcprov.export.document import env_name
from kcprov.resources.identity_providers import (
    FINGERPRINT, IdentityProviderKind, fingerprint, fingerprint_matches, friendly_settings, mapper_shortcut, role_ref,
)
from kcprov.secret import Secret
from kcprov.spec.identity_providers import IdentityProvider, IdentityProviderMapper, idp_config, mapper_config
from kcprov.state import RawRealm

KINDS = ROOT / "tests" / "realms" / "kinds"
SSO_SECRET = "idp-test-sso-secret-4b8e1f"
ROTATED = "idp-test-rotated-secret-9c2d7a"
GITHUB_SECRET = "idp-test-github-secret-3e6f0b"
PASSWORD = "idp-test-password-51ac0e"
CALLBACK = "http://localhost:9/cb"


@pytest.fixture
def sso_realm(keycloak):
    """The company SSO's realm name; not made of the main realm's name, which the round trip replaces."""
    name = f"t-idp-sso-{secrets.token_hex(3)}"
    yield name
    try:
        keycloak.admin().delete_realm(name)
    except KeycloakError as exc:  # (tests/conftest.py's helper is not importable by name: tests/spec has a conftest too)
        if exc.response_code != 404:
            raise


def texts(keycloak, realm: str, sso: str) -> tuple[str, str]:
    """(main realm file with `realm: REALM`, SSO realm file) with the Keycloak URL and realm names filled in."""
    def fill(text: str) -> str:
        return text.replace("KC/realms/", f"{keycloak.url}/realms/").replace("SSO_REALM", sso)

    main = fill((KINDS / "identity_providers.yaml").read_text())
    sso_text = fill((KINDS / "identity_providers_sso.yaml").read_text()).replace("REALM", realm)
    return main, sso_text


def environment(keycloak, realm: str, sso_secret: str = SSO_SECRET, broker_secret: str | None = None) -> dict:
    """The CLI's environment; the secrets also under the names an export of `realm` references."""
    broker_secret = broker_secret or sso_secret
    return cli_env(keycloak, IDP_TEST_SSO_SECRET=broker_secret, IDP_TEST_GITHUB_SECRET=GITHUB_SECRET,
                   IDP_TEST_PASSWORD=PASSWORD,
                   **{env_name(realm, "identity provider", "company-sso"): broker_secret,
                      env_name(realm, "identity provider", "github"): GITHUB_SECRET})


def apply_text(tmp_path: Path, name: str, text: str, env: dict) -> Path:
    path = tmp_path / name
    path.write_text(text)
    ok(kcprov("apply", str(path), "--auto-approve", "--no-env", env=env, cwd=tmp_path),
       SSO_SECRET, ROTATED, GITHUB_SECRET, PASSWORD)
    return path


def apply_sso(tmp_path: Path, sso_text: str, sso: str, env: dict) -> Path:
    return apply_text(tmp_path, "sso.yaml", sso_text.replace("realm: REALM", f"realm: {sso}", 1), env)


def without_identity_providers(text: str) -> str:
    return text[:text.index("identity_providers:")]


def test_contract(tmp_path, keycloak, realm_name, second_realm_name, sso_realm):
    main, sso_text = texts(keycloak, realm_name, sso_realm)
    env = environment(keycloak, realm_name)
    apply_sso(tmp_path, sso_text, sso_realm, env)
    exported = check_kind(
        tmp_path, env, realm_name, second_realm_name, main,
        edit=lambda t: t.replace("display_name: Company SSO", "display_name: Company login"),
        edited=("update", "identity_provider", "company-sso"),
        remove=without_identity_providers,
        removed=[("delete", "identity_provider", a) for a in ("company-sso", "corp-saml", "github")],
        secrets=(SSO_SECRET, GITHUB_SECRET, PASSWORD),
    )
    for line in ("    sync_mode: force\n", "      client_id: mcp-broker\n", "      default_scopes: [openid, profile, email]\n",
                 "        hardcoded_role: mcp-user\n", "        hardcoded_group: /staff\n",
                 "          attribute: memberOf\n", "        type: oidc-username-idp-mapper\n",
                 "        type: github-user-attribute-mapper\n", "      name_id_format: email\n",
                 "    provider_id: github\n", "      guiOrder: \"3\"\n"):
        assert line in exported, line
    assert "          client: mcp-server\n          role: reader\n" in exported  # the client role, back from mcp-server.reader
    ref = env_name(realm_name, "identity provider", "company-sso")
    assert f'client_secret: "{{{{ env.{ref} }}}}"' in exported
    assert "pkce" not in exported and "validate_signature: true" not in exported  # what a create gives anyway
    assert keycloak.admin(realm_name).get_idps() == []


def test_secret_is_written_on_create_kept_by_updates_and_rotated(tmp_path, keycloak, realm_name, sso_realm):
    main, sso_text = texts(keycloak, realm_name, sso_realm)
    env = environment(keycloak, realm_name)
    apply_sso(tmp_path, sso_text, sso_realm, env)
    path = apply_text(tmp_path, "realm.yaml", main.replace("realm: REALM", f"realm: {realm_name}", 1), env)
    assert broker_login(keycloak.url, realm_name, sso_realm, "carol")

    user = keycloak.admin(realm_name).get_users({"username": "carol", "exact": True})[0]
    admin = keycloak.admin(realm_name)
    roles = {r["name"] for r in admin.get_realm_roles_of_user(user["id"])}
    assert "mcp-user" in roles and "mcp-admin" not in roles  # hardcoded_role; no department claim
    client = admin.get_client_id("mcp-server")
    assert [r["name"] for r in admin.get_client_roles_of_user(user["id"], client)] == ["reader"]
    assert {g["path"] for g in admin.get_user_groups(user["id"])} == {"/staff"}

    # an update of another field sends Keycloak's mask back: the stored secret stays
    path.write_text(path.read_text().replace("display_name: Company SSO", "display_name: Company login"))
    assert planned(path, env, SSO_SECRET) == [("update", "identity_provider", "company-sso")]
    apply_text(tmp_path, "realm.yaml", path.read_text(), env)
    assert broker_login(keycloak.url, realm_name, sso_realm, "carol")

    # the SSO rotates the secret: logins fail until the file's new secret is applied (one change, never shown)
    rotated = environment(keycloak, realm_name, ROTATED)
    apply_sso(tmp_path, sso_text, sso_realm, rotated)
    assert not broker_login(keycloak.url, realm_name, sso_realm, "carol")
    result = ok(kcprov("plan", str(path), env=rotated, cwd=tmp_path), ROTATED, SSO_SECRET)
    assert "client_secret = (sensitive) (changed)" in result.stdout
    assert planned(path, rotated, ROTATED) == [("update", "identity_provider", "company-sso")]
    apply_text(tmp_path, "realm.yaml", path.read_text(), rotated)
    assert planned(path, rotated, ROTATED) == []
    assert broker_login(keycloak.url, realm_name, sso_realm, "carol")
    rep = admin.get_idp("company-sso")
    assert rep["config"]["clientSecret"] == "**********"
    assert fingerprint_matches(ROTATED, rep["config"][FINGERPRINT])


def test_mapper_edit_and_removal(tmp_path, keycloak, realm_name, sso_realm):
    main, sso_text = texts(keycloak, realm_name, sso_realm)
    env = environment(keycloak, realm_name)
    path = apply_text(tmp_path, "realm.yaml", main.replace("realm: REALM", f"realm: {realm_name}", 1), env)
    path.write_text(path.read_text().replace("value: mcp-admins, role: mcp-admin}\n        sync_mode: force",
                                             "value: admins, role: mcp-admin}\n        sync_mode: import"))
    assert planned(path, env, SSO_SECRET) == [("update", "identity_provider_mapper", "company-sso/admins")]
    apply_text(tmp_path, "realm.yaml", path.read_text(), env)
    mapper = next(m for m in keycloak.admin(realm_name).get_idp_mappers("company-sso") if m["name"] == "admins")
    assert mapper["config"] == {"claim": "department", "claim.value": "admins", "role": "mcp-admin", "syncMode": "IMPORT"}
    path.write_text(path.read_text().replace("      - name: staff\n        hardcoded_group: /staff\n", ""))
    assert planned(path, env, SSO_SECRET) == [("delete", "identity_provider_mapper", "company-sso/staff")]


def test_provider_id_change_is_refused(tmp_path, keycloak, realm_name):
    """Keycloak answers 204 to a changed providerId and keeps the old one; kcprov says so instead."""
    env = cli_env(keycloak)
    text = f"realm: {realm_name}\nidentity_providers:\n  - alias: social\n    provider_id: github\n"
    apply_text(tmp_path, "realm.yaml", text, env)
    (tmp_path / "realm.yaml").write_text(text.replace("github", "gitlab"))
    result = kcprov("apply", "realm.yaml", "--auto-approve", "--no-env", env=env, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Keycloak cannot change it to gitlab" in result.stdout + result.stderr


def broker_login(url: str, realm: str, sso: str, username: str) -> bool:
    """Log in to `realm`'s client `app` through the company-sso broker over HTTP; True if it ends with a code.

    Checks on the way that `kc_idp_hint` sends the browser to the SSO's authorization URL as
    the broker's client, with PKCE S256 and the file's scopes.
    """
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    browser = Browser()
    resp = browser.go("GET", f"{url}/realms/{realm}/protocol/openid-connect/auth", params={
        "client_id": "app", "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid",
        "kc_idp_hint": "company-sso", "code_challenge": challenge, "code_challenge_method": "S256"})
    at_sso = [u for u in browser.seen if u.startswith(f"{url}/realms/{sso}/protocol/openid-connect/auth")]
    assert at_sso, browser.seen
    query = parse_qs(urlsplit(at_sso[0]).query)
    assert query["client_id"] == ["mcp-broker"] and query["code_challenge_method"] == ["S256"]
    assert query["scope"] == ["openid profile email"]
    action = html.unescape(re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', resp.text)[1])
    resp = browser.go("POST", action, data={"username": username, "password": PASSWORD})
    assert any(f"/realms/{realm}/broker/company-sso/endpoint" in u for u in browser.seen), browser.seen
    return resp.status_code in (302, 303) and "code" in parse_qs(urlsplit(resp.headers["location"]).query)


class Browser:
    """Follows Keycloak's redirects and keeps its cookies, as a browser would: Keycloak marks them Secure,
    which a browser sends to http://localhost and httpx's cookie jar does not."""

    def __init__(self) -> None:
        self.cookies: dict[tuple[str, str], str] = {}  # (name, path) -> value: each realm has its own
        self.seen: list[str] = []

    def go(self, method: str, target: str, **kwargs) -> httpx.Response:
        """The first answer that is not a redirect inside Keycloak (the redirect to the client's callback stops it)."""
        while True:
            path = urlsplit(target).path
            sent = "; ".join(f"{name}={v}" for (name, at), v in self.cookies.items() if path.startswith(at))
            resp = httpx.request(method, target, headers={"Cookie": sent} if sent else {}, timeout=30, **kwargs)
            for c in resp.cookies.jar:
                if c.value:
                    self.cookies[(c.name, c.path)] = c.value
                else:
                    self.cookies.pop((c.name, c.path), None)
            if resp.status_code not in (302, 303):
                return resp
            target = urljoin(target, resp.headers["location"])
            if target.startswith(CALLBACK):
                return resp
            self.seen.append(target)
            method, kwargs = "GET", {}


# ---------------------------------------------------------------- pure functions


def test_fingerprint_recognises_only_its_secret():
    stored = fingerprint("s3cret")
    assert fingerprint_matches("s3cret", stored)
    assert not fingerprint_matches("other", stored)
    assert fingerprint("s3cret") != stored  # salted: equal secrets of two providers do not show
    assert "s3cret" not in stored
    for garbage in ("", "scrypt:x", "md5:AAAA:BBBB", "scrypt:!!:AAAA"):
        assert not fingerprint_matches("s3cret", garbage)


def test_live_secret_equals_the_file_when_the_fingerprint_matches_or_there_is_none():
    kind = IdentityProviderKind()

    def live(secret_in_file: str, config: dict) -> Secret | None:
        raw = RawRealm("r", {"identityProviders": [{"alias": "sso", "providerId": "oidc", "config": config}]})
        desired = {kind.name: {"sso": {"client_secret": Secret(secret_in_file)}}}
        kind.read(None, raw, desired, {})  # no request: the client is never used
        return kind.live(raw)["sso"]["client_secret"]

    written = {"clientSecret": "**********", FINGERPRINT: fingerprint("a")}
    assert live("a", written) == Secret("a")
    assert live("b", written) != Secret("b")  # rotated in the file: a change
    assert live("a", {"clientSecret": "**********"}) == Secret("a")  # made by hand: nothing to compare with
    assert live("a", {}) is None  # no secret stored
    attrs = kind.live(RawRealm("r", {"identityProviders": [{"alias": "sso", "providerId": "oidc", "config": written}]}))
    assert not any(f.startswith("config.") and "ecret" in f for f in attrs["sso"])


@pytest.mark.parametrize(("provider", "mapper"), [
    ("oidc", {"hardcoded_role": "mcp-user"}),
    ("oidc", {"hardcoded_role": {"client": "mcp-server", "role": "reader"}}),
    ("saml", {"hardcoded_group": "/staff/mcp-admins"}),
    ("oidc", {"claim_to_role": {"claim": "department", "value": "it", "role": "mcp-admin"}}),
    ("saml", {"claim_to_role": {"attribute": "memberOf", "value": "it", "role": "mcp-admin"}}),
    ("keycloak-oidc", {"claim_to_group": {"claim": "department", "value": "it", "group": "/it"}}),
    ("saml", {"claim_to_group": {"attribute": "memberOf", "value": "it", "group": "/it"}}),
    ("oidc", {"attribute_importer": {"claim": "department", "user_attribute": "department"}}),
    ("saml", {"attribute_importer": {"attribute": "department", "user_attribute": "department"}}),
])
def test_each_shortcut_is_recognised_back(provider, mapper):
    mapper_type, config = mapper_config(IdentityProviderMapper(name="m", **mapper), provider)
    assert mapper_shortcut("m", mapper_type, config, provider, {("mcp-server", "reader")}) == mapper


def test_a_mapper_the_shortcut_does_not_say_exactly_stays_generic():
    config = {"claims": '[{"key":"a","value":"1"},{"key":"b","value":"2"}]', "are.claim.values.regex": "false",
              "group": "/g"}
    assert mapper_shortcut("m", "oidc-advanced-group-idp-mapper", config, "oidc", set()) is None
    assert mapper_shortcut("m", "oidc-role-idp-mapper", {"claim": "a", "claim.value": "1", "role": "r", "x": "y"},
                           "oidc", set()) is None
    assert mapper_config(IdentityProviderMapper(name="m", sync_mode="force", hardcoded_group="/g"), "oidc") == \
        ("oidc-hardcoded-group-idp-mapper", {"syncMode": "FORCE", "group": "/g"})


def test_role_ref_reads_client_roles_back():
    roles = {("mcp.server", "reader")}
    assert role_ref("mcp.server.reader", roles) == {"client": "mcp.server", "role": "reader"}
    assert role_ref("realm.role", roles) == "realm.role"


@pytest.mark.parametrize("entry", [
    {"alias": "a", "oidc": {"issuer": "https://sso", "client_id": "c", "client_auth_method": "client_secret_basic",
                            "default_scopes": ["openid", "email"], "pkce": "plain", "validate_signature": False,
                            "use_jwks_url": True, "jwks_url": "https://sso/certs", "disable_userinfo": True}},
    {"alias": "a", "oidc": {"pkce": "none"}},
    {"alias": "a", "provider_id": "saml", "saml": {
        "idp_entity_id": "https://idp", "sp_entity_id": "https://sp", "single_sign_on_url": "https://idp/sso",
        "name_id_format": "transient", "principal_type": "friendly_attribute", "principal_attribute": "mail",
        "want_assertions_signed": True, "validate_signature": True, "signing_certificate": "MIIC",
        "post_binding_logout": False}},
])
def test_friendly_settings_invert_idp_config(entry):
    idp = IdentityProvider.model_validate(entry)
    block = "saml" if idp.provider_id == "saml" else "oidc"
    config = idp_config(idp)
    assert friendly_settings(config, idp.provider_id) == entry[block]
    assert config == {}  # every key taken
