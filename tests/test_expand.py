"""Pure tests of `mcp_servers:` expansion: every entry kind, field by field, and conflicts."""

from __future__ import annotations

import copy

import pytest

from kcprov.spec import SpecError
from kcprov.spec.expand import (
    CIMD_ACCEPT_PUBLIC_CONFIDENTIAL_GRANTS,
    CIMD_RESOURCE_ALLOW_LIST,
    McpExpansionError,
    expand_mcp_servers,
    expansion_findings,
)
from kcprov.spec.models import RealmSpec
from kcprov.workflow import desired_objects

URL = "http://localhost:3000/mcp"
CALCULATOR = {
    "name": "calculator",
    "url": URL,
    "extra_audiences": ["http://localhost:3000"],
    "scopes": {"mcp:tools": "Call the calculator tools", "mcp:admin": "Administer the calculator"},
    "tool_scopes": {"add": "mcp:tools", "multiply": "mcp:tools", "reset": "mcp:admin"},
    "admin_role": "mcp-admin",
    "token_validation": "jwt",
    "audience_binding": "mapper",
    "clients": [],
    "env_file": "examples/mcp-server/.env",
}


def realm(*servers: dict, **primitives) -> RealmSpec:
    return RealmSpec.model_validate({"realm": "r", "roles": [{"name": "mcp-admin"}], **primitives,
                                     "mcp_servers": [copy.deepcopy(s) for s in servers]})


def server(**changes) -> dict:
    return {**copy.deepcopy(CALCULATOR), **changes}


def expanded(*servers: dict, **primitives):
    return expand_mcp_servers(realm(*servers, **primitives))


def desired(*servers: dict, **primitives):
    return desired_objects(realm(*servers, **primitives))


def profile_of(spec: RealmSpec, name: str):
    return next(p for p in spec.client_policies.profiles if p.name == name)


def policy_of(spec: RealmSpec, name: str):
    return next(p for p in spec.client_policies.policies if p.name == name)


# ---------------------------------------------------------------- scopes and audience


def test_no_servers_is_identity():
    spec = RealmSpec(realm="r")
    assert expand_mcp_servers(spec) == (spec, {})


def test_one_optional_scope_per_mcp_scope_with_consent_text():
    spec, _ = expanded(server())
    tools, admin = spec.client_scopes
    assert (tools.name, admin.name) == ("mcp:tools", "mcp:admin")
    for scope, text in ((tools, "Call the calculator tools"), (admin, "Administer the calculator")):
        assert scope.type == "optional"
        assert scope.protocol == "openid-connect"
        assert scope.include_in_token_scope is True
        assert scope.display_on_consent_screen is True
        assert scope.consent_screen_text == text


def test_mapper_mode_puts_every_audience_and_the_resource_client_on_each_scope():
    objects, groups = desired(server())
    mappers = objects["scope_mapper"]
    for scope in ("mcp:tools", "mcp:admin"):
        assert mappers[f"{scope}/mcp-audience"]["config.included.custom.audience"] == URL
        assert mappers[f"{scope}/mcp-audience-2"]["config.included.custom.audience"] == "http://localhost:3000"
        assert mappers[f"{scope}/mcp-resource-audience"]["config.included.client.audience"] == "calculator-resource"
        for name in ("mcp-audience", "mcp-audience-2", "mcp-resource-audience"):
            m = mappers[f"{scope}/{name}"]
            assert m["protocol_mapper"] == "oidc-audience-mapper"
            assert (m["config.access.token.claim"], m["config.id.token.claim"]) == ("true", "false")
            assert groups[("scope_mapper", f"{scope}/{name}")] == "calculator"
    assert len(mappers) == 7  # and the admin scope's realm-roles mapper


def test_admin_role_is_mapped_onto_the_admin_scope_only():
    """DCR clients (full scope disabled, no `roles` scope before 26.8) get the admin role through mcp:admin."""
    objects, groups = desired(server())
    assert objects["scope_roles"] == {"mcp:admin": {"roles": ["realm/mcp-admin"]}}
    assert groups[("scope_roles", "mcp:admin")] == "calculator"
    roles = objects["scope_mapper"]["mcp:admin/mcp-realm-roles"]
    assert roles["protocol_mapper"] == "oidc-usermodel-realm-role-mapper"
    assert roles["config.claim.name"] == "realm_access.roles"
    assert (roles["config.multivalued"], roles["config.access.token.claim"]) == ("true", "true")
    assert groups[("scope_mapper", "mcp:admin/mcp-realm-roles")] == "calculator"
    assert "mcp:tools/mcp-realm-roles" not in objects["scope_mapper"]


@pytest.mark.parametrize(
    "changes",
    [
        {"admin_role": None},
        {"tool_scopes": {"add": "mcp:tools", "reset": "mcp:tools"}, "admin_tools": ["reset"]},  # the base scope
        {"tool_scopes": {"add": "mcp:admin", "reset": "mcp:admin"}, "admin_tools": ["reset"]},  # shared with add
        {"tool_scopes": {"add": "mcp:tools", "reset": "mcp:admin"}, "admin_tools": []},
    ],
    ids=["no-admin-role", "admin-tool-on-base-scope", "scope-shared-with-other-tools", "no-admin-tools"],
)
def test_no_role_mapping_where_it_would_lock_others_out(changes):
    """A scope with role mappings is granted only to holders of those roles."""
    objects, _ = desired(server(**changes))
    assert objects["scope_roles"] == {}
    assert not any(key.endswith("/mcp-realm-roles") for key in objects["scope_mapper"])


def test_resource_indicators_mode_has_no_custom_audience_but_the_resource_client():
    objects, _ = desired(server(audience_binding="resource-indicators"))
    assert set(objects["scope_mapper"]) == {"mcp:tools/mcp-resource-audience", "mcp:admin/mcp-resource-audience",
                                            "mcp:admin/mcp-realm-roles"}
    resource = objects["client"]["calculator-resource"]
    assert resource["attributes.resource_url"] == URL
    assert resource["confidential"] is True
    assert (resource["standard_flow"], resource["implicit_flow"], resource["direct_access_grants"],
            resource["service_account"]) == (False, False, False, False)


def test_mapper_mode_also_has_the_resource_client():
    # Keycloak with the resource-indicators feature refuses `resource=<url>` without it
    objects, groups = desired(server())
    assert objects["client"]["calculator-resource"]["attributes.resource_url"] == URL
    assert groups[("client", "calculator-resource")] == "calculator"


# ---------------------------------------------------------------- realm settings and PKCE


def test_realm_settings_filled_only_where_the_file_is_silent():
    spec, groups = expanded(server())
    s = spec.settings
    assert (s.revoke_refresh_token, s.refresh_token_max_reuse, s.access_token_lifespan) == (True, 0, 300)
    assert groups[("realm", "r")] == "calculator"
    spec, _ = expanded(server(access_token_lifespan="2m"), server(name="b", url="http://localhost:4000/mcp",
                       scopes={"b:x": "x"}, tool_scopes=None, admin_role=None))
    assert spec.settings.access_token_lifespan == 120
    spec, _ = expanded(server(), settings={"access_token_lifespan": 600, "revoke_refresh_token": False})
    assert (spec.settings.access_token_lifespan, spec.settings.revoke_refresh_token) == (600, False)
    assert spec.settings.refresh_token_max_reuse == 0


def test_pkce_profile_and_policy_once_per_realm():
    spec, groups = expanded(server(), server(name="b", url="http://localhost:4000/mcp", scopes={"b:x": "x"},
                                             tool_scopes=None, admin_role=None))
    profile = profile_of(spec, "mcp-pkce")
    [executor] = profile.executors
    assert executor.type == "pkce-enforcer"
    assert executor.config == {"auto-configure": "true"}
    policy = policy_of(spec, "mcp-pkce")
    assert policy.enabled is True
    assert [(c.type, c.config) for c in policy.conditions] == [("any-client", {})]
    assert policy.profiles == ["mcp-pkce"]
    assert [p.name for p in spec.client_policies.profiles].count("mcp-pkce") == 1
    assert groups[("client_profile", "mcp-pkce")] == groups[("client_policy", "mcp-pkce")] == "calculator"


# ---------------------------------------------------------------- introspection


def test_introspection_client():
    spec, groups = expanded(server(token_validation="introspection"))
    client = next(c for c in spec.clients if c.client_id == "calculator-introspector")
    assert client.confidential is True and client.service_account is True
    assert client.standard_flow is False and client.direct_access_grants is False
    assert client.default_scopes == ["basic", "roles", "mcp:tools"]
    assert client.attributes == {"allow.token.introspection.without.audience.check": "true"}
    assert groups[("client", "calculator-introspector")] == "calculator"


def test_introspection_client_written_in_the_file_keeps_its_own_values():
    primitive = {"client_id": "mcp-server", "name": "Mine", "confidential": True, "service_account": True,
                 "default_scopes": ["basic", "mcp:tools", "profile"]}
    spec, _ = expanded(server(token_validation="introspection", introspection_client="mcp-server"),
                       clients=[primitive])
    [client] = [c for c in spec.clients if c.client_id == "mcp-server"]
    assert client.name == "Mine" and client.default_scopes == ["basic", "mcp:tools", "profile"]
    assert client.standard_flow is False  # filled in
    assert client.attributes["allow.token.introspection.without.audience.check"] == "true"


def test_introspection_client_that_contradicts_is_an_error():
    primitive = {"client_id": "mcp-server", "confidential": True, "service_account": True, "standard_flow": True}
    with pytest.raises(McpExpansionError) as err:
        expanded(server(token_validation="introspection", introspection_client="mcp-server"), clients=[primitive])
    [finding] = err.value.findings
    assert finding.path == ("mcp_servers", 0, "introspection_client", "standard_flow")
    assert finding.first == ("clients", 0, "standard_flow")
    assert "client 'mcp-server'" in finding.message
    assert isinstance(err.value, SpecError)
    assert "mcp_servers[0].introspection_client.standard_flow" in str(err.value)


# ---------------------------------------------------------------- DCR


def test_dcr_entry_becomes_the_anonymous_policies():
    spec, groups = expanded(server(clients=[{"dcr": {"trusted_hosts": ["localhost", "127.0.0.1"]}}]))
    anonymous = spec.client_registration.anonymous
    assert anonymous.trusted_hosts == ["localhost", "127.0.0.1"]
    assert anonymous.client_uris_must_match is True
    assert anonymous.host_sending_request_must_match is None
    assert anonymous.allowed_client_scopes == ["mcp:tools", "mcp:admin", "offline_access"]
    assert anonymous.allow_default_scopes is True
    assert anonymous.allowed_web_origins is None
    assert anonymous.max_clients is None
    for key in ("anonymous/trusted-hosts", "anonymous/allowed-client-templates"):
        assert groups[("registration_policy", key)] == "calculator"
    assert ("registration_policy", "anonymous/registration-web-origins") not in groups


def test_mcp_inspector_preset_adds_its_origin_and_host():
    spec, groups = expanded(server(clients=[{"dcr": {"trusted_hosts": ["127.0.0.1"]}}, {"preset": "mcp-inspector"}]))
    anonymous = spec.client_registration.anonymous
    assert anonymous.trusted_hosts == ["127.0.0.1", "localhost"]
    assert anonymous.allowed_web_origins == ["http://localhost:6274"]
    assert groups[("registration_policy", "anonymous/registration-web-origins")] == "calculator"
    spec, _ = expanded(server(clients=[{"preset": "mcp-inspector"}]))
    assert spec.client_registration.anonymous.trusted_hosts == ["localhost"]
    assert spec.client_registration.anonymous.allowed_client_scopes == ["mcp:tools", "mcp:admin", "offline_access"]


def test_dcr_merges_with_the_files_own_registration_policy():
    primitive = {"anonymous": {"trusted_hosts": ["127.0.0.1", "localhost"], "client_uris_must_match": False,
                               "allowed_client_scopes": ["openid", "mcp:tools"]},
                 "authenticated": {"max_clients": 5}}
    spec, _ = expanded(server(clients=[{"dcr": {"trusted_hosts": ["localhost", "127.0.0.1"], "max_clients": 50}}]),
                       client_registration=primitive)
    anonymous = spec.client_registration.anonymous
    assert anonymous.trusted_hosts == ["127.0.0.1", "localhost"]
    assert anonymous.client_uris_must_match is False  # the file's value wins over kcprov's default
    assert anonymous.max_clients == 50
    assert anonymous.allowed_client_scopes == ["openid", "mcp:tools", "mcp:admin", "offline_access"]
    assert spec.client_registration.authenticated.max_clients == 5


def test_two_servers_with_different_trusted_hosts_conflict():
    other = server(name="b", url="http://localhost:4000/mcp", scopes={"b:x": "x"}, tool_scopes=None,
                   admin_role=None, clients=[{"dcr": {"trusted_hosts": ["10.0.0.1"]}}])
    with pytest.raises(McpExpansionError) as err:
        expanded(server(clients=[{"dcr": {"trusted_hosts": ["localhost"]}}]), other)
    [finding] = err.value.findings
    assert finding.path == ("mcp_servers", 1, "clients", 0, "dcr", "trusted_hosts")
    assert finding.first == ("mcp_servers", 0, "clients", 0, "dcr", "trusted_hosts")
    assert "one anonymous registration policy" in finding.message


def test_two_servers_share_the_registration_policy_scopes():
    other = server(name="b", url="http://localhost:4000/mcp", scopes={"b:x": "x"}, tool_scopes=None,
                   admin_role=None, clients=[{"dcr": {"trusted_hosts": ["localhost"]}}])
    spec, _ = expanded(server(clients=[{"dcr": {"trusted_hosts": ["localhost"]}}]), other)
    assert spec.client_registration.anonymous.allowed_client_scopes == [
        "mcp:tools", "mcp:admin", "b:x", "offline_access"]


# ---------------------------------------------------------------- CIMD and presets


def executor_config(spec: RealmSpec, name: str) -> dict:
    [executor] = profile_of(spec, name).executors
    assert executor.type == "client-id-metadata-document"
    return executor.config


def condition_config(spec: RealmSpec, name: str) -> dict:
    policy = policy_of(spec, name)
    assert policy.enabled is True and policy.profiles == [name]
    [condition] = policy.conditions
    assert condition.type == "client-id-uri"
    return condition.config


def test_cimd_entry():
    spec, groups = expanded(server(clients=[{"cimd": {"trusted_domains": ["localhost"], "allow_http": True}}]))
    assert executor_config(spec, "calculator-cimd") == {
        "cimd-allow-http-scheme": "true",
        "cimd-allow-permitted-domains": ["localhost"],
        "cimd-restrict-same-domain": "false",
        "only-allow-confidential-client": "false",
        CIMD_RESOURCE_ALLOW_LIST: [URL],
    }
    assert condition_config(spec, "calculator-cimd") == {
        "client-id-uri-scheme": ["http", "https"],
        "client-id-uri-allow-permitted-domains": ["localhost"],
    }
    assert groups[("client_profile", "calculator-cimd")] == groups[("client_policy", "calculator-cimd")] == "calculator"


def test_cimd_entry_every_option():
    entry = {"trusted_domains": ["*.example.org"], "restrict_same_domain": True, "only_confidential": True,
             "accept_public_client_with_confidential_grant_types": False, "required_properties": ["client_name"]}
    spec, _ = expanded(server(clients=[{"cimd": entry}]))
    assert executor_config(spec, "calculator-cimd") == {
        "cimd-allow-http-scheme": "false",
        "cimd-allow-permitted-domains": ["*.example.org"],
        "cimd-restrict-same-domain": "true",
        "only-allow-confidential-client": "true",
        "cimd-required-properties": ["client_name"],
        CIMD_ACCEPT_PUBLIC_CONFIDENTIAL_GRANTS: "false",
        CIMD_RESOURCE_ALLOW_LIST: [URL],
    }
    assert condition_config(spec, "calculator-cimd")["client-id-uri-scheme"] == ["https"]


PRESETS = {
    "vscode": (["vscode.dev", "127.0.0.1", "code.visualstudio.com"], "false", None, ["vscode.dev"]),
    "claude-code": (["claude.ai", "localhost", "127.0.0.1"], "false", None, ["claude.ai"]),
    "claude-desktop": (["claude.ai"], "true", "true", ["claude.ai"]),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_cimd_presets_follow_the_keycloak_guide(preset):
    domains, restrict, accept, client_ids = PRESETS[preset]
    spec, groups = expanded(server(clients=[{"preset": preset}]))
    name = f"calculator-{preset}"
    expected = {
        "cimd-allow-http-scheme": "false",
        "cimd-allow-permitted-domains": domains,
        "cimd-restrict-same-domain": restrict,
        "only-allow-confidential-client": "false",
        CIMD_RESOURCE_ALLOW_LIST: [URL],
    }
    if accept is not None:
        expected[CIMD_ACCEPT_PUBLIC_CONFIDENTIAL_GRANTS] = accept
    assert executor_config(spec, name) == expected
    assert condition_config(spec, name) == {"client-id-uri-scheme": ["https"],
                                            "client-id-uri-allow-permitted-domains": client_ids}
    assert groups[("client_profile", name)] == "calculator"


def test_claude_code_and_desktop_share_one_profile():
    spec, _ = expanded(server(clients=[{"preset": "claude-code"}, {"preset": "claude-desktop"}]))
    names = [p.name for p in spec.client_policies.profiles]
    assert names == ["calculator-claude", "mcp-pkce"]
    assert executor_config(spec, "calculator-claude") == {
        "cimd-allow-http-scheme": "false",
        "cimd-allow-permitted-domains": ["claude.ai", "localhost", "127.0.0.1"],
        "cimd-restrict-same-domain": "false",
        "only-allow-confidential-client": "false",
        CIMD_ACCEPT_PUBLIC_CONFIDENTIAL_GRANTS: "true",
        CIMD_RESOURCE_ALLOW_LIST: [URL],
    }


def test_same_preset_on_two_servers_is_one_profile_accepting_both_resources():
    other = server(name="b", url="http://localhost:4000/mcp", scopes={"b:x": "x"}, tool_scopes=None,
                   admin_role=None, clients=[{"preset": "vscode"}])
    spec, _ = expanded(server(clients=[{"preset": "vscode"}]), other)
    assert [p.name for p in spec.client_policies.policies] == ["calculator-vscode", "mcp-pkce"]
    assert executor_config(spec, "calculator-vscode")[CIMD_RESOURCE_ALLOW_LIST] == [URL, "http://localhost:4000/mcp"]


def test_overlapping_cimd_domains_with_other_settings_conflict():
    other = server(name="b", url="http://localhost:4000/mcp", scopes={"b:x": "x"}, tool_scopes=None,
                   admin_role=None, clients=[{"cimd": {"trusted_domains": ["claude.ai"]}}])
    findings = expansion_findings(realm(server(clients=[{"preset": "claude-code"}]), other))
    [finding] = findings
    assert finding.path == ("mcp_servers", 1, "clients", 0, "cimd")
    assert finding.first == ("mcp_servers", 0, "clients", 0, "preset")


def test_every_calculator_entry_together():
    entries = [{"dcr": {"trusted_hosts": ["localhost", "127.0.0.1"]}},
               {"cimd": {"trusted_domains": ["localhost", "127.0.0.1"], "allow_http": True}},
               {"preset": "vscode"}, {"preset": "claude-code"}, {"preset": "mcp-inspector"}]
    spec, groups = expanded(server(clients=entries))
    assert [p.name for p in spec.client_policies.profiles] == [
        "calculator-cimd", "calculator-vscode", "calculator-claude-code", "mcp-pkce"]
    assert [p.name for p in spec.client_policies.policies] == [
        "calculator-cimd", "calculator-vscode", "calculator-claude-code", "mcp-pkce"]
    anonymous = spec.client_registration.anonymous
    assert anonymous.trusted_hosts == ["localhost", "127.0.0.1"]
    assert anonymous.allowed_web_origins == ["http://localhost:6274"]
    assert set(groups.values()) == {"calculator"}


# ---------------------------------------------------------------- pre-registered clients


def test_client_entry_gets_the_scopes_as_optional_scopes():
    client = {"client_id": "bot", "confidential": True, "service_account": True, "default_scopes": ["basic"],
              "roles": ["reader"], "service_account_roles": {"realm": ["mcp-admin"]},
              "mappers": [{"name": "aud", "audience": "urn:x"}]}
    spec, groups = expanded(server(clients=[{"client": client}]))
    bot = next(c for c in spec.clients if c.client_id == "bot")
    assert bot.optional_scopes == ["mcp:tools", "mcp:admin"]
    assert bot.default_scopes == ["basic"]
    for key in (("client", "bot"), ("client_role", "bot/reader"), ("client_mapper", "bot/aud"),
                ("service_account_roles", "bot")):
        assert groups[key] == "calculator"


def test_client_entry_keeps_a_scope_it_already_has_as_default():
    client = {"client_id": "bot", "default_scopes": ["mcp:tools"], "optional_scopes": ["email"]}
    spec, _ = expanded(server(clients=[{"client": client}]))
    bot = next(c for c in spec.clients if c.client_id == "bot")
    assert bot.default_scopes == ["mcp:tools"]
    assert bot.optional_scopes == ["email", "mcp:admin"]


def test_client_entry_identical_to_a_primitive_merges_and_a_different_one_conflicts():
    same = {"client_id": "bot", "confidential": True}
    spec, _ = expanded(server(clients=[{"client": same}]), clients=[same])
    assert [c.client_id for c in spec.clients].count("bot") == 1
    different = {"client_id": "bot", "confidential": False}
    [finding] = expansion_findings(realm(server(clients=[{"client": same}]), clients=[different]))
    assert finding.path == ("mcp_servers", 0, "clients", 0, "client", "confidential")
    assert finding.first == ("clients", 0, "confidential")


# ---------------------------------------------------------------- scope conflicts


def test_identical_scope_written_in_the_file_merges_and_a_different_one_conflicts():
    same = {"name": "mcp:tools", "type": "optional", "consent_screen_text": "Call the calculator tools",
            "mappers": [{"name": "mcp-audience", "audience": URL}]}
    spec, _ = expanded(server(), client_scopes=[same])
    assert [s.name for s in spec.client_scopes] == ["mcp:tools", "mcp:admin"]
    assert spec.client_scopes[0].include_in_token_scope is True
    different = {**same, "type": "default", "consent_screen_text": "Other"}
    findings = expansion_findings(realm(server(), client_scopes=[different]))
    assert {f.path for f in findings} == {("mcp_servers", 0, "scopes", "mcp:tools", "type"),
                                          ("mcp_servers", 0, "scopes", "mcp:tools", "consent_screen_text")}
    clash = {**same, "mappers": [{"name": "mcp-audience", "audience": "http://elsewhere/"}]}
    [finding] = expansion_findings(realm(server(), client_scopes=[clash]))
    assert "mapper 'mcp-audience'" in finding.message


def test_two_servers_with_one_scope_conflict():
    other = server(name="b", url="http://localhost:4000/mcp", scopes={"mcp:tools": "x"}, tool_scopes=None,
                   admin_role=None)
    [finding] = expansion_findings(realm(server(), other))
    assert finding.path == ("mcp_servers", 1, "scopes", "mcp:tools")
    assert "also a scope of MCP server 'calculator'" in finding.message


def test_a_profile_named_like_a_generated_one_conflicts():
    policies = {"profiles": [{"name": "mcp-pkce", "executors": [{"type": "pkce-enforcer"}]}]}
    [finding] = expansion_findings(realm(server(), client_policies=policies))
    assert "client profile 'mcp-pkce'" in finding.message
    assert finding.first == ("client_policies", "profiles", 0)


# ---------------------------------------------------------------- groups


def test_every_generated_object_is_labelled_with_its_server():
    entries = [{"dcr": {"trusted_hosts": ["localhost"]}}, {"preset": "vscode"},
               {"client": {"client_id": "bot", "confidential": True, "service_account": True}}]
    objects, groups = desired(server(clients=entries, token_validation="introspection"),
                              clients=[{"client_id": "own"}], roles=[{"name": "mcp-admin"}, {"name": "other"}])
    for kind, keys in objects.items():
        for key in keys:
            mine = (kind, key) in {("client", "own"), ("role", "mcp-admin"), ("role", "other")}
            assert (groups.get((kind, key)) == "calculator") != mine, (kind, key)
