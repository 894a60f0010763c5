"""`kcprov audit --realm` (kcprov.audit.live): a live realm audited like its file, plus the server's facts.

Against the real Keycloak: the reference realm applied with kcprov gives nothing above low; the
deliberately weakened realm (tests/realms/audit/weak.yaml) applied gives its weaknesses under the
rule ids the offline audit of the file gives; a live audit costs the same requests with 10 clients
as with 50. The live-only rules (version, features, admin realm, frontend URL) are pure functions of
the view and the server's `/admin/serverinfo`, tested with fake answers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

from kcprov.apply import apply_plan
from kcprov.audit.live import LiveView, before, insecure_http, read_live_view, server_facts, version_tuple
from kcprov.audit.realm_rules import RealmView, audit_realm
from kcprov.audit.rules import RULES, Location, Severity
from kcprov.connection import settings_from_environment
from kcprov.keycloak import KeycloakClient
from kcprov.resources import KINDS
from kcprov.spec import load_realm
from kcprov.spec.models import Client, RealmSpec
from kcprov.workflow import plan_realm
from kindcontract import cli_env, kcprov

ROOT = Path(__file__).resolve().parents[1]
MCP_DEV = ROOT / "realms" / "mcp-dev.yaml"
WEAK = ROOT / "tests" / "realms" / "audit" / "weak.yaml"
LIVE_RULES = {rule_id for rule_id, rule in RULES.items() if rule.scope == "live"}


# ---------------------------------------------------------------- against Keycloak


@pytest.fixture
def client(kc_env) -> KeycloakClient:
    return KeycloakClient(settings_from_environment())


def apply_file(client: KeycloakClient, spec: RealmSpec) -> None:
    run = plan_realm(client, spec, "<test>")
    result = apply_plan(client, run.plan, run.live, run.desired, KINDS)
    assert result.ok, [str(e) for e in result.errors]


def renamed(path: Path, realm: str) -> RealmSpec:
    return load_realm(path).model_copy(update={"realm": realm})


def rule_ids(findings) -> set[str]:
    return {f.rule.id for f in findings}


def audit_cli(keycloak, realm: str, tmp_path: Path) -> tuple[int, dict]:
    """`kcprov audit --realm REALM --json` as a user runs it: exit code and document."""
    result = kcprov("audit", "--realm", realm, "--json", env=cli_env(keycloak), cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_reference_realm_live_gives_nothing_above_low(client, keycloak, realm_name, tmp_path):
    apply_file(client, renamed(MCP_DEV, realm_name))
    view = read_live_view(client, realm_name)
    info = client.server_info()
    assert view.live and view.keycloak_version == info["systemInfo"]["version"]
    assert {s.name for s in view.spec.mcp_servers} == {"calculator"}  # audited as a server, not primitives
    assert view.setting("access_token_lifespan") == 300 and view.setting("ssl_required") == "external"
    findings = audit_realm(view)
    assert [f for f in findings if f.rule.severity > Severity.LOW] == []
    for f in findings:
        assert f.location.realm == realm_name and f.location.file is None
    enabled = {f["name"] for f in info["features"] if f.get("enabled")}
    if "CIMD" in enabled:  # the test Keycloak runs with cimd and resource-indicators (experimental in 26.7)
        cimd = [f for f in findings if f.rule.id == "experimental-feature" and "feature cimd" in f.message]
        assert len(cimd) == 1 and "calculator-cimd" in cimd[0].message
    code, doc = audit_cli(keycloak, realm_name, tmp_path)
    assert code == 0 and {f["rule"] for f in doc["findings"]} == rule_ids(findings)
    assert LIVE_RULES <= {r["id"] for r in doc["rules"]}


def test_weakened_realm_live_gives_the_offline_rule_ids(client, keycloak, realm_name, tmp_path):
    spec = renamed(WEAK, realm_name)
    offline = rule_ids(audit_realm(RealmView.from_file(WEAK, spec, lambda path: (1, 1))))
    assert {"wildcard-redirect-uri", "long-access-token", "open-dcr", "ssl-not-required"} <= offline
    apply_file(client, spec)
    # one weakness only an operator's hand makes: the issuer moved to a public plain-http URL
    keycloak.admin().update_realm(realm_name, {"attributes": {"frontendUrl": "http://kc.example.com"}})

    findings = audit_realm(read_live_view(client, realm_name))
    live = rule_ids(findings)
    assert offline <= live, sorted(offline - live)  # offline_access made a server scope: its mappers too
    assert live - offline <= LIVE_RULES, sorted(live - offline - LIVE_RULES)
    assert "frontend-url-http" in live
    by_rule = {(f.rule.id, str(f.location)) for f in findings}
    assert ("wildcard-redirect-uri", f"realm '{realm_name}' client 'web-app'") in by_rule
    assert ("long-access-token", f"realm '{realm_name}' realm settings") in by_rule
    assert ("open-dcr", f"realm '{realm_name}' client registration 'anonymous'") in by_rule
    code, doc = audit_cli(keycloak, realm_name, tmp_path)
    assert code == 3 and {f["rule"] for f in doc["findings"]} == live
    assert {"realm": realm_name, "resource": "client 'web-app'"} in [f["location"] for f in doc["findings"]]


def test_registration_without_trusted_hosts_policy_is_open(client, keycloak, realm):
    """A realm whose Trusted Hosts policy was deleted restricts no host: open-dcr, though nothing is 'false'."""
    admin = keycloak.admin(realm)
    policy = next(c for c in admin.get_components({"type": "org.keycloak.services.clientregistration.policy."
                                                            "ClientRegistrationPolicy"})
                  if c["providerId"] == "trusted-hosts" and c["subType"] == "anonymous")
    assert "open-dcr" not in rule_ids(audit_realm(read_live_view(client, realm)))
    assert register(keycloak, realm) == 403  # a new realm: no trusted host, the sender must be one
    admin.delete_component(policy["id"])
    assert "open-dcr" in rule_ids(audit_realm(read_live_view(client, realm)))
    assert register(keycloak, realm) == 201  # Keycloak's fact behind it: now anyone registers anything


def test_a_public_client_made_without_pkce_is_found_live(client, keycloak, realm):
    """Its export has no `pkce` key, which a file reads as kcprov's S256 default: live, it reads as absent."""
    admin = keycloak.admin(realm)
    admin.create_client({"clientId": "spa", "publicClient": True, "standardFlowEnabled": True,
                         "redirectUris": ["https://spa.example.com/cb"]})
    found = [f for f in audit_realm(read_live_view(client, realm)) if f.rule.id == "pkce-not-enforced"]
    assert [f.location.resource for f in found] == ["client 'spa'"]
    admin.update_client(admin.get_client_id("spa"), {"attributes": {"pkce.code.challenge.method": "S256"}})
    assert "pkce-not-enforced" not in rule_ids(audit_realm(read_live_view(client, realm)))


def register(keycloak, realm: str) -> int:
    """An anonymous DCR request (RFC 7591) with a redirect URI on a host nobody trusted: the status."""
    answer = requests.post(f"{keycloak.url}/realms/{realm}/clients-registrations/openid-connect", timeout=30,
                           json={"client_name": "stranger", "redirect_uris": ["https://elsewhere.example.com/cb"]})
    return answer.status_code


def test_audience_on_a_builtin_default_scope_with_dcr(client, realm_name):
    """A hand-made setup: the MCP audience on Keycloak's `basic` (a realm default scope) and DCR open to
    localhost. Before 26.8 DCR clients do not get `basic` as asked-for default scope (keycloak#50807)."""
    apply_file(client, RealmSpec.model_validate({
        "realm": realm_name,
        "client_scopes": [{"name": "basic", "mappers": [{"name": "mcp-aud", "audience": "https://mcp.example.com/mcp"}]}],
        "client_registration": {"anonymous": {"trusted_hosts": ["localhost"]}},
    }))
    view = read_live_view(client, realm_name)
    basic = view.client_scopes()["basic"]
    assert basic.type == "default" and [m.name for m in basic.mappers] == ["mcp-aud"]
    found = [f for f in audit_realm(view) if f.rule.id == "keycloak-dcr-default-scopes"]
    if before(view.keycloak_version, (26, 8, 0)):
        assert [str(f.location) for f in found] == [f"realm '{realm_name}' client scope 'basic'"]
    else:
        assert found == []


def with_clients(realm: str, count: int) -> RealmSpec:
    spec = renamed(MCP_DEV, realm)
    extra = [Client(client_id=f"app-{n}", redirect_uris=[f"https://app-{n}.example.com/callback"],
                    optional_scopes=["mcp:tools"], full_scope_allowed=False) for n in range(count)]
    return spec.model_copy(update={"clients": [*spec.clients, *extra]})


def test_live_audit_requests_do_not_grow_with_clients(client, realm_name, second_realm_name):
    apply_file(client, with_clients(realm_name, 10))
    apply_file(client, with_clients(second_realm_name, 50))
    read_live_view(client, realm_name)  # the export baseline (a throwaway realm) is made once a run
    counts = []
    for name in (realm_name, second_realm_name):
        client.requests = 0
        view = read_live_view(client, name)
        counts.append(client.requests)
        assert len(view.expanded.clients) >= {realm_name: 10, second_realm_name: 50}[name]
    assert counts[0] == counts[1], counts
    assert counts[0] <= 8  # partial export, server info twice, alice (lookup, role mappings, groups), profile


# ---------------------------------------------------------------- the server's facts (pure)


def serverinfo(version: str | None = "26.7.3", **features: tuple[str, bool]) -> dict:
    """A /admin/serverinfo answer: features given as NAME=(type, enabled)."""
    return {"systemInfo": {"version": version} if version else {},
            "features": [{"name": name, "type": kind, "enabled": on} for name, (kind, on) in features.items()]}


def test_server_facts_read_version_and_enabled_features():
    facts = server_facts(serverinfo("26.7.3", CIMD=("EXPERIMENTAL", True), RESOURCE_INDICATORS=("EXPERIMENTAL", False),
                                    PASSKEYS=("DEFAULT", True)))
    assert facts.version == "26.7.3"
    assert facts.enabled == {"cimd", "passkeys"}
    assert server_facts(serverinfo(TOKEN_EXCHANGE_STANDARD_V2=("DEFAULT", True))).enabled == \
        {"token-exchange-standard:v2"}
    assert facts.types == {"cimd": "experimental", "resource-indicators": "experimental", "passkeys": "default"}
    assert server_facts({}) == server_facts({"systemInfo": None, "features": None})
    assert server_facts({"features": [{"name": 3}, "x", {"name": "DPOP", "enabled": "true"}]}).enabled == set()


@pytest.mark.parametrize("version, parsed, old", [
    ("26.7.3", (26, 7, 3), True), ("26.8.0", (26, 8, 0), False), ("26.8.0-SNAPSHOT", (26, 8, 0), False),
    ("26.10.1", (26, 10, 1), False), ("999.0.0-SNAPSHOT", (999, 0, 0), False), ("nightly", None, False),
    (None, None, False), ("25", (25,), True),
])
def test_versions_compare_as_numbers(version, parsed, old):
    assert version_tuple(version) == parsed
    assert before(version, (26, 8, 0)) is old


@pytest.mark.parametrize("url, insecure", [
    ("http://kc.example.com", True), ("http://10.0.0.5:8080/", True), ("HTTP://Kc.Example.com", True),
    ("https://kc.example.com", False), ("http://localhost:8080", False), ("http://127.0.0.2", False),
    ("http://[::1]:8080", False), ("http://app.localhost", False), ("ftp://kc.example.com", False),
])
def test_insecure_http(url, insecure):
    assert insecure_http(url) is insecure


# ---------------------------------------------------------------- live-only rules (pure)


SERVER = {"name": "calc", "url": "https://mcp.example.com/mcp", "scopes": {"mcp:tools": "Call the tools"}}
CIMD_SERVER = {**SERVER, "clients": [{"cimd": {"trusted_domains": ["clients.example.com"]}}]}
RESOURCE_SERVER = {**SERVER, "audience_binding": "resource-indicators"}
DCR_OPEN = {"anonymous": {"trusted_hosts": ["localhost"]}}
DEFAULT_SCOPE_AUDIENCE = [{"name": "api-aud", "type": "default",
                           "mappers": [{"name": "aud", "audience": "https://mcp.example.com/mcp"}]}]
EXPERIMENTAL = {"CIMD": ("EXPERIMENTAL", True), "RESOURCE_INDICATORS": ("EXPERIMENTAL", True)}


def live_findings(realm: dict, info: dict, name: str = "r") -> dict[str, list]:
    """Findings of the live-only rules by id: the realm (a file's keys) as the live view of `info`'s server."""
    view = LiveView.of(name, RealmSpec.model_validate({"realm": name, **realm}), server_facts(info))
    out: dict[str, list] = {}
    for f in audit_realm(view):
        if f.rule.id in LIVE_RULES:
            out.setdefault(f.rule.id, []).append(f)
    return out


@pytest.mark.parametrize("realm, info, found", [
    ({"client_scopes": DEFAULT_SCOPE_AUDIENCE, "client_registration": DCR_OPEN}, serverinfo("26.7.3"), True),
    ({"client_scopes": DEFAULT_SCOPE_AUDIENCE, "client_registration": DCR_OPEN}, serverinfo("26.8.0"), False),
    ({"client_scopes": DEFAULT_SCOPE_AUDIENCE}, serverinfo("26.7.3"), False),  # a new realm's DCR: no host
    ({"client_scopes": [{**DEFAULT_SCOPE_AUDIENCE[0], "type": "optional"}], "client_registration": DCR_OPEN},
     serverinfo("26.7.3"), False),
    ({"mcp_servers": [{**SERVER, "clients": [{"dcr": {"trusted_hosts": ["localhost"]}}]}]}, serverinfo("26.7.3"),
     False),  # kcprov puts the audience on the optional scope clients ask for
])
def test_dcr_default_scopes_before_26_8(realm, info, found):
    findings = live_findings(realm, info).get("keycloak-dcr-default-scopes", [])
    assert bool(findings) is found
    if found:
        assert "keycloak#50807" in findings[0].message and findings[0].location == \
            Location(realm="r", resource="client scope 'api-aud'")


def test_experimental_features_in_use_are_named_once_each():
    found = live_findings({"mcp_servers": [CIMD_SERVER]}, serverinfo("26.7.3", **EXPERIMENTAL))
    messages = sorted(f.message for f in found["experimental-feature"])
    assert len(messages) == 2
    assert messages[0].startswith("feature cimd (client ID metadata documents) is experimental in Keycloak 26.7.3")
    assert "client profile 'calc-cimd'" in messages[0]
    assert "client 'calc-resource' (resource_url)" in messages[1]
    assert found["experimental-feature"][0].rule.severity == Severity.LOW


@pytest.mark.parametrize("realm, info", [
    ({"mcp_servers": [CIMD_SERVER]}, serverinfo("26.9.0", CIMD=("DEFAULT", True), RESOURCE_INDICATORS=("DEFAULT", True))),
    ({"mcp_servers": [SERVER]}, serverinfo("26.7.3", CIMD=("EXPERIMENTAL", True))),  # no CIMD entry, feature off
    ({"roles": [{"name": "x"}]}, serverinfo("26.7.3", **EXPERIMENTAL)),
])
def test_no_experimental_feature_finding(realm, info):
    assert "experimental-feature" not in live_findings(realm, info)


def test_features_relied_on_but_off():
    off = serverinfo("26.7.3", CIMD=("EXPERIMENTAL", False), RESOURCE_INDICATORS=("EXPERIMENTAL", False))
    found = live_findings({"mcp_servers": [{**CIMD_SERVER, "audience_binding": "resource-indicators"}]}, off)
    messages = sorted(f.message for f in found["feature-disabled"])
    assert len(messages) == 2 and "feature cimd" in messages[0] and "feature resource-indicators" in messages[1]
    assert "MCP server 'calc' (audience_binding: resource-indicators)" in messages[1]
    # mapper binding: the resource client's resource_url is there, but nothing relies on the feature
    assert "feature-disabled" not in live_findings({"mcp_servers": [SERVER]}, off)
    assert "feature-disabled" not in live_findings({"mcp_servers": [RESOURCE_SERVER]},
                                                   serverinfo("26.7.3", **EXPERIMENTAL))


def test_dpop_required_but_off():
    realm = {"clients": [{"client_id": "agent", "attributes": {"dpop.bound.access.tokens": "true"}}]}
    found = live_findings(realm, serverinfo("26.7.3", DPOP=("DEFAULT", False)))
    assert [f.location for f in found["feature-disabled"]] == [Location(realm="r", resource="client 'agent'")]
    assert "feature dpop" in found["feature-disabled"][0].message
    assert live_findings(realm, serverinfo("26.7.3", DPOP=("DEFAULT", True))) == {}
    assert "experimental-feature" in live_findings(realm, serverinfo("26.3.0", DPOP=("PREVIEW", True)))


def test_admin_realm_serving_mcp():
    info = serverinfo("26.7.3")
    found = live_findings({"mcp_servers": [SERVER], "client_registration": DCR_OPEN}, info, name="master")
    assert len(found["admin-realm-mcp"]) == 2 and found["admin-realm-mcp"][0].rule.severity == Severity.HIGH
    assert "admin-realm-mcp" in live_findings({"client_scopes": [{"name": "mcp:tools"}]}, info, name="master")
    assert "admin-realm-mcp" not in live_findings({"roles": [{"name": "x"}]}, info, name="master")
    assert "admin-realm-mcp" not in live_findings({"mcp_servers": [SERVER]}, info, name="mcp")


@pytest.mark.parametrize("url, found", [("http://kc.example.com", True), ("https://kc.example.com", False),
                                        ("http://localhost:8080", False)])
def test_frontend_url_http(url, found):
    realm = {"settings": {"attributes": {"frontendUrl": url}}}
    assert ("frontend-url-http" in live_findings(realm, serverinfo())) is found


def test_live_rules_never_run_on_files(tmp_path):
    path = tmp_path / "realm.yaml"
    path.write_text("realm: master\nsettings: {attributes: {frontendUrl: 'http://kc.example.com'}}\n")
    spec = load_realm(path)
    assert not rule_ids(audit_realm(RealmView.from_file(path, spec, lambda p: (1, 1)))) & LIVE_RULES


def test_live_rules_have_ids_fixes_and_what_they_rest_on():
    assert {"keycloak-dcr-default-scopes", "experimental-feature", "feature-disabled", "admin-realm-mcp",
            "frontend-url-http"} <= LIVE_RULES
    for rule_id in LIVE_RULES:
        rule = RULES[rule_id]
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.id) and rule.title and rule.rests_on and rule.fix
