"""`kcprov audit` outputs, waivers, the source map and the command: pure functions and the CLI, no Keycloak.

The SARIF log is validated against the official SARIF 2.1.0 schema, vendored in
tests/sarif/ (SOURCE.md says where it comes from). The README's rule table is
checked against the rule registry, so it cannot drift from the rules.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import stat
import sys
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from kcprov.audit import report
from kcprov.audit.command import all_rules, rules_markdown
from kcprov.audit.locate import RealmSource
from kcprov.audit.rules import Finding, Location, Rule, Severity, Waivers
from kcprov.audit.waivers import read_waivers
from kcprov.cli import main
from kcprov.spec.loader import load_realms_located
from test_audit_server import dev_realm, server_config  # noqa: F401 (fixtures: mcp-dev applied, the reference server)

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "tests" / "sarif" / "sarif-schema-2.1.0.json").read_text())
HAVE_REALM_RULES = importlib.util.find_spec("kcprov.audit.realm_rules") is not None
needs_realm_rules = pytest.mark.skipif(not HAVE_REALM_RULES, reason="kcprov/audit/realm_rules.py is not there yet")

HIGH = Rule("test-long-token", Severity.HIGH, "Access tokens live long", "A46; seed: short-lived tokens",
            "set settings.access_token_lifespan to 15m or less", "realm")
MEDIUM = Rule("test-open-dcr", Severity.MEDIUM, "Anonymous DCR without trusted hosts", "A51", "set trusted_hosts", "realm")
LOW = Rule("test-old-keycloak", Severity.LOW, "Keycloak before 26.8", "keycloak#50807", "upgrade Keycloak", "live")
SERVER = Rule("test-no-prm", Severity.HIGH, "No protected resource metadata", "A2", "serve PRM", "server")
RULES = {r.id: r for r in (HIGH, MEDIUM, LOW, SERVER)}

AT_FILE = Location(file="realms/weak.yaml", line=9, column=3)
FINDINGS = [
    Finding(MEDIUM, "anonymous registration accepts any host", Location(file="realms/weak.yaml", line=20, column=5)),
    Finding(HIGH, "access tokens live 1 day", AT_FILE),
    Finding(LOW, "Keycloak 26.7.3 drops default scopes of DCR clients", Location(realm="prod", resource="realm")),
    Finding(SERVER, "no PRM at the well-known URL", Location(url="https://mcp.example/mcp")),
    Finding(MEDIUM, "DCR allows 10000 clients", Location(file="realms/weak.yaml", line=22, column=5),
            waived="load test realm, deleted nightly"),
]


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=200, color_system=None, highlight=False), buffer


# ---------------------------------------------------------------- exit code


@pytest.mark.parametrize(("fail_on", "code"), [(Severity.LOW, 3), (Severity.MEDIUM, 3), (Severity.HIGH, 3)])
def test_exit_code_counts_findings_at_or_above_fail_on(fail_on, code):
    assert report.exit_code(FINDINGS, fail_on) == code


def test_waived_findings_never_count():
    waived = [Finding(HIGH, "tokens live long", AT_FILE, waived="reviewed")]
    assert report.exit_code(waived, Severity.LOW) == 0
    assert report.exit_code([*waived, Finding(LOW, "old", AT_FILE)], Severity.MEDIUM) == 0
    assert report.exit_code([*waived, Finding(LOW, "old", AT_FILE)], Severity.LOW) == report.FINDINGS_EXIT == 3
    assert report.exit_code([], Severity.LOW) == 0


def test_summary_line():
    assert report.summary(FINDINGS, Severity.HIGH) == "4 findings (2 high, 1 medium, 1 low), 1 waived; 2 at or above high"
    assert report.summary([], Severity.MEDIUM) == "0 findings; none at or above medium"


# ---------------------------------------------------------------- text and table


def test_plain_text_is_one_linkable_line_per_finding_with_its_fix():
    console, buffer = _console(terminal=False)
    report.render_text(FINDINGS, console, Severity.MEDIUM)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "realms/weak.yaml:9:3: high test-long-token: access tokens live 1 day"
    assert lines[1] == "  fix: set settings.access_token_lifespan to 15m or less — rests on A46; seed: short-lived tokens"
    assert "https://mcp.example/mcp: high test-no-prm: no PRM at the well-known URL" in lines
    assert "realm 'prod' realm: low test-old-keycloak: Keycloak 26.7.3 drops default scopes of DCR clients" in lines
    assert ("realms/weak.yaml:22:5: medium test-open-dcr: DCR allows 10000 clients (waived: load test realm, deleted "
            "nightly)") == lines[-3]  # waived findings come last
    assert lines[-1] == "4 findings (2 high, 1 medium, 1 low), 1 waived; 3 at or above medium"


def test_table_on_a_terminal():
    console, buffer = _console(terminal=True)
    report.render_text(FINDINGS, console, Severity.MEDIUM)
    text = buffer.getvalue()
    assert "┃ severity" in text and "test-long-token" in text and "realms/weak.yaml:9:3" in text
    assert "fix: set trusted_hosts" in text and "rests on: A51" in text
    assert "waived: load test realm, deleted nightly" in text


@pytest.mark.parametrize("terminal", [True, False])
def test_text_from_outside_cannot_drive_the_terminal_or_rich_markup(terminal):
    hostile = Finding(MEDIUM, "client '\x1b]0;owned\x07[bold]x[/bold]' is open", Location(realm="r", resource="client"),
                      waived="\x1b[2Jreason")
    console, buffer = _console(terminal)
    report.render_text([hostile], console, Severity.MEDIUM)
    text = buffer.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;owned\\x07" in text and "[bold]x[/bold]" in text.replace("\n", "").replace(" ", "").replace("│", "")
    assert "\\x1b[2Jreason" in text


# ---------------------------------------------------------------- JSON


def test_json_document():
    document = json.loads(report.render_json(FINDINGS, [HIGH, MEDIUM], Severity.MEDIUM))
    assert document["format"] == 1 and document["tool"]["name"] == "kcprov"
    assert document["fail_on"] == "medium" and document["exit_code"] == 3
    assert document["rules"][0] == {"id": "test-long-token", "severity": "high", "title": "Access tokens live long",
                                    "rests_on": "A46; seed: short-lived tokens",
                                    "fix": "set settings.access_token_lifespan to 15m or less", "scope": "realm"}
    first, *_, last = document["findings"]
    assert first == {"rule": "test-long-token", "severity": "high", "message": "access tokens live 1 day",
                     "location": {"file": "realms/weak.yaml", "line": 9, "column": 3}, "waived": None}
    assert last["waived"] == "load test realm, deleted nightly"
    assert {"realm": "prod", "resource": "realm"} in [f["location"] for f in document["findings"]]
    assert report.render_json(list(reversed(FINDINGS)), [HIGH, MEDIUM], Severity.MEDIUM) == \
        report.render_json(FINDINGS, [HIGH, MEDIUM], Severity.MEDIUM)  # stable: the same findings, the same bytes


# ---------------------------------------------------------------- SARIF


def _valid_sarif(text: str) -> dict:
    log = json.loads(text)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    return log


def test_sarif_validates_against_the_official_schema(tmp_path):
    log = _valid_sarif(report.render_sarif(FINDINGS, [HIGH, MEDIUM], base=tmp_path))
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    [run] = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "kcprov"
    rules = {r["id"]: r for r in driver["rules"]}
    assert set(rules) == set(RULES)  # the rules used, plus any rule a result names
    rule = rules["test-long-token"]
    assert rule["shortDescription"]["text"] == "Access tokens live long"
    assert "A46; seed: short-lived tokens" in rule["fullDescription"]["text"]
    assert "set settings.access_token_lifespan to 15m or less" in rule["help"]["text"]
    assert rule["defaultConfiguration"]["level"] == "error"
    assert rules["test-open-dcr"]["defaultConfiguration"]["level"] == "warning"
    assert rules["test-old-keycloak"]["defaultConfiguration"]["level"] == "note"
    results = run["results"]
    assert [r["ruleId"] for r in results] == ["test-long-token", "test-no-prm", "test-open-dcr", "test-old-keycloak",
                                              "test-open-dcr"]
    for result in results:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    assert results[0]["level"] == "error" and results[0]["message"]["text"] == "access tokens live 1 day"
    assert results[0]["locations"] == [{"physicalLocation": {
        "artifactLocation": {"uri": "realms/weak.yaml", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 9, "startColumn": 3}}}]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"
    assert results[1]["locations"] == [{"logicalLocations": [{"name": "https://mcp.example/mcp", "kind": "resource"}]}]
    assert results[3]["locations"] == [{"logicalLocations": [
        {"name": "realm", "kind": "resource", "fullyQualifiedName": "realm 'prod' realm"}]}]
    assert "suppressions" not in results[0]
    assert results[4]["suppressions"] == [{"kind": "inSource", "justification": "load test realm, deleted nightly"}]


def test_sarif_uri_of_a_file_outside_the_working_directory_is_absolute(tmp_path):
    outside = Finding(HIGH, "long tokens", Location(file="/srv/realms/prod realm.yaml", line=1, column=1))
    log = _valid_sarif(report.render_sarif([outside], [HIGH], base=tmp_path))
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": "file:///srv/realms/prod%20realm.yaml"}


def test_sarif_of_a_clean_audit_is_valid_too(tmp_path):
    log = _valid_sarif(report.render_sarif([], [HIGH, MEDIUM], base=tmp_path))
    assert log["runs"][0]["results"] == [] and len(log["runs"][0]["tool"]["driver"]["rules"]) == 2


# ---------------------------------------------------------------- waivers and the source map


@pytest.fixture(autouse=True)
def here(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)


def _source(tmp_path: Path, text: str, name: str = "realm.yaml") -> RealmSource:
    path = tmp_path / name  # the tests run in tmp_path (the `here` fixture): files are shown relative to it
    path.write_text(text)
    [(_, locator)] = load_realms_located([path])
    return RealmSource(locator)


def test_waivers_are_read_from_the_document(tmp_path):
    source = _source(tmp_path, 'realm: w\nx-audit-waive:\n  test-long-token: " batch clients, reviewed "\n')
    waivers, problems = read_waivers(source, RULES)
    assert problems == [] and waivers.reasons == {"test-long-token": "batch clients, reviewed"}
    assert waivers.apply(Finding(HIGH, "m", AT_FILE)).waived == "batch clients, reviewed"
    assert waivers.apply(Finding(MEDIUM, "m", AT_FILE)).waived is None
    assert read_waivers(_source(tmp_path, "realm: w\n", "plain.yaml"), RULES)[0] == Waivers()


@pytest.mark.parametrize(("body", "line", "message", "hint"), [
    ("x-audit-waive: [test-long-token]\n", 2, "x-audit-waive: expected a mapping of rule id: reason", "write x-audit-waive:"),
    ("x-audit-waive:\n  test-long-tokn: why\n", 3, "unknown audit rule 'test-long-tokn'", "did you mean 'test-long-token'?"),
    ("x-audit-waive:\n  no-such-thing: why\n", 3, "unknown audit rule 'no-such-thing'", "README's Audit section"),
    ("x-audit-waive:\n  test-long-token: ''\n", 3, "the waiver of 'test-long-token' has no reason", "say why"),
    ("x-audit-waive:\n  test-long-token:\n", 3, "the waiver of 'test-long-token' has no reason", "say why"),
    ("x-audit-waive:\n  test-long-token: 42\n", 3, "the waiver of 'test-long-token' has no reason", "say why"),
    ("x-audit-waive:\n  test-no-prm: why\n", 3, "rule 'test-no-prm' checks running MCP servers", "remove this line"),
    ("x-audit-waive:\n  test-old-keycloak: why\n", 3, "rule 'test-old-keycloak' checks live realms", "remove this line"),
])
def test_a_waiver_that_cannot_stand_is_a_file_line_error(tmp_path, body, line, message, hint):
    source = _source(tmp_path, "realm: w\n" + body)
    waivers, [problem] = read_waivers(source, RULES)
    assert (problem.file, problem.line) == ("realm.yaml", line)
    assert message in problem.message and hint in problem.hint
    assert waivers.reasons == {}


def test_the_source_map_gives_the_line_of_a_yaml_path_like_the_loader():
    [(_, locator)] = load_realms_located([ROOT / "realms/mcp-dev.yaml"])
    source = RealmSource(locator)
    lines = (ROOT / "realms/mcp-dev.yaml").read_text().splitlines()

    def text_at(path) -> str:
        line, column = source(path)
        return lines[line - 1][column - 1:]

    assert text_at(("settings", "access_token_lifespan")).startswith("access_token_lifespan: 5m")
    assert text_at(("settings", "not_written")).startswith("settings:")  # a default: at the nearest written parent
    assert text_at(("clients", 0, "default_scopes", 1)).startswith("basic,")
    assert text_at(("clients", 0)).startswith("client_id: mcp-server")
    assert text_at(("mcp_servers", 0, "scopes", "mcp:admin")).startswith("mcp:admin: Administer")
    assert text_at(()).startswith("realm: mcp-dev")


def test_locations_are_lines_of_the_file_before_templating(tmp_path):
    source = _source(tmp_path, "realm: t\n{% if true %}\n{% endif %}\nclients:\n{% for i in range(2) %}\n"
                               "  - client_id: app{{ i }}\n    redirect_uris: [\"http://x/*\"]\n{% endfor %}\n")
    assert source(("clients", 1)) == (6, 5)
    assert source(("clients", 1, "redirect_uris", 0)) == (7, 21)


@needs_realm_rules
def test_a_realm_view_of_a_file_locates_objects_with_the_source_map(tmp_path):
    from kcprov.audit.realm_rules import RealmView

    path = tmp_path / "realm.yaml"
    path.write_text("realm: t\nclients:\n  - client_id: web\n    redirect_uris: ['https://a.example/*']\n")
    [(spec, locator)] = load_realms_located([path])
    view = RealmView.from_file(path, spec, RealmSource(locator))
    assert view.locate(("client", "web", "redirect_uris", 0)) == Location(file="realm.yaml", line=4, column=21)


# ---------------------------------------------------------------- README


def test_readme_rule_table_is_what_the_rules_say():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- audit rules: generated by `kcprov audit --rules-markdown` -->\n(.*?)<!-- end of audit rules -->",
                      readme, re.S)
    assert match, "README's Audit section lost its rule table markers"
    assert match[1] == rules_markdown(all_rules()), \
        "README's rule table is out of date: regenerate it with `kcprov audit --rules-markdown`"


def test_rules_markdown_escapes_cells():
    table = rules_markdown([Rule("a-b", Severity.LOW, "x | y", "A1", "fix\nit", "realm")])
    assert table.splitlines()[-1] == "| `a-b` | low | realm files, live realms | x \\| y | A1 | fix it |"


# ---------------------------------------------------------------- the command


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["kcprov", "audit", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


@pytest.mark.parametrize("args", [
    [],
    ["--fail-on", "critical", "realms/mcp-dev.yaml"],
    ["--json", "--sarif", "-", "realms/mcp-dev.yaml"],
])
def test_usage_errors_exit_2(monkeypatch, capsys, args):
    monkeypatch.chdir(ROOT)
    code, out, err = _run(monkeypatch, capsys, *args)
    assert code == 2 and "Usage:" in err and "Traceback" not in out + err


def test_a_sarif_path_the_policy_refuses_fails_before_anything_runs(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(monkeypatch, capsys, "--sarif", str(tmp_path / "no-dir" / "x.sarif"), str(ROOT / "realms/mcp-dev.yaml"))
    assert code == 1 and "Traceback" not in out + err and "SARIF report" in err


def test_a_file_that_does_not_load_is_a_file_line_error(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("realm: b\nclients:\n  - client_id: x\n    pkce: S257\n")
    code, out, err = _run(monkeypatch, capsys, "bad.yaml")
    assert code == 1 and "bad.yaml:4:" in err and "Traceback" not in out + err


@needs_realm_rules
def test_a_bad_waiver_is_a_file_line_error_of_the_audit(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.yaml").write_text("realm: w\nx-audit-waive:\n  no-such-rule: because\n")
    code, out, err = _run(monkeypatch, capsys, "w.yaml")
    assert code == 1 and "w.yaml:3:3: error: x-audit-waive: unknown audit rule 'no-such-rule'" in err


@needs_realm_rules
def test_the_reference_realm_has_no_finding_above_low(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(ROOT)
    sarif = tmp_path / "audit.sarif"
    code, out, err = _run(monkeypatch, capsys, "realms/mcp-dev.yaml", "--json", "--sarif", str(sarif))
    document = json.loads(out)
    assert code == 0, document["findings"]
    assert {f["severity"] for f in document["findings"]} <= {"low"}
    assert {r["scope"] for r in document["rules"]} == {"realm"} and document["rules"]
    log = _valid_sarif(sarif.read_text())
    assert stat.S_IMODE(sarif.stat().st_mode) == 0o600
    assert len(log["runs"][0]["results"]) == len(document["findings"])
    assert f"Wrote {sarif}" in err


@needs_realm_rules
def test_sarif_to_stdout_moves_the_findings_to_stderr(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code, out, err = _run(monkeypatch, capsys, "realms/mcp-dev.yaml", "--sarif", "-")
    assert code == 0
    _valid_sarif(out)
    assert "at or above medium" in err


# ---------------------------------------------------------------- a live realm (real Keycloak)

WEAK = """realm: {realm}
settings:
  access_token_lifespan: 1d
  ssl_required: none
clients:
  - client_id: web
    redirect_uris: ["*"]
    direct_access_grants: true
"""
WEAK_RULES = {"long-access-token", "ssl-not-required", "wildcard-redirect-uri", "direct-access-grants"}


def test_a_weak_realm_is_found_alike_in_the_file_and_live(keycloak, realm_name, tmp_path):
    from kindcontract import cli_env, kcprov, ok

    env = cli_env(keycloak)
    (tmp_path / "weak.yaml").write_text(WEAK.format(realm=realm_name))
    offline = kcprov("audit", "weak.yaml", "--json", env=env, cwd=tmp_path)
    assert offline.returncode == 3, offline.stderr
    file_rules = {f["rule"] for f in json.loads(offline.stdout)["findings"]}
    assert WEAK_RULES <= file_rules
    ok(kcprov("apply", "weak.yaml", "--auto-approve", "--no-env", env=env, cwd=tmp_path))
    live = kcprov("audit", "--realm", realm_name, "--json", "--sarif", "live.sarif", env=env, cwd=tmp_path)
    assert live.returncode == 3 and "Traceback" not in live.stderr, live.stderr
    document = json.loads(live.stdout)
    found = {f["rule"]: f for f in document["findings"]}
    assert WEAK_RULES <= set(found)
    assert found["wildcard-redirect-uri"]["location"] == {"realm": realm_name, "resource": "client 'web'"}
    assert {"live"} <= {r["scope"] for r in document["rules"]}
    log = _valid_sarif((tmp_path / "live.sarif").read_text())
    results = {r["ruleId"]: r for r in log["runs"][0]["results"]}
    assert results["wildcard-redirect-uri"]["locations"] == [{"logicalLocations": [
        {"name": "client 'web'", "kind": "resource", "fullyQualifiedName": f"realm '{realm_name}' client 'web'"}]}]
    assert kcprov("audit", "--realm", realm_name, "--fail-on", "high", env=env, cwd=tmp_path).returncode == 3


@needs_realm_rules
def test_a_waived_finding_is_listed_and_does_not_fail_the_audit(monkeypatch, capsys, tmp_path):
    (tmp_path / "w.yaml").write_text("realm: w\nsettings:\n  access_token_lifespan: 1d\nx-audit-waive:\n"
                                     "  long-access-token: \"batch jobs; reviewed\"\n  wildcard-redirect-uri: old\n")
    code, out, err = _run(monkeypatch, capsys, "w.yaml", "--fail-on", "low")
    assert code == 0, out
    assert "w.yaml:3:3: medium long-access-token: " in out and "(waived: batch jobs; reviewed)" in out
    assert "0 findings, 1 waived; none at or above low" in out
    assert "w.yaml:6:3: x-audit-waive: 'wildcard-redirect-uri' waives no finding" in err  # a stale waiver is named
    code, out, _ = _run(monkeypatch, capsys, "w.yaml", "--json")
    [finding] = json.loads(out)["findings"]
    assert finding["waived"] == "batch jobs; reviewed" and code == 0


def test_a_file_and_the_reference_server_in_one_audit(keycloak, dev_realm, server_config, tmp_path):
    """The command wires `--server` to the probes (tokens through the Keycloak options) next to a file audit."""
    from audit_servers.weak import serve
    from kindcontract import cli_env, kcprov

    (tmp_path / "mcp-dev.yaml").write_text((ROOT / "realms/mcp-dev.yaml").read_text())
    with serve(server_config) as url:
        done = kcprov("audit", "mcp-dev.yaml", "--server", url, "--json", "--sarif", "all.sarif",
                      env=cli_env(keycloak), cwd=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert {r["scope"] for r in document["rules"]} == {"realm", "server"}
    assert {f["severity"] for f in document["findings"]} <= {"low"}
    log = _valid_sarif((tmp_path / "all.sarif").read_text())
    assert {r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]} == {r["id"] for r in document["rules"]}
