"""Pure tests of the plan-time MCP checks (kcprov.checks): synthetic serverinfo answers."""

from __future__ import annotations

import copy

import pytest

from kcprov.checks import (
    SetupError,
    check_setup,
    errors,
    feature_enabled,
    keycloak_version,
    raise_for_errors,
    warnings,
)
from kcprov.spec.models import RealmSpec

LOCAL = "http://localhost:8080"
URL = "http://localhost:3000/mcp"
SERVER = {
    "name": "calculator",
    "url": URL,
    "scopes": {"mcp:tools": "Call the tools", "mcp:admin": "Administer"},
    "tool_scopes": {"add": "mcp:tools", "reset": "mcp:admin"},
    "admin_role": "mcp-admin",
    "clients": [],
}


def info(version: str = "26.7.3", cimd: bool = True, indicators: bool = True) -> dict:
    return {"systemInfo": {"version": version},
            "features": [{"name": "CIMD", "enabled": cimd}, {"name": "RESOURCE_INDICATORS", "enabled": indicators},
                         {"name": "PASSKEYS", "enabled": True}]}


def spec(server: dict | None = None, **primitives) -> RealmSpec:
    servers = [] if server is None else [{**copy.deepcopy(SERVER), **server}]
    return RealmSpec.model_validate({"realm": "r", "roles": [{"name": "mcp-admin"}], **primitives,
                                     "mcp_servers": servers})


def texts(found) -> str:
    return "\n".join(map(str, found))


def test_serverinfo_helpers():
    assert keycloak_version(info("26.7.3")) == (26, 7, 3)
    assert keycloak_version(info("26.8.0-SNAPSHOT")) == (26, 8, 0)
    assert keycloak_version({}) is None
    assert feature_enabled(info(cimd=False), "CIMD") is False
    assert feature_enabled(info(), "RESOURCE_INDICATORS") is True
    assert feature_enabled({}, "CIMD") is None
    legacy = {"profileInfo": {"disabledFeatures": ["CIMD"], "experimentalFeatures": ["CIMD", "RESOURCE_INDICATORS"]}}
    assert feature_enabled(legacy, "CIMD") is False
    assert feature_enabled(legacy, "RESOURCE_INDICATORS") is True


def test_a_plain_local_setup_on_a_current_keycloak_is_clean():
    assert check_setup(spec({}), info("26.8.1", indicators=False), LOCAL) == []
    assert check_setup(spec(), None, "http://keycloak.example.com") == []


@pytest.mark.parametrize("entry", [{"preset": "vscode"}, {"cimd": {"trusted_domains": ["localhost"]}}])
def test_cimd_without_the_feature_is_an_error(entry):
    found = errors(spec({"clients": [entry]}), info(cimd=False), LOCAL)
    assert len(found) == 1 and "'cimd' feature" in found[0] and "calculator" in found[0]
    assert errors(spec({"clients": [entry]}), info(cimd=True), LOCAL) == []
    assert errors(spec({"clients": [entry]}), None, LOCAL) == []  # unknown: no claim


def test_resource_indicators_without_the_feature_is_an_error():
    s = spec({"audience_binding": "resource-indicators"})
    [found] = errors(s, info(indicators=False), LOCAL)
    assert "resource-indicators" in found and URL in found
    with pytest.raises(SetupError) as err:
        raise_for_errors(s, info(indicators=False), LOCAL)
    assert "cannot work" in err.value.message
    raise_for_errors(s, info(indicators=True), LOCAL)


def test_extra_audiences_are_dropped_by_resource_indicators():
    s = spec({"extra_audiences": ["http://localhost:3000"]})
    assert "carry only that audience" in texts(warnings(s, info("26.8.0"), LOCAL))
    assert "carry only that audience" not in texts(warnings(s, info("26.8.0", indicators=False), LOCAL))


def test_dcr_before_26_8_explains_why_the_audience_still_works():
    s = spec({"clients": [{"dcr": {"trusted_hosts": ["localhost"]}}]})
    found = texts(warnings(s, info("26.7.3", indicators=False), LOCAL))
    assert "keycloak#50807" in found and "optional scopes (mcp:tools, mcp:admin)" in found
    assert "keycloak#50807" not in texts(warnings(s, info("26.8.0", indicators=False), LOCAL))


def test_a_realm_default_scope_with_an_audience_warns_for_dcr_before_26_8():
    scope = {"name": "aud", "type": "default", "mappers": [{"name": "a", "audience": "http://localhost:3000"}]}
    s = spec(client_scopes=[scope], client_registration={"anonymous": {"trusted_hosts": ["localhost"]}})
    assert "client scope 'aud' is a realm default scope" in texts(warnings(s, info("26.6.1"), LOCAL))


def test_claude_desktop_needs_26_8():
    s = spec({"clients": [{"preset": "claude-desktop"}]})
    assert "Claude Desktop" in texts(warnings(s, info("26.7.3"), LOCAL))
    assert "Claude Desktop" not in texts(warnings(s, info("26.8.2"), LOCAL))


def test_client_credentials_with_resource_crash_on_26_7():
    s = spec({"clients": [{"client": {"client_id": "bot", "confidential": True, "service_account": True}}]})
    assert "HTTP 500" in texts(warnings(s, info("26.7.3"), LOCAL))
    assert "HTTP 500" not in texts(warnings(s, info("26.7.3", indicators=False), LOCAL))


def test_plain_http_on_a_remote_host():
    s = spec({"url": "http://mcp.example.com/mcp"})
    found = texts(warnings(s, None, "http://keycloak.example.com"))
    assert "issuer http://keycloak.example.com/realms/r is plain http" in found
    assert "url http://mcp.example.com/mcp is plain http" in found
    assert warnings(spec({"url": "https://mcp.example.com/mcp"}), None, "https://keycloak.example.com") == []
    assert warnings(spec({}), None, "http://127.0.0.1:8080") == []


def test_non_canonical_url():
    found = texts(warnings(spec({"url": "https://MCP.example.com:443/mcp"}), None, "https://kc.example.com"))
    assert "write url: https://mcp.example.com/mcp" in found


def test_redirect_uris():
    clients = [{"client_id": "web", "redirect_uris": ["https://app.example.com/*", "http://app.example.com/cb",
                                                      "http://127.0.0.1:8000/cb", "https://app.example.com/cb"]}]
    found = [w.message for w in warnings(spec({}, clients=clients), None, LOCAL)]
    assert len(found) == 2
    assert "wildcard redirect URI https://app.example.com/*" in found[0]
    assert "redirect URI http://app.example.com/cb" in found[1]


def test_an_audience_that_misses_the_server_url():
    scope = {"name": "old", "mappers": [{"name": "a", "audience": "http://localhost:3000/mcp/"}]}
    [found] = texts(warnings(spec({}, client_scopes=[scope]), None, LOCAL)).splitlines()
    assert "does not match the MCP server url http://localhost:3000/mcp" in found
    ok = {"name": "old", "mappers": [{"name": "a", "audience": "http://localhost:3000"}]}
    assert warnings(spec({"extra_audiences": ["http://localhost:3000"]}, client_scopes=[ok]), None, LOCAL) == []
    [slash] = texts(warnings(spec({"extra_audiences": [URL + "/"]}), None, LOCAL)).splitlines()
    assert "trailing '/'" in slash


def test_registration_and_cimd_without_hosts():
    found = texts(warnings(spec({"clients": [{"dcr": {}}, {"cimd": {}}]}), None, LOCAL))
    assert "dcr has no trusted_hosts" in found
    assert "cimd has no trusted_domains" in found
    assert "dcr has no trusted_hosts" not in texts(warnings(
        spec({"clients": [{"dcr": {}}]}, client_registration={"anonymous": {"trusted_hosts": ["x"]}}), None, LOCAL))


def test_admin_role_with_dcr_clients():
    """kcprov maps the admin role onto mcp:admin, so DCR tokens carry it; not onto a scope others need."""
    dcr = [{"preset": "mcp-inspector"}]
    assert "full scope disabled" not in texts(warnings(spec({"clients": dcr}), None, LOCAL))
    on_base = spec({"clients": dcr, "tool_scopes": {"add": "mcp:tools", "reset": "mcp:tools"}, "admin_tools": ["reset"]})
    found = texts(warnings(on_base, None, LOCAL))
    assert "mcp:tools is also needed without the role" in found
    assert "tools that require 'mcp-admin' (reset) refuse DCR clients" in found
    shared = spec({"clients": dcr, "tool_scopes": {"add": "mcp:admin", "reset": "mcp:admin"}, "admin_tools": ["reset"]})
    assert "mcp:admin is also needed without the role" in texts(warnings(shared, None, LOCAL))
    assert "only their scope protects them" in texts(warnings(spec({"admin_role": None}), None, LOCAL))


def test_token_settings():
    settings = {"access_token_lifespan": "1h", "revoke_refresh_token": False, "refresh_token_max_reuse": 2}
    found = texts(warnings(spec({"access_token_lifespan": "10m"}, settings=settings), None, LOCAL))
    assert "3600s, longer than the 600s" in found
    assert "revoke_refresh_token is false" in found
    assert "refresh_token_max_reuse is 2" in found


def test_pkce_plain():
    found = texts(warnings(spec({"clients": [{"client": {"client_id": "c", "pkce": "plain"}}]}), None, LOCAL))
    assert "client 'c' sets pkce: plain" in found


def test_errors_come_first_and_name_the_server():
    found = check_setup(spec({"audience_binding": "resource-indicators", "url": "http://mcp.example.com/mcp",
                              "clients": [{"preset": "vscode"}]}), info(cimd=False, indicators=False), LOCAL)
    levels = [f.level for f in found]
    assert levels == sorted(levels, key=lambda level: level != "error") and levels.count("error") == 2
    assert all(str(f).startswith("MCP server 'calculator': ") for f in found)
