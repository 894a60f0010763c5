"""The model contract the diff engine relies on: unset means unmanaged, secrets stay hidden."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kcprov.spec.fields import parse_duration
from kcprov.spec.models import Client, McpServer, ProtocolMapper, RealmSettings, RealmSpec


@pytest.mark.parametrize(
    "value, seconds",
    [(300, 300), ("300", 300), ("300s", 300), ("5m", 300), ("1h", 3600), ("1d", 86400), (" 2 m ", 120), (0, 0)],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds
    assert RealmSettings(access_token_lifespan=value).access_token_lifespan == seconds


@pytest.mark.parametrize("value", ["5 minutes", "1w", "-5", -5, 1.5, True, "", [5]])
def test_invalid_durations(value):
    with pytest.raises(ValidationError) as caught:
        RealmSettings(access_token_lifespan=value)
    assert caught.value.errors()[0]["ctx"]["hint"].startswith("write seconds")


def test_unwritten_fields_are_none_and_unset():
    spec = RealmSpec.model_validate({"realm": "r", "clients": [{"client_id": "a"}]})
    client = spec.clients[0]
    assert client.model_dump(exclude_unset=True) == {"client_id": "a"}
    assert client.confidential is None and client.default_scopes is None and client.attributes is None
    assert client.roles == [] and client.mappers == []
    assert (spec.settings, spec.client_registration, spec.client_policies) == (None, None, None)
    assert spec.roles == spec.client_scopes == spec.users == spec.mcp_servers == []


def test_secrets_never_show_in_repr_or_dump():
    client = Client(client_id="a", confidential=True, secret="hunter2")
    assert "hunter2" not in repr(client) and "hunter2" not in client.model_dump_json()
    assert client.secret.get_secret_value() == "hunter2"


def test_raw_maps_become_keycloak_strings():
    mapper = ProtocolMapper(
        name="m", protocol_mapper="oidc-usermodel-realm-role-mapper", config={"multivalued": True, "n": 3, "s": "x"}
    )
    assert mapper.config == {"multivalued": "true", "n": "3", "s": "x"}


def test_client_roles_accept_strings_and_objects():
    client = Client(client_id="a", roles=["r", {"name": "q", "description": "d"}])
    assert [(r.name, r.description) for r in client.roles] == [("r", None), ("q", "d")]


def test_mcp_server_effective_defaults():
    server = McpServer(
        name="calc",
        url="http://localhost:3000/mcp",
        scopes={"mcp:tools": "Tools", "mcp:admin": "Admin"},
        tool_scopes={"add": "mcp:tools", "reset": "mcp:admin"},
        token_validation="introspection",
    )
    assert server.admin_tools == ["reset"]
    assert server.introspection_client == "calc-introspector"
    assert server.audience_binding == "mapper"
    assert list(server.scopes) == ["mcp:tools", "mcp:admin"]  # order kept: the first is the base scope


def test_top_level_x_keys_are_ignored():
    spec = RealmSpec.model_validate({"realm": "r", "x-defaults": {"anything": 1}})
    assert spec.realm == "r"
