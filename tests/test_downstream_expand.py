"""Pure tests of `mcp_servers[].downstream` expansion (standard token exchange) and its plan-time refusals."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from kcprov.spec.expand import expand_mcp_servers, expansion_findings
from kcprov.spec.models import RealmSpec
from kcprov.spec.problems import SpecError

URL = "http://localhost:3000/mcp"
SERVER = {
    "name": "calculator",
    "url": URL,
    "scopes": {"mcp:tools": "Call the calculator tools", "mcp:admin": "Administer"},
    "tool_scopes": {"add": "mcp:tools", "reset": "mcp:admin"},
    "downstream": [{"client_id": "accounts-api", "scopes": ["accounts:read"], "url": "http://127.0.0.1:9000"}],
}


def realm(server: dict | None = None, **primitives) -> RealmSpec:
    return RealmSpec.model_validate({"realm": "r", **primitives, "mcp_servers": [copy.deepcopy(server or SERVER)]})


def with_(**changes) -> dict:
    return {**copy.deepcopy(SERVER), **changes}


def clients_of(spec: RealmSpec) -> dict:
    return {c.client_id: c for c in spec.clients}


def scope_of(spec: RealmSpec, name: str):
    return next(s for s in spec.client_scopes if s.name == name)


def messages(spec: RealmSpec) -> list[str]:
    return [f"{'.'.join(map(str, f.path))}: {f.message}" for f in expansion_findings(spec)]


# ---------------------------------------------------------------- what one downstream becomes


def test_the_exchange_client_is_named_by_the_server_url_confidential_without_flows() -> None:
    spec, groups = expand_mcp_servers(realm())
    exchange = clients_of(spec)[URL]  # every user token of the server has the URL in aud, in both binding modes
    assert exchange.confidential is True
    assert (exchange.standard_flow, exchange.implicit_flow, exchange.direct_access_grants,
            exchange.service_account) == (False, False, False, False)
    assert exchange.attributes == {"standard.token.exchange.enabled": "true"}
    # sub, roles, and the API's audience "available" (else 400 Requested audience not available)
    assert exchange.default_scopes == ["basic", "roles", "calculator-downstream-accounts-api"]
    assert exchange.optional_scopes == ["accounts:read"]
    assert exchange.mappers == []
    audience = scope_of(spec, "calculator-downstream-accounts-api")
    assert [(m.name, m.client_audience) for m in audience.mappers] == [("downstream", "accounts-api")]
    assert (audience.type, audience.include_in_token_scope) == ("none", False)
    assert groups[("client", URL)] == "calculator"
    assert groups[("scope_mapper", "calculator-downstream-accounts-api/downstream")] == "calculator"


@pytest.mark.parametrize("binding", ["mapper", "resource-indicators"])
def test_the_server_scopes_are_unchanged_by_downstream(binding: str) -> None:
    with_api, _ = expand_mcp_servers(realm(with_(audience_binding=binding)))
    without, _ = expand_mcp_servers(realm(with_(audience_binding=binding, downstream=[])))
    for name in SERVER["scopes"]:
        assert scope_of(with_api, name) == scope_of(without, name)


def test_a_server_without_downstream_gets_no_exchange_objects() -> None:
    spec, _ = expand_mcp_servers(realm(with_(downstream=[])))
    assert URL not in clients_of(spec) and "accounts-api" not in clients_of(spec)


def test_a_missing_api_client_and_scope_are_made_with_nothing_more() -> None:
    spec, groups = expand_mcp_servers(realm())
    api = clients_of(spec)["accounts-api"]
    assert api.confidential is True
    assert (api.standard_flow, api.implicit_flow, api.direct_access_grants, api.service_account) == (False,) * 4
    assert api.mappers == [] and api.roles == [] and api.attributes is None
    scope = next(s for s in spec.client_scopes if s.name == "accounts:read")
    assert scope.type == "none" and scope.mappers == [] and scope.include_in_token_scope is True
    assert groups[("client_scope", "accounts:read")] == "calculator"


def test_an_api_client_and_scope_written_in_the_file_are_kept_as_written() -> None:
    spec, _ = expand_mcp_servers(realm(
        clients=[{"client_id": "accounts-api", "confidential": True, "roles": ["reader"], "standard_flow": False}],
        client_scopes=[{"name": "accounts:read", "description": "Read accounts", "type": "optional"}],
    ))
    api = clients_of(spec)["accounts-api"]
    assert [r.name for r in api.roles] == ["reader"] and api.name is None
    scope = next(s for s in spec.client_scopes if s.name == "accounts:read")
    assert (scope.description, scope.type) == ("Read accounts", "optional")


def test_a_built_in_scope_is_referenced_not_made() -> None:
    spec, _ = expand_mcp_servers(realm(with_(downstream=[{"client_id": "accounts-api", "scopes": ["profile"]}])))
    assert "profile" not in {s.name for s in spec.client_scopes}
    assert clients_of(spec)[URL].optional_scopes == ["profile"]


def test_several_apis_each_get_an_audience_mapper_and_their_scopes() -> None:
    spec, _ = expand_mcp_servers(realm(with_(downstream=[
        {"client_id": "accounts-api", "scopes": ["accounts:read"]},
        {"client_id": "billing-api", "scopes": ["billing:read", "accounts:read"]},
    ])))
    exchange = clients_of(spec)[URL]
    assert exchange.default_scopes[2:] == ["calculator-downstream-accounts-api", "calculator-downstream-billing-api"]
    assert exchange.optional_scopes == ["accounts:read", "billing:read"]


# ---------------------------------------------------------------- setups Keycloak 26.7.3 cannot serve


@pytest.mark.parametrize("changes, primitives, path, words", [
    ({"downstream": [{"client_id": "calculator-resource"}]}, {}, "mcp_servers.0.downstream.0.client_id", "itself"),
    ({"token_validation": "introspection", "downstream": [{"client_id": "calculator-introspector"}]}, {},
     "mcp_servers.0.downstream.0.client_id", "itself"),
    ({}, {"clients": [{"client_id": "accounts-api", "confidential": False}]},
     "mcp_servers.0.downstream.0.client_id", "public client"),
    ({"downstream": [{"client_id": "accounts-api"}, {"client_id": "accounts-api", "scopes": ["x"]}]}, {},
     "mcp_servers.0.downstream.1.client_id", "listed twice"),
    ({"downstream": [{"client_id": "accounts-api", "scopes": ["mcp:admin"]}]}, {},
     "mcp_servers.0.downstream.0.scopes", "carries that server's audience"),
], ids=["downstream-is-resource", "downstream-is-introspector", "public-downstream", "duplicate", "server-scope"])
def test_refused_setups_name_the_place_and_the_fix(changes: dict, primitives: dict, path: str, words: str) -> None:
    spec = realm(with_(**changes), **primitives)
    found = messages(spec)
    assert any(m.startswith(path + ":") and words in m for m in found), found
    assert all(f.hint for f in expansion_findings(spec))
    with pytest.raises(SpecError):
        expand_mcp_servers(spec)


@pytest.mark.parametrize("url", ["ftp://x", "http://api/x?token=1", "http://api/#f", "http://a,b", "http://a /x", "/rel"])
def test_a_downstream_url_must_be_plain_absolute_http(url: str) -> None:
    with pytest.raises(Exception, match="downstream url"):
        realm(with_(downstream=[{"client_id": "accounts-api", "url": url}]))


def test_kcprov_validate_reports_a_refusal_at_its_file_line(tmp_path: Path) -> None:
    source = tmp_path / "r.yaml"
    source.write_text(
        "realm: r\n"
        "mcp_servers:\n"
        "  - name: calculator\n"
        "    url: http://localhost:3000/mcp\n"
        "    scopes: {mcp:tools: Call tools}\n"
        "    downstream:\n"
        "      - client_id: calculator-resource\n"
    )
    done = subprocess.run([sys.executable, "-m", "kcprov", "validate", str(source)], capture_output=True, text=True)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert f"{source}:7:" in out and "itself" in out and "hint:" in out
    assert "Traceback" not in out


# ---------------------------------------------------------------- the env file's exchange settings


def test_env_values_carry_the_exchange_settings() -> None:
    from kcprov.envgen import ENV_KEYS, env_values

    spec = realm(with_(downstream=[
        {"client_id": "accounts-api", "scopes": ["accounts:read", "accounts:list"], "url": "http://127.0.0.1:9000"},
        {"client_id": "billing-api"},
    ]))
    values = env_values(spec, spec.mcp_servers[0], "http://localhost:8080", exchange_secret="xs3cret")
    assert tuple(values) == ENV_KEYS
    assert values["OAUTH_TOKEN_URL"] == "http://localhost:8080/realms/r/protocol/openid-connect/token"
    assert (values["MCP_EXCHANGE_CLIENT_ID"], values["MCP_EXCHANGE_CLIENT_SECRET"]) == (URL, "xs3cret")
    assert values["MCP_DOWNSTREAM_AUDIENCES"] == "accounts-api,billing-api"
    assert values["MCP_DOWNSTREAM_SCOPES"] == "accounts-api=accounts:read accounts:list"
    assert values["MCP_DOWNSTREAM_URLS"] == "accounts-api=http://127.0.0.1:9000"
    # introspection settings stay empty in jwt mode: the two clients and secrets are separate
    assert (values["OAUTH_CLIENT_ID"], values["OAUTH_CLIENT_SECRET"]) == ("", "")


# ---------------------------------------------------------------- the reference server reads them back


def _example_config():
    import importlib

    directory = str(Path(__file__).resolve().parents[1] / "examples" / "mcp-server")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return importlib.import_module("config")


BASE_ENV = {"MCP_RESOURCE_URL": "http://localhost:3000/mcp", "OAUTH_ISSUER": "http://localhost:8080/realms/r",
            "MCP_SCOPE": "mcp:tools", "MCP_SCOPES": "mcp:tools"}
EXCHANGE_ENV = {**BASE_ENV, "MCP_EXCHANGE_CLIENT_ID": "http://localhost:3000/mcp",
                "MCP_EXCHANGE_CLIENT_SECRET": "xs3cret-do-not-log", "MCP_DOWNSTREAM_AUDIENCES": "accounts-api,billing-api",
                "MCP_DOWNSTREAM_SCOPES": "accounts-api=accounts:read accounts:list",
                "MCP_DOWNSTREAM_URLS": "accounts-api=http://127.0.0.1:9000,billing-api=http://127.0.0.1:9001/v1"}


def test_the_reference_server_reads_the_exchange_settings() -> None:
    config = _example_config().parse_config(EXCHANGE_ENV)
    assert [(d.audience, d.scopes, d.url) for d in config.downstream] == [
        ("accounts-api", ("accounts:read", "accounts:list"), "http://127.0.0.1:9000"),
        ("billing-api", (), "http://127.0.0.1:9001/v1"),
    ]
    assert config.token_url == "http://localhost:8080/realms/r/protocol/openid-connect/token"
    assert config.exchange_client_id == "http://localhost:3000/mcp"
    assert "xs3cret" not in repr(config) and "xs3cret" not in config.summary()
    assert "downstream=accounts-api,billing-api" in config.summary()
    assert _example_config().parse_config(BASE_ENV).downstream == ()


@pytest.mark.parametrize("changes, words", [
    ({"MCP_EXCHANGE_CLIENT_SECRET": ""}, "needs MCP_EXCHANGE_CLIENT_ID and MCP_EXCHANGE_CLIENT_SECRET"),
    ({"MCP_DOWNSTREAM_URLS": "accounts-api=http://127.0.0.1:9000"}, "no URL for 'billing-api'"),
    ({"MCP_DOWNSTREAM_SCOPES": "orders-api=x"}, "not in MCP_DOWNSTREAM_AUDIENCES"),
    ({"MCP_DOWNSTREAM_SCOPES": "accounts-api="}, "expected audience=scope"),
    ({"MCP_DOWNSTREAM_URLS": "accounts-api=http://api.example.com,billing-api=http://127.0.0.1:1"}, "requires https"),
    ({"MCP_DOWNSTREAM_AUDIENCES": "", }, "not in MCP_DOWNSTREAM_AUDIENCES"),
])
def test_bad_exchange_settings_stop_the_server_naming_the_key(changes: dict, words: str) -> None:
    config = _example_config()
    with pytest.raises(config.ConfigError, match=words) as caught:
        config.parse_config({**EXCHANGE_ENV, **changes})
    assert "xs3cret" not in str(caught.value)
