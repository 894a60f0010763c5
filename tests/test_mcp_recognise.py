"""`kcprov export --mcp` recognition, offline: expand a realm, recognise its primitives, expand again.

The property (the issue's "apply it to a fresh realm: plan against the original
is empty", checked without Keycloak): the objects the recognised data manages
(`desired_objects`) equal the original expansion's.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from kcprov.export.check import as_loaded
from kcprov.export.mcp import recognise_mcp_servers
from kcprov.spec import load_realm
from kcprov.spec.expand import expand_mcp_servers
from kcprov.spec.models import RealmSpec
from kcprov.workflow import desired_objects

ROOT = Path(__file__).resolve().parent.parent
E2E_VARS = {"realm": "e2e", "resource": "http://localhost:3000/mcp", "client_uris_must_match": "true",
            "other_resource": "http://localhost:4000/api", "m2m_secret": "s3cret-value"}
URL = "http://localhost:3000/mcp"
CALCULATOR = {
    "name": "calculator", "url": URL,
    "scopes": {"mcp:tools": "Call the calculator tools", "mcp:admin": "Administer the calculator"},
    "tool_scopes": {"add": "mcp:tools", "reset": "mcp:admin"}, "admin_role": "mcp-admin",
    "clients": [{"dcr": {"trusted_hosts": ["localhost"]}}, {"preset": "vscode"}],
}


def primitives(spec: RealmSpec) -> dict:
    """The expanded realm as realm-file data without mcp_servers: what an export of the applied realm says."""
    expanded, _ = expand_mcp_servers(spec)
    data = expanded.model_dump(exclude_none=True, exclude_defaults=True)
    data.pop("mcp_servers", None)
    return data


def round_trip(spec: RealmSpec):
    """Recognise the expanded primitives; assert they manage the same objects; the recognised result."""
    recognised = recognise_mcp_servers(primitives(spec))
    again = RealmSpec.model_validate(recognised.data)
    assert desired_objects(again)[0] == desired_objects(spec)[0]
    return recognised


def spec_of(*servers: dict, **primitives_) -> RealmSpec:
    return RealmSpec.model_validate({"realm": "r", "roles": [{"name": "mcp-admin"}], **primitives_,
                                     "mcp_servers": [copy.deepcopy(s) for s in servers]})


def server(**changes) -> dict:
    return {**copy.deepcopy(CALCULATOR), **changes}


def names(recognised) -> list[str]:
    return [s["name"] for s in recognised.data.get("mcp_servers", [])]


# ---------------------------------------------------------------- the realm files


def test_mcp_dev_realm_comes_back_as_its_entry():
    recognised = round_trip(load_realm(ROOT / "realms/mcp-dev.yaml"))
    (entry,) = recognised.data["mcp_servers"]
    assert entry["name"] == "calculator" and entry["url"] == "http://localhost:3000/mcp"
    assert entry["extra_audiences"] == ["http://localhost:3000"]
    assert list(entry["scopes"]) == ["mcp:tools", "mcp:admin"]  # the base scope first
    assert entry["admin_role"] == "mcp-admin" and entry["tool_scopes"] == {"mcp:admin": "mcp:admin"}
    assert entry["clients"] == [{"dcr": {}}, {"preset": "mcp-inspector"},
                                {"cimd": {"trusted_domains": ["localhost", "127.0.0.1"], "allow_http": True}},
                                {"preset": "vscode"}, {"preset": "claude-code"}]
    data = recognised.data
    assert "client_scopes" not in data
    assert data["client_registration"]["anonymous"]["trusted_hosts"] == ["localhost", "127.0.0.1"]
    assert [c["client_id"] for c in data["clients"]] == ["mcp-server"]  # the file's own client stays
    assert "client_policies" not in data
    assert data["settings"] == {"ssl_required": "external", "registration_allowed": False}
    assert data["client_registration"]["anonymous"]["allowed_client_scopes"] == [
        "openid", "profile", "email", "roles", "web-origins", "basic"]
    assert not [n for n in recognised.notes if "kept as primitives" in n]


def test_good_mcp_realm_file_comes_back():
    """Two servers, introspection with a customised client, resource indicators, cimd settings, a client entry."""
    recognised = round_trip(load_realm(ROOT / "tests/spec/good/mcp_servers.yaml"))
    calculator, notes = recognised.data["mcp_servers"]
    assert notes == {"name": "notes", "url": "https://notes.example.com/mcp", "scopes": {"notes:write": "Write notes"}}
    assert calculator["token_validation"] == "introspection"
    assert calculator["audience_binding"] == "resource-indicators"
    assert calculator["clients"] == [
        {"dcr": {}},
        {"cimd": {"trusted_domains": ["localhost"], "allow_http": True, "required_properties": ["client_name"]}},
        {"preset": "vscode"}, {"preset": "claude-desktop"}]
    assert [c["client_id"] for c in recognised.data["clients"]] == ["m2m-agent"]  # a client entry stays a client
    assert [s["name"] for s in recognised.data["client_scopes"]] == ["notes:read"]


def test_e2e_realm_written_with_other_names_stays_primitives_and_says_why():
    spec = load_realm(ROOT / "tests/e2e/realm.yaml", vars=E2E_VARS)
    recognised = round_trip(spec)
    assert names(recognised) == []
    said = "\n".join(recognised.notes)
    assert "client 'mcp-server' has resource_url http://localhost:3000/mcp but is not named '<server>-resource'" in said
    assert "client scope 'mcp:tools' has an audience mapper for http://localhost:3000/mcp, mcp-server" in said
    assert E2E_VARS["m2m_secret"] not in said


# ---------------------------------------------------------------- variants


@pytest.mark.parametrize("changes", [
    {"token_validation": "introspection"},
    {"token_validation": "introspection", "introspection_client": "calc-checker"},
    {"audience_binding": "resource-indicators"},
    {"extra_audiences": ["http://localhost:3000", "urn:calc"]},
    {"clients": []},  # no DCR
    {"clients": [{"cimd": {"trusted_domains": ["mcp.example.com"], "restrict_same_domain": True,
                           "only_confidential": True, "accept_public_client_with_confidential_grant_types": False}}]},
    {"clients": [{"preset": "claude-code"}]},
    {"clients": [{"preset": "mcp-inspector"}]},
    {"admin_role": None, "tool_scopes": None},
    {"access_token_lifespan": "10m"},
], ids=["introspection", "introspection-client", "resource-indicators", "extra-audiences", "no-dcr",
        "cimd-without-preset", "claude-code", "inspector", "no-admin", "lifespan"])
def test_variant_comes_back(changes):
    recognised = round_trip(spec_of(server(**changes)))
    assert names(recognised) == ["calculator"]
    entry = recognised.data["mcp_servers"][0]
    for key in ("token_validation", "audience_binding", "introspection_client", "extra_audiences"):
        if key in changes:
            assert entry[key] == changes[key]


def test_two_servers_sharing_presets_come_back_in_an_order_that_names_them_the_same():
    zebra = server(name="zebra", url="https://zebra.example/mcp", scopes={"zebra:use": "Use zebra"}, tool_scopes=None,
                   admin_role=None, clients=[{"preset": "vscode"}, {"preset": "claude-code"}, {"dcr": {}}])
    alpha = server(name="alpha", url="https://alpha.example/mcp", scopes={"alpha:use": "Use alpha"}, tool_scopes=None,
                   admin_role=None, clients=[{"preset": "vscode"}, {"preset": "claude-desktop"}])
    recognised = round_trip(spec_of(zebra, alpha))  # the pairs are named zebra-vscode, zebra-claude
    assert names(recognised) == ["zebra", "alpha"]


def test_the_realm_lifespan_stays_a_setting():
    recognised = round_trip(spec_of(server(access_token_lifespan="10m")))
    assert recognised.data["settings"] == {"access_token_lifespan": 600}


def test_a_pair_changed_by_hand_stays_primitives_with_the_reason():
    data = primitives(spec_of(server()))
    profile = next(p for p in data["client_policies"]["profiles"] if p["name"] == "calculator-vscode")
    profile["executors"][0]["config"]["cimd-restrict-same-domain"] = "true"
    recognised = recognise_mcp_servers(data)
    assert names(recognised) == ["calculator"]
    assert {"preset": "vscode"} not in recognised.data["mcp_servers"][0]["clients"]
    assert "calculator-vscode" in {p["name"] for p in recognised.data["client_policies"]["profiles"]}
    assert any(n.startswith("client profile and policy 'calculator-vscode' kept as primitives: as vscode of "
                            "calculator, it would not load") and "already defined differently" in n
               for n in recognised.notes)
    assert desired_objects(RealmSpec.model_validate(recognised.data))[0] == \
        desired_objects(RealmSpec.model_validate(data))[0]


def test_a_realm_without_the_pkce_policy_keeps_its_server_as_primitives():
    data = primitives(spec_of(server()))
    data["client_policies"]["policies"] = [p for p in data["client_policies"]["policies"] if p["name"] != "mcp-pkce"]
    recognised = recognise_mcp_servers(data)
    assert names(recognised) == []
    assert any("MCP server 'calculator' (http://localhost:3000/mcp) kept as primitives: as an mcp_servers entry, "
               "it would add client policy 'mcp-pkce'" in n for n in recognised.notes)


def test_fields_the_data_leaves_out_count_as_the_live_values():
    """The exporter writes only what differs from a new realm: `live` says what the rest holds."""
    spec = spec_of(server(clients=[]))
    data = primitives(spec)
    scope = next(s for s in data["client_scopes"] if s["name"] == "mcp:tools")
    del scope["include_in_token_scope"]  # true in a new scope: an export leaves it out
    assert names(recognise_mcp_servers(data)) == []
    live = desired_objects(spec)[0]
    assert names(recognise_mcp_servers(data, live=live)) == ["calculator"]


def test_the_exporters_document_shape_is_read_and_given_back():
    """The exporter holds named entries as {identity: entry} until it writes them (kcprov.export.document)."""
    data = primitives(spec_of(server(), client_scopes=[{"name": "notes:read", "type": "optional"}],
                             clients=[{"client_id": "web", "mappers": [{"name": "aud", "audience": "urn:x"}]}]))
    by_name = {**data, "client_scopes": {s["name"]: s for s in data["client_scopes"]},
               "clients": {c["client_id"]: {**c, "mappers": {m["name"]: m for m in c.get("mappers", [])}}
                           for c in data["clients"]}}
    by_name["client_policies"] = {k: {e["name"]: e for e in v} for k, v in data["client_policies"].items()}
    folded = recognise_mcp_servers(by_name).data
    assert list(folded["clients"]) == ["web"] and list(folded["client_scopes"]) == ["notes:read"]
    assert list(folded["clients"]["web"]["mappers"]) == ["aud"]
    assert as_loaded(folded) == recognise_mcp_servers(data).data


def test_recognising_twice_changes_nothing_more():
    first = recognise_mcp_servers(primitives(load_realm(ROOT / "realms/mcp-dev.yaml")))
    assert recognise_mcp_servers(first.data).data == first.data


def test_data_that_does_not_load_is_a_note_not_an_error():
    data = primitives(spec_of(server(clients=[])))
    next(s for s in data["client_scopes"] if s["name"] == "mcp:tools")["type"] = "weird"
    recognised = recognise_mcp_servers(data)
    assert names(recognised) == []
    assert any(n.startswith("--mcp left the realm as primitives: its data does not load (client_scopes.") for n in recognised.notes)


def test_the_written_file_keeps_the_base_scope_first_and_loads_to_the_same_objects(tmp_path):
    """The emitter sorts raw maps, but not an MCP server's scopes: the first is the base scope."""
    from kcprov.export.emit import emit

    spec = spec_of(server(scopes={"z:tools": "Use", "a:admin": "Administer"}, tool_scopes={"reset": "a:admin"}))
    recognised = recognise_mcp_servers(primitives(spec))
    path = tmp_path / "realm.yaml"
    path.write_text(emit(recognised.data, {}, [], []))
    loaded = load_realm(path)
    assert list(loaded.mcp_servers[0].scopes) == ["z:tools", "a:admin"]
    assert desired_objects(loaded)[0] == desired_objects(spec)[0]


@pytest.mark.parametrize("break_it", [
    lambda d: d["clients"].append("not a client"),
    lambda d: d["client_scopes"][0].update(mappers=[{"name": None}]),
    lambda d: d["client_scopes"][0].update(scope_roles={"realm": [1, "mcp-admin"]}),
    lambda d: d.pop("realm"),
    lambda d: d.update(client_policies=[]),
    lambda d: d["clients"][0].update(client_id=7, attributes={"resource_url": None}),
], ids=["entry-not-a-mapping", "mapper-without-name", "role-number", "no-realm", "policies-a-list", "id-a-number"])
def test_malformed_data_is_a_note_or_recognised_never_an_exception(break_it):
    data = primitives(load_realm(ROOT / "realms/mcp-dev.yaml"))
    break_it(data)
    recognised = recognise_mcp_servers(data)
    assert names(recognised) in ([], ["calculator"])
    assert names(recognised) or recognised.notes


# ---------------------------------------------------------------- against Keycloak


def kcprov(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kcprov.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def renamed(text: str, realm: str) -> str:
    return re.sub(r"(?m)^realm: .*$", f"realm: {realm}", text, count=1)


LIVE_CASES = {
    # realm file -> (client it writes itself, [(server, scopes, clients entries)] the export gives back)
    "realms/mcp-dev.yaml": ("mcp-server", [
        ("calculator", ["mcp:tools", "mcp:admin"], ["dcr", "mcp-inspector", "cimd", "claude-code", "vscode"])]),
    "tests/spec/good/mcp_servers.yaml": ("m2m-agent", [  # introspection, resource indicators, two servers
        ("calculator", ["mcp:tools", "mcp:admin"], ["dcr", "cimd", "claude-desktop", "vscode"]),
        ("notes", ["notes:write"], [])]),
}


@pytest.mark.parametrize("source", list(LIVE_CASES), ids=["mcp-dev", "good-mcp-servers"])
def test_export_mcp_applies_to_a_fresh_realm_that_plans_empty_against_the_original(
        source, tmp_path, kc_env, realm_name, second_realm_name, monkeypatch):
    own_client, servers = LIVE_CASES[source]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "SOURCE_DATE_EPOCH": "1800000000"}
    text = (ROOT / source).read_text()
    (tmp_path / "source.yaml").write_text(renamed(re.sub(r"(?m)^\s*env_file:.*$", "", text), realm_name))
    outputs = [kcprov("apply", "source.yaml", "--auto-approve", env=env, cwd=tmp_path)]
    assert outputs[-1].returncode == 0, outputs[-1].stdout + outputs[-1].stderr

    outputs.append(kcprov("export", "--realm", realm_name, "--mcp", "-o", "a.yaml", "--secrets-env", "a.env",
                          env=env, cwd=tmp_path))
    assert outputs[-1].returncode == 0, outputs[-1].stderr
    outputs.append(kcprov("export", "--realm", realm_name, "--mcp", "-o", "b.yaml", env=env, cwd=tmp_path))
    text = (tmp_path / "a.yaml").read_text()
    assert (tmp_path / "b.yaml").read_text() == text, "export --mcp twice is byte-identical"
    assert f"  - client_id: {own_client}\n" in text, "the file's own client stays a client"
    assert "kept as primitives" not in text

    secrets = {k: v for k, v in dotenv_values(tmp_path / "a.env").items() if v}
    assert secrets, "the confidential clients' secrets are env references"
    with_secrets = {**env, **secrets}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    assert [(e.name, list(e.scopes), [c.preset or next(k for k in ("dcr", "cimd") if getattr(c, k))
                                      for c in e.clients])
            for e in load_realm(tmp_path / "a.yaml").mcp_servers] == servers

    (tmp_path / "copy.yaml").write_text(renamed(text, second_realm_name))
    outputs.append(kcprov("apply", "copy.yaml", "--auto-approve", env=with_secrets, cwd=tmp_path))
    assert outputs[-1].returncode == 0, outputs[-1].stdout + outputs[-1].stderr
    for target in ("a.yaml", "copy.yaml"):  # the original realm, and the one made from the export
        outputs.append(kcprov("plan", target, "--detailed-exitcode", env=with_secrets, cwd=tmp_path))
        assert outputs[-1].returncode == 0, outputs[-1].stdout + outputs[-1].stderr

    for value in secrets.values():
        assert value not in text
        assert not any(value in r.stdout + r.stderr for r in outputs)
    assert not any("Traceback" in r.stdout + r.stderr for r in outputs)
