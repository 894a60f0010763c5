"""Pure parts of `kcprov export`: the YAML emitter, secret names, comments, and what no kind models.

The emitter's contract is checked by reading its output back with the real
loader (`kcprov.spec.load_realm`): emit -> load -> the same data.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kcprov.export import comment_text, footer, without_userinfo
from kcprov.export.check import drop_invalid
from kcprov.export.document import EnvReference, ExportContext, env_name
from kcprov.export.emit import emit, jinja_literal
from kcprov.export.unmodelled import not_modelled
from kcprov.resources.roles import mapping_of, mapping_refs
from kcprov.resources.scopes import mapper_attrs, mapper_shortcut
from kcprov.spec import load_realm
from kcprov.spec.models import ProtocolMapper
from kcprov.state import LiveState, RawRealm

TRICKY = ["0777", "true", "on", "yes", "null", "~", "2020-01-01", "1.5e3", "0x1f", "", " padded ", "a: b",
          "[list]", "{map}", "#hash", "x # y", "{{ env.HOME }}", "a{%b", "{#c#}", "{{{", "line\nbreak",
          "Zoë", "'single'", '"double"', "*alias", "&anchor", "!tag", "%percent", "@at", "`tick`"]


def load(tmp_path: Path, text: str):
    path = tmp_path / "exported.yaml"
    path.write_text(text)
    return load_realm(path)


def test_tricky_strings_read_back_as_the_same_text(tmp_path):
    attributes = {f"k{i}": value for i, value in enumerate(TRICKY)}
    doc = {"realm": "r", "display_name": "0777", "settings": {"password_policy": "true", "attributes": attributes}}
    text = emit(doc, {}, ["header"], [])
    for quoted in ('"0777"', '"true"', '"on"', '"yes"', '"null"', '"2020-01-01"'):
        assert quoted in text  # no YAML 1.1 reader takes them for numbers, booleans or dates either
    spec = load(tmp_path, text)
    assert spec.display_name == "0777"
    assert spec.settings.password_policy == "true"
    assert spec.settings.attributes == attributes


def test_lists_of_named_entries_are_sorted_and_keys_follow_the_models(tmp_path):
    doc = {
        "users": {"bob": {"username": "bob"}},
        "clients": {"zeta": {"client_id": "zeta", "redirect_uris": ["http://b/cb", "http://a/x,y"]},
                    "alpha": {"client_id": "alpha", "roles": {"r2": {"name": "r2"}, "r1": {"name": "r1", "description": "on"}}}},
        "roles": {"b": {"name": "b"}, "a": {"name": "a", "description": "null"}},
        "realm": "r",
    }
    text = emit(doc, {}, [], [])
    spec = load(tmp_path, text)
    assert [c.client_id for c in spec.clients] == ["alpha", "zeta"]
    assert [r.name for r in spec.clients[0].roles] == ["r1", "r2"]
    assert spec.clients[0].roles[0].description == "on"
    assert spec.clients[1].redirect_uris == ["http://b/cb", "http://a/x,y"]
    assert [r.name for r in spec.roles] == ["a", "b"] and spec.roles[0].description == "null"
    assert text.index("realm:") < text.index("roles:") < text.index("clients:") < text.index("users:")


def test_an_env_reference_stays_a_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("KC_R_CLIENT_APP_SECRET", "from-the-environment")
    doc = {"realm": "r", "clients": {"app": {"client_id": "app", "confidential": True,
                                             "secret": EnvReference("{{ env.KC_R_CLIENT_APP_SECRET }}")}}}
    spec = load(tmp_path, emit(doc, {}, [], []))
    assert spec.clients[0].secret.get_secret_value() == "from-the-environment"


def test_comments_cannot_break_out_of_their_line_or_into_the_template(tmp_path):
    hostile = "idp\nrealm: other {{ env.HOME }} {% raw %}"
    text = emit({"realm": "r", "settings": {"access_token_lifespan": 600}},
                {("settings", "access_token_lifespan"): "Keycloak default is 300"},
                [comment_text(f"from {hostile}")], footer([f"identity provider '{hostile}'"]))
    assert "access_token_lifespan: 600  # Keycloak default is 300" in text
    spec = load(tmp_path, text)
    assert spec.realm == "r" and spec.settings.access_token_lifespan == 600
    assert all(line.startswith("#") for line in text.splitlines() if "idp" in line)


def test_the_header_never_carries_credentials_of_the_url():
    assert without_userinfo("https://admin:pw@kc.example.com:8443/auth") == "https://kc.example.com:8443/auth"


def test_jinja_openings_are_escaped_and_nothing_else():
    assert jinja_literal("plain } text }}") == "plain } text }}"
    assert jinja_literal("{{x}}") == "{{ '{' }}{x}}"


def test_secret_names_are_uppercased_and_numbered_on_collision():
    ctx = ExportContext("my-realm", LiveState("my-realm", True, {}, {}, RawRealm("my-realm", {})))
    assert env_name("my-realm", "client", "mcp-server") == "KC_MY_REALM_CLIENT_MCP_SERVER_SECRET"
    first = ctx.secret_ref("client", "a.b")
    second = ctx.secret_ref("client", "a-b")
    assert first == "{{ env.KC_MY_REALM_CLIENT_A_B_SECRET }}"
    assert second == "{{ env.KC_MY_REALM_CLIENT_A_B_SECRET_2 }}"
    assert ctx.secret_ref("client", "a.b") == first  # the same object keeps its name
    assert ctx.secrets == {"KC_MY_REALM_CLIENT_A_B_SECRET": ("client", "a.b"),
                           "KC_MY_REALM_CLIENT_A_B_SECRET_2": ("client", "a-b")}


@pytest.mark.parametrize("short", [
    {"audience": "http://localhost:3000/mcp"},
    {"audience": "https://x", "id_token": True},
    {"audience": "https://x", "access_token": False, "introspection": False},
])
def test_audience_shortcut_gives_back_the_shortcut(short):
    attrs = mapper_attrs(ProtocolMapper(name="aud", **short))
    assert mapper_shortcut("aud", attrs) == short


def test_audience_mapper_with_more_config_stays_generic():
    attrs = {**mapper_attrs(ProtocolMapper(name="aud", audience="https://x")), "config.lightweight.claim": "false"}
    assert mapper_shortcut("aud", attrs) is None


def test_role_mapping_round_trip():
    mapping = {"realm": ["a", "b"], "account": ["view-profile"]}
    assert mapping_of(mapping_refs(mapping)) == mapping


BASE = {
    "authenticationFlows": [{"id": "1", "alias": "browser", "authenticationExecutions": [{"authenticator": "a"}]}],
    "requiredActions": [{"alias": "VERIFY_EMAIL", "enabled": True}],
    "components": {"org.keycloak.keys.KeyProvider": [{"id": "k", "name": "rsa-generated", "providerId": "rsa-generated",
                                                      "config": {"priority": ["100"]}}]},
    "roles": {"realm": [{"name": "admin", "composites": {"realm": ["a", "b"]}}]},
    "eventsListeners": ["jboss-logging"],
}


def test_nothing_unmodelled_in_a_realm_like_the_baseline():
    same = {
        "authenticationFlows": [{"id": "2", "alias": "browser", "authenticationExecutions": [{"authenticator": "a"}]}],
        "requiredActions": [{"alias": "VERIFY_EMAIL", "enabled": True}],
        "components": {"org.keycloak.keys.KeyProvider": [{"id": "other", "name": "rsa-generated",
                                                          "providerId": "rsa-generated", "config": {"priority": ["7"]}}]},
        "roles": {"realm": [{"name": "admin", "composites": {"realm": ["b", "a"]}}]},
        "eventsListeners": ["jboss-logging"],
    }
    assert list(not_modelled(same, BASE)) == []


def test_changed_and_added_objects_are_listed():
    changed = {
        "authenticationFlows": [{"alias": "browser", "authenticationExecutions": [{"authenticator": "otp"}]}],
        "requiredActions": [{"alias": "VERIFY_EMAIL", "enabled": False}],
        "identityProviders": [{"alias": "github"}],
        "components": {"org.keycloak.storage.UserStorageProvider": [{"name": "ldap", "providerId": "ldap"}]},
        "roles": {"realm": [{"name": "admin", "composites": {"realm": ["a"]}}]},
        "eventsListeners": ["jboss-logging", "email"],
        "scopeMappings": [{"client": "app", "roles": ["admin"]}],
    }
    assert sorted(not_modelled(changed, BASE)) == [
        ("component UserStorageProvider", "ldap (ldap)"),
        ("composite role", "admin"),
        ("scope mappings of client", "app"),
    ]  # required actions and event settings have their kinds (kcprov.resources.required_actions, .events)


def test_an_entry_the_format_refuses_is_left_out_and_listed():
    ctx = ExportContext("r", LiveState("r", True, {}, {}, RawRealm("r", {})))
    ctx.doc = {"realm": "r",
               "clients": {"good": {"client_id": "good"},
                           "bad id": {"client_id": "bad id"},
                           "app": {"client_id": "app", "mappers": {"m": {"name": "m"}}}},  # mapper without a kind
               "display_name": "zero\u200bwidth"}
    drop_invalid(ctx)
    assert ctx.doc == {"realm": "r", "clients": {"good": {"client_id": "good"}, "app": {"client_id": "app"}}}
    assert sorted(line.split(":")[0] for line in ctx.skipped) == ["client 'bad id'", "mapper 'm'", "realm file key 'display_name'"]
