"""The text plan as people read it: warnings that wrap between words and can be silenced, DCR clients by name.

Unit tests render constructed Plans (and the real warnings of
realms/mcp-dev.yaml on a synthetic Keycloak 26.7.3 with resource indicators,
the two ~300-character ones every plan printed); one test registers clients
anonymously through DCR on the real Keycloak and plans the realm.
"""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from rich.console import Console
from typer.testing import CliRunner

from kcprov.checks import warnings
from kcprov.cli import app
from kcprov.plan.changes import Change, FieldDiff, Plan, PlanWarning
from kcprov.plan.dcr import DcrClient, dcr_clients
from kcprov.plan.render import BULK, DCR_LISTED, WARNING, render_text
from kcprov.secret import SENSITIVE, Secret
from kcprov.spec import SpecError, load_realm
from kcprov.spec.quiet import KEY, WARNINGS

ROOT = Path(__file__).resolve().parents[1]
MCP_DEV = ROOT / "realms" / "mcp-dev.yaml"
INFO = {"systemInfo": {"version": "26.7.3"},
        "features": [{"name": "CIMD", "enabled": True}, {"name": "RESOURCE_INDICATORS", "enabled": True}]}
URL = "http://localhost:8180"


def mcp_dev_warnings(**changes) -> list[PlanWarning]:
    spec = load_realm(MCP_DEV)
    return warnings(spec.model_copy(update=changes), INFO, URL)


def rendered(plan: Plan, terminal: bool, width: int | None = None) -> str:
    buffer = io.StringIO()
    render_text([plan], Console(file=buffer, width=width, force_terminal=terminal, color_system=None,
                                highlight=False, soft_wrap=True), URL)
    return buffer.getvalue()


def plan_with(warnings=(), unmanaged=(), dcr=None) -> Plan:
    return Plan("r", True, [], 0, "f", unmanaged=list(unmanaged), warnings=list(warnings), dcr_clients=dcr or {})


# ---------------------------------------------------------------- warnings


def test_the_shipped_realm_has_the_two_long_warnings():
    found = mcp_dev_warnings()
    assert [w.id for w in found] == ["resource-indicators-audience", "dcr-default-scopes"]
    assert all(len(w.message) > 250 for w in found)


def test_warnings_wrap_between_words_at_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # what rich reads on a terminal
    found = mcp_dev_warnings()
    text = rendered(plan_with(found), terminal=True)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80
    blocks = "\n".join(lines).split(WARNING)[1:]
    assert len(blocks) == len(found)
    for warning, block in zip(found, blocks):
        block_lines = block.split("\n")
        body = [block_lines[0]] + [line for line in block_lines[1:] if line.startswith(" " * len(WARNING))]
        assert all(line.startswith(" " * len(WARNING)) and line[len(WARNING)] != " " for line in body[1:])
        # the same words in the same order: no word broken, none lost
        assert " ".join(body).split() == f"{warning.message} [{warning.id}]".split()
        assert len(body) >= 4


def test_warnings_are_one_line_each_when_not_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    found = mcp_dev_warnings()
    lines = rendered(plan_with(found), terminal=False).splitlines()
    for warning in found:
        assert f"{WARNING}{warning.message} [{warning.id}]" in lines


def test_a_word_longer_than_the_line_stays_whole():
    url = "https://mcp.example.com/" + "very-long-path-" * 8
    text = rendered(plan_with([PlanWarning("server-url-http", f"url {url} is odd")]), terminal=True, width=60)
    lines = text.splitlines()
    assert lines[1] == "  warning: url" and lines[2] == f"           {url}" and lines[3] == "           is odd [server-url-http]"


def test_warning_text_is_shown_not_interpreted():
    text = rendered(plan_with([PlanWarning("pkce-plain", "client '[red]x\x1b[2J' is odd")]), terminal=True, width=80)
    assert "[red]x\\x1b[2J" in text and "\x1b" not in text


def test_every_warning_has_a_registered_id():
    """The ids in kcprov.checks are exactly the registry's (what --quiet-warning and the file accept)."""
    source = (ROOT / "kcprov" / "checks.py").read_text()
    used = re.findall(r'SetupIssue\("([a-z0-9-]+)",\s*"warning"', source)
    assert sorted(used) == sorted(WARNINGS)  # each once: an id names one check
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", i) and len(i) <= 30 for i in WARNINGS)


def test_json_warnings_carry_the_id():
    doc = plan_with(mcp_dev_warnings()).to_json()
    assert doc["warnings"][1] == {"id": "dcr-default-scopes", "message": mcp_dev_warnings()[1].message}


# ---------------------------------------------------------------- silencing


def test_the_file_silences_warnings_by_id(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(MCP_DEV.read_text() + f"\n{KEY}: [dcr-default-scopes]\n")
    spec = load_realm(path)
    assert spec.quiet_warnings == ["dcr-default-scopes"]
    assert [w.id for w in warnings(spec, INFO, URL)] == ["resource-indicators-audience"]


def test_an_unknown_id_in_the_file_is_a_file_line_error(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(f"realm: r\n{KEY}:\n  - dcr-default-scopes\n  - dcr-default-scope\n")
    with pytest.raises(SpecError) as raised:
        load_realm(path)
    [problem] = raised.value.problems
    assert problem.line == 4 and "unknown warning id 'dcr-default-scope'" in problem.message
    assert "did you mean dcr-default-scopes" in problem.hint


def test_other_x_keys_are_still_ignored(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("realm: r\nx-anchor: &a {anything: 1}\n")
    assert load_realm(path).quiet_warnings == []


def test_an_unknown_quiet_warning_option_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["plan", str(MCP_DEV), "--quiet-warning", "no-such-warning"])
    assert result.exit_code == 2
    assert "unknown warning id 'no-such-warning'" in result.output


# ---------------------------------------------------------------- DCR clients


def dcr(n: int, name: str | None = "Claude Code", day: int | None = 1) -> DcrClient:
    return DcrClient(name, datetime(2026, 11, day, tzinfo=timezone.utc) if day else None)


def test_a_few_dcr_clients_are_listed_with_name_and_date():
    unmanaged = [("client", "1b2c-uuid"), ("client", "3d4e-uuid"), ("client", "by-hand")]
    plan = plan_with(unmanaged=unmanaged, dcr={unmanaged[0]: dcr(0, "My [b]MCP\x1b[2J", 7),
                                                unmanaged[1]: dcr(1, None, None)})
    lines = rendered(plan, terminal=False).splitlines()
    assert "    client.1b2c-uuid  'My [b]MCP\\x1b[2J', registered by DCR on 2026-11-07" in lines
    assert "    client.3d4e-uuid  (no client_name), registered by DCR" in lines
    assert "    client.by-hand" in lines
    doc = plan.to_json()["unmanaged"]
    assert doc[0] == {"kind": "client", "key": "1b2c-uuid", "registered_by": "dcr", "client_name": "My [b]MCP\x1b[2J",
                      "registered": "2026-11-07T00:00:00+00:00"}
    assert doc[2] == {"kind": "client", "key": "by-hand"}


def test_many_dcr_clients_are_one_line_counted_by_name():
    names = ["Claude Code"] * 20 + ["MCP Inspector"] * 12 + ["VS Code"] * 3 + ["a", "b"]
    keys = [("client", f"uuid-{i:02}") for i in range(len(names))]
    clients = {key: dcr(i, name, 1 + i % 28) for i, (key, name) in enumerate(zip(keys, names))}
    plan = plan_with(unmanaged=[*keys, ("client", "by-hand")], dcr=clients)
    text = rendered(plan, terminal=False)
    assert "uuid-" not in text and "    client.by-hand" in text.splitlines()
    [line] = [line for line in text.splitlines() if "registered by DCR" in line]
    assert line.strip() == ("37 clients registered by DCR: 20 'Claude Code', 12 'MCP Inspector', 3 'VS Code', "
                            "2 others (newest: 'MCP Inspector' on 2026-11-28); `kcprov plan --json` lists each")
    assert len(plan.to_json()["unmanaged"]) == 38


def test_ten_dcr_clients_are_still_listed():
    keys = [("client", f"uuid-{i:02}") for i in range(DCR_LISTED)]
    text = rendered(plan_with(unmanaged=keys, dcr={k: dcr(0) for k in keys}), terminal=False)
    assert text.count("registered by DCR on 2026-11-01") == DCR_LISTED


def test_dcr_is_recognised_by_client_id_equal_to_id():
    export = {"clients": [
        {"id": "u-1", "clientId": "u-1", "name": "Conf", "attributes": {"client.secret.creation.time": "1796191733"}},
        {"id": "u-2", "clientId": "u-2", "attributes": {}},
        {"id": "u-3", "clientId": "u-3", "attributes": {"client.secret.creation.time": "9" * 40}},
        {"id": "x-9", "clientId": "by-hand", "name": "Admin made"},
    ]}
    found = dcr_clients(export, [("client", "u-1"), ("client", "u-2"), ("client", "u-3"), ("client", "by-hand"),
                                 ("client_scope", "u-1")])
    assert found == {("client", "u-1"): DcrClient("Conf", datetime.fromtimestamp(1796191733, timezone.utc)),
                     ("client", "u-2"): DcrClient(None, None), ("client", "u-3"): DcrClient(None, None)}
    assert dcr_clients(None, [("client", "u-1")]) == {}


@pytest.mark.keycloak
def test_clients_registered_through_dcr_show_by_name(realm, keycloak, kc_env, tmp_path):
    """Anonymous DCR on the real Keycloak: the plan names the clients, dates the confidential one."""
    admin = keycloak.admin(realm)
    policy_type = "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy"
    [hosts] = [c for c in admin.get_components({"type": policy_type}) if c["providerId"] == "trusted-hosts"]
    hosts["config"].update({"trusted-hosts": ["localhost", "127.0.0.1"], "client-uris-must-match": ["false"]})
    admin.update_component(hosts["id"], hosts)
    register = f"{keycloak.url}/realms/{realm}/clients-registrations/openid-connect"
    redirect = ["http://127.0.0.1:6274/oauth/callback"]
    public = requests.post(register, json={"client_name": "Inspector [b]x", "redirect_uris": redirect,
                                           "token_endpoint_auth_method": "none"}, timeout=30)
    confidential = requests.post(register, json={"client_name": "Server app", "redirect_uris": redirect}, timeout=30)
    assert public.status_code == confidential.status_code == 201, public.text
    issued = confidential.json()["client_id_issued_at"]
    path = tmp_path / "r.yaml"
    path.write_text(f"realm: {realm}\n")

    result = CliRunner().invoke(app, ["plan", str(path)], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    day = datetime.fromtimestamp(issued, timezone.utc).strftime("%Y-%m-%d")
    assert f"    client.{public.json()['client_id']}  'Inspector [b]x', registered by DCR" in lines
    assert f"    client.{confidential.json()['client_id']}  'Server app', registered by DCR on {day}" in lines
    assert confidential.json()["client_secret"] not in result.output

    result = CliRunner().invoke(app, ["plan", str(path), "--json"])
    unmanaged = {u["key"]: u for u in json.loads(result.output)["plans"][0]["unmanaged"]}
    assert unmanaged[public.json()["client_id"]]["registered_by"] == "dcr"
    assert unmanaged[confidential.json()["client_id"]]["registered"] == datetime.fromtimestamp(
        issued, timezone.utc).isoformat()


@pytest.mark.keycloak
def test_the_shipped_realm_on_an_80_column_terminal(realm_name, kc_env, tmp_path):
    """`kcprov plan realms/mcp-dev.yaml` on a real terminal (a pty) of 80 columns: no line is longer."""
    import os
    import pty
    import subprocess
    import sys

    text = MCP_DEV.read_text().replace("realm: mcp-dev", f"realm: {realm_name}")
    path = tmp_path / "mcp-dev.yaml"
    path.write_text(re.sub(r"env_file: .*", "env_file: mcp.env", text))
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1", "TERM": "xterm"}
    with subprocess.Popen([sys.executable, "-m", "kcprov", "plan", str(path)], stdout=follower, stderr=subprocess.PIPE,
                          env=env, cwd=tmp_path) as process:
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the pty is closed once the process is gone
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=300) == 0, process.stderr.read()
    os.close(leader)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", output.decode()).replace("\r\n", "\n").splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(WARNING))
    end = next(i for i, line in enumerate(lines) if line.startswith("  (--quiet-warning"))
    block = lines[first:end]
    assert len(block) >= 8 and max(map(len, block)) <= 80, block
    assert all(line.startswith((WARNING, " " * len(WARNING))) for line in block)
    assert sum(line.startswith(WARNING) for line in block) == 2 and block[-1].endswith("[dcr-default-scopes]")


# ---------------------------------------------------------------- bulk creates


def creates(kind: str, count: int) -> list[Change]:
    return [Change("create", kind, f"app-{i:03d}", 1, (FieldDiff("secret", None, Secret("hunter2-secret")),
                                                          FieldDiff("redirect_uris", None, ["http://localhost/cb"])))
            for i in range(count)]


def test_past_bulk_creates_of_a_kind_are_listed_by_address_then_counted():
    plan = Plan("r", True, creates("client", BULK + 1) + creates("role", 2), 0, "f")
    text = rendered(plan, terminal=False, width=120)
    assert "+ client.app-050\n" in text and "redirect_uris" not in text.split("role.app-000")[0]
    assert f"{BULK + 1} client creates listed without their fields (`--full` shows them)" in text
    assert text.count("redirect_uris") == 2  # the two roles keep their fields
    assert "Plan: 53 to create" in text


def test_full_lists_every_field_and_at_bulk_nothing_is_summed_up():
    plan = Plan("r", True, creates("client", BULK + 1), 0, "f")
    buffer = io.StringIO()
    render_text([plan], Console(file=buffer, width=120, color_system=None), URL, full=True)
    assert buffer.getvalue().count("redirect_uris") == BULK + 1
    assert buffer.getvalue().count(SENSITIVE) == BULK + 1 and "hunter2" not in buffer.getvalue()
    assert "listed without" not in buffer.getvalue()
    assert "listed without" not in rendered(Plan("r", True, creates("client", BULK), 0, "f"), terminal=False, width=120)
