"""The MCP client presets (kcprov/mcp_clients.py): what each expands to, its plan warnings, and a live realm.

Unit tests read the expansion; the live test applies every preset to a realm of
the real Keycloak and registers each DCR preset's redirect URI the way the
client does (anonymous DCR), so the trusted-hosts values are Keycloak's answer,
not ours. CIMD presets cannot fetch their vendors' documents here (no
network); their client policies are checked as stored.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from kcprov.apply import apply_plan
from kcprov.checks import check_setup
from kcprov.connection import ConnectionSettings
from kcprov.init import CLIENT_LINES
from kcprov.keycloak import KeycloakClient
from kcprov.mcp_clients import CIMD_PRESETS, DCR_PRESETS, PRESET_NAMES
from kcprov.resources import KINDS
from kcprov.spec import load_realm
from kcprov.spec.expand import McpExpansionError, expand_mcp_servers
from kcprov.spec.models import RealmSpec
from kcprov.workflow import plan_realm

URL = "http://localhost:3000/mcp"
NEW_PRESETS = ["cursor", "copilot-cli", "chatgpt", "goose", "opencode", "codex"]


def spec_with(*presets: str, registration: dict | None = None, realm: str = "presets") -> RealmSpec:
    body: dict = {"realm": realm, "mcp_servers": [{"name": "calc", "url": URL, "scopes": {"mcp:tools": "Tools"},
                                                   "clients": [{"preset": p} for p in presets]}]}
    if registration is not None:
        body["client_registration"] = {"anonymous": registration}
    return RealmSpec.model_validate(body)


def anonymous(spec: RealmSpec):
    return expand_mcp_servers(spec)[0].client_registration.anonymous


def issue_ids(spec: RealmSpec) -> list[str]:
    return [i.id for i in check_setup(spec, None, "http://localhost:8080")]


def test_every_preset_is_offered_by_init_and_named_in_the_docs() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "mcp-clients.md").read_text()
    for name in PRESET_NAMES:
        assert CLIENT_LINES[name][0] == f"- preset: {name}"
        assert f"`{name}`" in docs, f"docs/mcp-clients.md does not describe preset {name}"


@pytest.mark.parametrize("name", sorted(DCR_PRESETS))
def test_a_dcr_preset_trusts_the_host_of_its_redirect_uri(name: str) -> None:
    preset = DCR_PRESETS[name]
    policy = anonymous(spec_with(name))
    assert set(preset.trusted_hosts) <= set(policy.trusted_hosts)
    assert set(preset.web_origins) <= set(policy.allowed_web_origins or ())
    assert "mcp:tools" in policy.allowed_client_scopes
    assert policy.host_sending_request_must_match is (False if preset.from_anywhere else None)


def test_dcr_presets_add_to_the_files_trusted_hosts() -> None:
    policy = anonymous(spec_with("cursor", "chatgpt", registration={"trusted_hosts": ["localhost"]}))
    assert policy.trusted_hosts == ["localhost", "anysphere.cursor-mcp", "chatgpt.com"]


def test_a_preset_that_registers_from_anywhere_refuses_a_required_sending_host() -> None:
    spec = spec_with("cursor", registration={"host_sending_request_must_match": True})
    with pytest.raises(McpExpansionError) as caught:
        expand_mcp_servers(spec)
    text = str(caught.value)
    assert "preset cursor" in text and "host_sending_request_must_match" in text


@pytest.mark.parametrize("name", ["goose", "opencode", "codex"])
def test_a_cimd_preset_is_a_client_policy_for_its_vendors_domain(name: str) -> None:
    expanded, _ = expand_mcp_servers(spec_with(name))
    [policy] = [p for p in expanded.client_policies.policies if p.name == f"calc-{name}"]
    [profile] = [p for p in expanded.client_policies.profiles if p.name == f"calc-{name}"]
    domain = CIMD_PRESETS[name].client_id_domains[0]
    assert domain in str(policy.model_dump()) and domain in str(profile.model_dump())


def test_chatgpt_warns_that_keycloak_refuses_its_metadata_document() -> None:
    spec = spec_with("chatgpt")
    assert issue_ids(spec).count("preset-cimd-refused") == 1
    [issue] = [i for i in check_setup(spec, None, "http://localhost:8080") if i.id == "preset-cimd-refused"]
    assert "refuses ChatGPT's client ID metadata document" in str(issue) and "DCR" in str(issue)


@pytest.mark.parametrize("name", ["cursor", "copilot-cli", "chatgpt"])
def test_presets_registering_from_anywhere_say_so(name: str) -> None:
    assert "preset-registers-from-anywhere" in issue_ids(spec_with(name))


def test_the_inspector_and_cimd_presets_carry_no_preset_warning() -> None:
    ids = issue_ids(spec_with("mcp-inspector", "goose", "opencode", "codex"))
    assert not {"preset-cimd-refused", "preset-registers-from-anywhere"} & set(ids)


def test_a_preset_warning_can_be_quieted() -> None:
    spec = RealmSpec.model_validate({**spec_with("chatgpt").model_dump(by_alias=True, exclude_none=True),
                                     "x-kcprov-quiet-warnings": ["preset-cimd-refused"]})
    assert spec.quiet_warnings == ["preset-cimd-refused"]


# --------------------------------------------------------------------------- a live realm


@pytest.mark.keycloak
def test_every_new_preset_applies_and_its_clients_register(tmp_path: Path, keycloak, realm_name: str) -> None:
    path = tmp_path / "presets.yaml"
    clients = "\n".join(f"      - preset: {p}" for p in NEW_PRESETS)
    path.write_text(f"realm: {realm_name}\nmcp_servers:\n  - name: calc\n    url: {URL}\n"
                    f"    scopes:\n      mcp:tools: Call the tools\n    clients:\n{clients}\n")
    spec = load_realm(path)
    client = KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user, password=keycloak.password))
    run = plan_realm(client, spec, str(path))
    ids = [w.id for w in run.plan.warnings]
    assert "preset-cimd-refused" in ids and "preset-registers-from-anywhere" in ids
    result = apply_plan(client, run.plan, run.live, run.desired, KINDS)
    assert result.ok, [str(e) for _, e in result.failed]
    assert plan_realm(client, spec, str(path)).plan.empty

    register = f"{keycloak.url}/realms/{realm_name}/clients-registrations/openid-connect"
    for name in ("cursor", "copilot-cli", "chatgpt"):
        redirect = DCR_PRESETS[name].redirect_uri.replace("<port>", "43117")
        done = httpx.post(register, json={
            "redirect_uris": [redirect], "token_endpoint_auth_method": "none", "client_name": name,
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"], "scope": "mcp:tools"})
        assert done.status_code == 201, (name, done.text)
    elsewhere = httpx.post(register, json={"redirect_uris": ["https://evil.example/callback"],
                                           "token_endpoint_auth_method": "none", "scope": "mcp:tools"})
    assert elsewhere.status_code == 403, elsewhere.text

    admin = keycloak.admin(realm_name)
    profiles = {p["name"]: p for p in admin.connection.raw_get(
        f"/admin/realms/{realm_name}/client-policies/profiles").json()["profiles"]}
    for name in ("goose", "opencode", "codex"):
        [executor] = profiles[f"calc-{name}"]["executors"]
        assert CIMD_PRESETS[name].client_id_domains[0] in executor["configuration"]["cimd-allow-permitted-domains"]


def test_the_docs_presets_table_is_generated_from_the_table() -> None:
    from kcprov.mcp_clients import presets_markdown

    docs = (Path(__file__).resolve().parents[1] / "docs" / "mcp-clients.md").read_text()
    block = docs.split("<!-- presets:start -->\n", 1)[1].split("<!-- presets:end -->", 1)[0]
    assert block == presets_markdown(), "regenerate the table: python -c 'from kcprov.mcp_clients import presets_markdown; print(presets_markdown())'"
