"""The realm rules of `kcprov audit` (kcprov.audit.realm_rules), offline: no Keycloak.

Every rule has realm files that trigger it and files that do not (CASES); the example realms give
nothing above low; the deliberately weakened realms in tests/realms/audit/ give exactly the
findings their `# audit: RULE` comments name, on those lines. Findings locate at the line the file
writes the object (or field) on, objects expanded from `mcp_servers:` inside their server entry.
"""

from __future__ import annotations

import re
from pathlib import Path
from textwrap import dedent

import pytest

from kcprov.audit import realm_rules
from kcprov.audit.locate import RealmSource
from kcprov.audit.realm_rules import RealmView, audit_realm
from kcprov.audit.rules import REALM_CHECKS, RULES, Location, Severity
from kcprov.spec.loader import load_realms_located
from kcprov.spec.models import RealmSpec
from kcprov.spec.yamldoc import parse

ROOT = Path(__file__).resolve().parent.parent
AUDIT_REALMS = sorted((ROOT / "tests" / "realms" / "audit").glob("*.yaml"))
OWN_RULES = [rule_id for rule_id, check in REALM_CHECKS.items() if check.__module__ == realm_rules.__name__]


def file_view(path: Path) -> RealmView:
    """The view `kcprov audit FILE` builds: the loaded file, positions in its lines before templating."""
    [(spec, locator)] = load_realms_located([path])
    return RealmView.from_file(path, spec, RealmSource(locator))


def findings_of(tmp_path: Path, text: str):
    path = tmp_path / "realm.yaml"
    path.write_text(dedent(text))
    return audit_realm(file_view(path))


def live_findings(text: str):
    """The rules on a live realm read back as this spec (what kcprov.audit.live hands over)."""
    return audit_realm(RealmView.from_live("r", RealmSpec.model_validate(parse(dedent(text)).data)))


SERVER = """
mcp_servers:
  - name: calc
    url: https://mcp.example.com/mcp
    scopes: {mcp:tools: Call the tools}
"""
PUBLIC = "clients: [{client_id: spa, redirect_uris: ['https://spa.example.com/cb']}]\n"
DCR_ON = "client_registration: {anonymous: {trusted_hosts: [localhost]}}\n"
PKCE_POLICY = """
client_policies:
  profiles: [{name: pkce, executors: [{type: pkce-enforcer, config: {auto-configure: true}}]}]
  policies: [{name: pkce, conditions: [{type: any-client}], profiles: [pkce]}]
"""


def server(*entries: str, extra: str = "") -> str:
    """SERVER with `clients:` entries (YAML flow items) and more server keys."""
    text = SERVER + "".join(f"    {line}\n" for line in extra.splitlines() if line)
    return text + ("    clients:\n" + "".join(f"      - {e}\n" for e in entries) if entries else "")


# rule id -> (files that trigger it, files that do not); each file is the text after `realm: t`
CASES: dict[str, tuple[list[str], list[str]]] = {
    "long-access-token": (
        ["settings: {access_token_lifespan: 1h}",
         server(extra="access_token_lifespan: 1d"),
         "clients: [{client_id: c, attributes: {access.token.lifespan: '3600'}}]"],
        ["", "settings: {access_token_lifespan: 15m}", server(extra="access_token_lifespan: 10m"),
         "clients: [{client_id: c, attributes: {access.token.lifespan: '600'}}]"]),
    "no-refresh-token-rotation": (
        [PUBLIC, PUBLIC + "settings: {revoke_refresh_token: true, refresh_token_max_reuse: 2}", DCR_ON],
        ["", PUBLIC + "settings: {revoke_refresh_token: true}",
         "clients: [{client_id: api, secret: s3cret-from-env, redirect_uris: ['https://a.example.com/cb']}]",
         server("dcr: {trusted_hosts: [localhost]}")]),
    "ssl-not-required": (
        ["settings: {ssl_required: none}"],
        ["", "settings: {ssl_required: external}"]),
    "pkce-not-enforced": (
        ["clients: [{client_id: spa, pkce: plain}]", DCR_ON],
        [PUBLIC, "clients: [{client_id: spa, pkce: plain}]\n" + PKCE_POLICY, DCR_ON + PKCE_POLICY,
         "clients: [{client_id: api, confidential: true, pkce: plain}]",
         server("dcr: {trusted_hosts: [localhost]}", "preset: vscode")]),
    "wildcard-redirect-uri": (
        ["clients: [{client_id: c, redirect_uris: ['https://a.example.com/*']}]",
         "clients: [{client_id: c, redirect_uris: ['*']}]"],
        ["clients: [{client_id: c, redirect_uris: ['https://a.example.com/cb']}]"]),
    "insecure-redirect-uri": (
        ["clients: [{client_id: c, redirect_uris: ['http://a.example.com/cb']}]",
         "clients: [{client_id: c, redirect_uris: ['HTTP://10.0.0.1/cb']}]",
         "clients: [{client_id: c, redirect_uris: ['http://[bad/cb', 'http://a.example.com:99999/cb']}]",
         "clients: [{client_id: c, redirect_uris: ['http://127.attacker.example/cb', 'http://localhost.example/cb']}]"],
        ["clients: [{client_id: c, redirect_uris: ['https://a.example.com/cb', 'http://127.0.0.1:33418/cb', "
         "'http://localhost/cb', 'http://[::1]/cb', 'http://127.0.0.2/cb', 'com.example.app:/cb']}]"]),
    "wildcard-web-origin": (
        ["clients: [{client_id: c, web_origins: ['*']}]"],
        ["clients: [{client_id: c, web_origins: ['+', 'https://a.example.com']}]"]),
    "direct-access-grants": (
        ["clients: [{client_id: c, direct_access_grants: true}]"],
        ["clients: [{client_id: c}]", "clients: [{client_id: c, direct_access_grants: true, enabled: false}]"]),
    "implicit-flow": (
        ["clients: [{client_id: c, implicit_flow: true}]"],
        ["clients: [{client_id: c, implicit_flow: false}]"]),
    "full-scope-mcp-client": (
        [server("client: {client_id: app, redirect_uris: ['https://app.example.com/cb']}")],
        [server("client: {client_id: app, full_scope_allowed: false}"),
         SERVER + "clients: [{client_id: svc, confidential: true, service_account: true, standard_flow: false, "
         "default_scopes: [mcp:tools]}]",
         "clients: [{client_id: app}]"]),
    "service-account-admin": (
        ["clients: [{client_id: bot, service_account: true, service_account_roles: {realm-management: [realm-admin]}}]",
         "clients: [{client_id: bot, service_account: true, service_account_roles: {realm-management: [manage-clients]}}]"],
        ["clients: [{client_id: bot, service_account: true, service_account_roles: "
         "{realm-management: [view-users, query-clients]}}]"]),
    "mcp-scope-default-type": (
        ["client_scopes: [{name: 'mcp:tools', type: default, mappers: [{name: a, audience: 'https://m.example.com'}]}]"],
        ["client_scopes: [{name: 'mcp:tools', type: optional, mappers: [{name: a, audience: 'https://m.example.com'}]}]",
         "client_scopes: [{name: reports, type: default}]", SERVER]),
    "mcp-scope-no-audience": (
        ["client_scopes: [{name: 'mcp:tools', type: optional}]"],
        ["client_scopes: [{name: 'mcp:tools', mappers: [{name: a, audience: 'https://m.example.com'}]}]",
         "client_scopes: [{name: reports}]", SERVER,
         server(extra="audience_binding: resource-indicators")]),
    "audience-mismatch": (
        [server(extra="extra_audiences: ['https://other.example.com']"),
         SERVER.replace("https://mcp.example.com/mcp", "https://MCP.example.com/mcp"),
         SERVER.replace("https://mcp.example.com/mcp", "https://mcp.example.com:443/mcp")],
        [SERVER, server(extra="extra_audiences: ['https://mcp.example.com', 'https://[bad', 'https://x:99999']"),
         SERVER.replace("https://mcp.example.com/mcp", "https://mcp.example.com:99999/mcp"),
         SERVER.replace("https://mcp.example.com/mcp", "https://mcp.example.com:8443/mcp")]),
    "generic-audience": (
        ["client_scopes: [{name: s, mappers: [{name: a, audience: api}]}]",
         "clients: [{client_id: c, mappers: [{name: a, client_audience: account}]}]",
         server(extra="extra_audiences: [api]")],
        ["client_scopes: [{name: s, mappers: [{name: a, audience: 'https://m.example.com/mcp'}]}]", SERVER]),
    "offline-access-scope": (
        [SERVER.replace("{mcp:tools: Call the tools}", "{mcp:tools: Call the tools, offline_access: Stay}")],
        [SERVER]),
    "open-dcr": (
        ["client_registration: {anonymous: {host_sending_request_must_match: false}}"],
        [DCR_ON, "client_registration: {anonymous: {max_clients: 5}}"]),
    "dcr-scopes-too-wide": (
        ["client_scopes: [{name: payroll}]\n"
         "client_registration: {anonymous: {trusted_hosts: [localhost], allowed_client_scopes: [payroll]}}",
         server("dcr: {trusted_hosts: [localhost], allowed_client_scopes: [microprofile-jwt]}")],
        [server("dcr: {trusted_hosts: [localhost], allowed_client_scopes: [openid, profile, email, basic]}"),
         "client_scopes: [{name: payroll}]\nclient_registration: {anonymous: {allowed_client_scopes: [payroll]}}"]),
    "dcr-where-cimd-works": (
        [server("dcr: {trusted_hosts: [localhost]}", "preset: vscode", "preset: claude-code")],
        [server("dcr: {trusted_hosts: [localhost]}", "preset: vscode", "preset: mcp-inspector"),
         server("preset: vscode", "preset: claude-code"), server("dcr: {trusted_hosts: [localhost]}")]),
    "cimd-insecure-http": (
        [server("cimd: {trusted_domains: [clients.example.com], allow_http: true}"),
         server("cimd: {allow_http: true}")],
        [server("cimd: {trusted_domains: [localhost, 127.0.0.1], allow_http: true}"),
         server("cimd: {trusted_domains: [clients.example.com]}")]),
    "idp-no-pkce": (
        ["identity_providers: [{alias: sso, oidc: {pkce: none}}]",
         "identity_providers: [{alias: sso, oidc: {pkce: plain}}]"],
        ["identity_providers: [{alias: sso, oidc: {issuer: 'https://sso.example.com'}}]",
         "identity_providers: [{alias: sso, oidc: {pkce: S256}}]"]),
    "idp-unsigned-tokens": (
        ["identity_providers: [{alias: sso, oidc: {jwks_url: 'https://sso.example.com/certs', validate_signature: false}}]",
         "identity_providers: [{alias: sso, oidc: {issuer: 'https://sso.example.com'}}]",
         "identity_providers: [{alias: corp, provider_id: saml, saml: {idp_entity_id: 'https://idp.example.com'}}]"],
        ["identity_providers: [{alias: sso, oidc: {jwks_url: 'https://sso.example.com/certs'}}]",
         "identity_providers: [{alias: corp, provider_id: saml, saml: {validate_signature: true, "
         "signing_certificate: MIIC}}]",
         "identity_providers: [{alias: gh, provider_id: github, oidc: {client_id: x}}]"]),
    "smtp-plaintext": (
        ["smtp: {host: smtp.example.com, from: a@example.com}"],
        ["smtp: {host: smtp.example.com, from: a@example.com, starttls: true}",
         "smtp: {host: smtp.example.com, from: a@example.com, ssl: true, port: 465}"]),
    "events-off": (
        [SERVER, SERVER + "events: {enabled: false}"],
        ["", SERVER + "events: {enabled: true}"]),
}
LIVE_CASES: list[tuple[str, str, bool]] = [
    # (rule, live realm read back, found?): what a file cannot write
    ("dcr-max-clients", "realm: r\nclient_registration: {anonymous: {trusted_hosts: [localhost]}}", True),
    ("dcr-max-clients", "realm: r\nclient_registration: {anonymous: {trusted_hosts: [localhost], max_clients: 200}}",
     False),
    ("dcr-max-clients", "realm: r\nclient_registration: {anonymous: {trusted_hosts: []}}", False),
    # a mapper someone added by hand to a scope kcprov made for the server (a file may not redefine it)
    ("audience-mismatch", "realm: r\n" + SERVER + "client_scopes: [{name: 'mcp:tools', mappers: "
     "[{name: other, audience: 'https://other.example.com/mcp'}]}]", True),
    ("audience-mismatch", "realm: r\n" + SERVER + "client_scopes: [{name: 'mcp:tools', mappers: "
     "[{name: other, audience: 'https://mcp.example.com/mcp'}]}]", False),
]


def test_every_realm_rule_has_cases_and_a_well_formed_rule():
    assert sorted(OWN_RULES) == sorted({*CASES, *(r for r, _, _ in LIVE_CASES)})
    for rule_id in OWN_RULES:
        rule = RULES[rule_id]
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule_id) and rule.scope == "realm"
        assert rule.title and rule.rests_on and rule.fix and "\n" not in rule.title + rule.fix


@pytest.mark.parametrize(("rule_id", "text"), [(r, t) for r, (bad, _) in CASES.items() for t in bad])
def test_rule_triggers(tmp_path, rule_id, text):
    found = [f for f in findings_of(tmp_path, "realm: t\n" + text) if f.rule.id == rule_id]
    assert found, f"{rule_id} not found"
    for finding in found:
        assert "\n" not in finding.message and finding.location.file.endswith("realm.yaml")


@pytest.mark.parametrize(("rule_id", "text"), [(r, t) for r, (_, good) in CASES.items() for t in good])
def test_rule_stays_quiet(tmp_path, rule_id, text):
    found = [f.message for f in findings_of(tmp_path, "realm: t\n" + text) if f.rule.id == rule_id]
    assert found == []


@pytest.mark.parametrize(("rule_id", "text", "expected"), LIVE_CASES)
def test_live_cases(rule_id, text, expected):
    assert any(f.rule.id == rule_id for f in live_findings(text)) is expected


def test_a_live_field_kcprov_would_create_but_keycloak_lacks_reads_as_absent():
    """A live client without PKCE exports like one with kcprov's S256 (the export leaves the field out);
    the live view's `absent` tells them apart. Likewise an identity provider's PKCE and signature check."""
    spec = RealmSpec.model_validate(parse("realm: r\n" + PUBLIC + "identity_providers: "
                                          "[{alias: sso, oidc: {jwks_url: 'https://sso.example.com/certs'}}]").data)

    def rules(absent=()):
        return {f.rule.id for f in audit_realm(RealmView.from_live("r", spec, absent=absent))}

    checked = {"pkce-not-enforced", "idp-no-pkce", "idp-unsigned-tokens"}
    assert rules() & checked == set()
    assert rules({("client", "spa", "pkce"), ("identity_provider", "sso", "pkce"),
                  ("identity_provider", "sso", "validate_signature")}) & checked == checked


def test_dcr_max_clients_is_silent_offline(tmp_path):
    """A file cannot remove the limit; left out, the realm keeps its own (200 on a new realm)."""
    assert not [f for f in findings_of(tmp_path, "realm: t\n" + DCR_ON) if f.rule.id == "dcr-max-clients"]


def test_unset_values_are_what_a_new_realm_gets(tmp_path):
    """Realm defaults (300 s tokens, SSL external) and kcprov's client create values (no password grant,
    no implicit flow, PKCE S256 on code-flow clients) give no finding."""
    assert findings_of(tmp_path, "realm: t\n" + PUBLIC + "settings: {revoke_refresh_token: true}") == []


@pytest.mark.parametrize("name", ["mcp-dev.yaml", "mcp-sso.yaml", "company-sso.yaml"])
def test_example_realms_give_nothing_above_low(name):
    findings = audit_realm(file_view(ROOT / "realms" / name))
    assert [(f.rule.id, f.message) for f in findings if f.rule.severity > Severity.LOW] == []


@pytest.mark.parametrize("path", AUDIT_REALMS, ids=lambda p: p.name)
def test_weakened_realm_gives_each_weakness_under_its_rule_at_its_line(path):
    expected = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if match := re.search(r"# audit: ([a-z0-9, -]+)$", line):
            expected |= {(number, rule.strip()) for rule in match[1].split(",")}
    found = {(f.location.line, f.rule.id) for f in audit_realm(file_view(path))}
    assert found == expected
    assert len(AUDIT_REALMS) >= 2


def test_weak_realm_covers_the_issue_weaknesses():
    rules = {f.rule.id for f in audit_realm(file_view(ROOT / "tests/realms/audit/weak.yaml"))}
    assert {"wildcard-redirect-uri", "long-access-token", "open-dcr"} <= rules


# ---------------------------------------------------------------- locations


LOCATED = """\
realm: t
clients:
  - client_id: web
    redirect_uris:
      - https://a.example.com/cb
      - https://a.example.com/*
mcp_servers:
  - name: calc
    url: https://mcp.example.com/mcp
    scopes:
      mcp:tools: Call the tools
    clients:
      - cimd: {trusted_domains: [clients.example.com], allow_http: true}
      - client:
          client_id: app
"""


def test_an_explicit_object_is_located_at_its_own_line(tmp_path):
    path = tmp_path / "realm.yaml"
    path.write_text(LOCATED)
    view = file_view(path)
    assert view.locate(("client", "web", "redirect_uris", 1)).line == 6
    assert view.locate(("client", "web")).line == 3
    assert view.locate(("client", "web", "not_written")).line == 3  # a default: at the object


def test_expanded_objects_are_located_in_their_server_entry(tmp_path):
    path = tmp_path / "realm.yaml"
    path.write_text(LOCATED)
    view = file_view(path)
    assert view.locate(("client_scope", "mcp:tools", "mappers", 0)).line == 11  # the scope under scopes:
    assert view.locate(("client_profile", "calc-cimd")).line == 13  # the cimd: entry
    assert view.locate(("client", "app", "full_scope_allowed")).line == 14  # the client: entry
    assert view.locate(("client", "calc-resource")).line == 8  # the server's - name: line
    assert view.locate(("client_policy", "mcp-pkce")).line == 8
    assert view.locate(("realm", None, "revoke_refresh_token")).line == 8  # a setting expansion supplies
    assert view.locate(("realm", None, "ssl_required")).line == 1  # neither written nor expanded: the realm


def test_findings_on_expanded_objects_point_into_the_server_entry(tmp_path):
    findings = {f.rule.id: f.location for f in findings_of(tmp_path, LOCATED)}
    assert findings["cimd-insecure-http"].line == 13
    assert findings["full-scope-mcp-client"].line == 14
    assert findings["wildcard-redirect-uri"] == Location(file=findings["wildcard-redirect-uri"].file, line=6, column=9)


def test_setting_findings_are_at_the_setting_line(tmp_path):
    findings = {f.rule.id: f.location.line for f in findings_of(tmp_path, "realm: t\nsettings:\n"
                                                                         "  ssl_required: none\n")}
    assert findings == {"ssl-not-required": 3}


def test_a_live_view_names_the_object():
    view = RealmView.from_live("prod", RealmSpec.model_validate({"realm": "prod"}))
    assert view.locate(("client", "web", "redirect_uris", 0)) == Location(realm="prod", resource="client 'web'")
    assert view.locate(("realm", None, "ssl_required")) == Location(realm="prod", resource="realm settings")
    assert str(view.locate(("mcp_server", "calc"))) == "realm 'prod' mcp server 'calc'"
