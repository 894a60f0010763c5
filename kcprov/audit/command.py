"""`kcprov audit`: gather the findings of realm files, live realms and running MCP servers, then report them.

Realm files are loaded like `kcprov validate` does (a file that does not
validate is a file:line error, exit 1, not an audit) and their waivers checked
before any rule runs. Live realms and servers are audited by their modules
(`live`, `server`), imported only when asked for, so an audit of files needs
no Keycloak. The rules listed in the JSON and SARIF outputs are those of the
scopes that ran: realm rules for files; plus live rules for `--realm`; server
rules for `--server`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console

from kcprov.audit import report
from kcprov.audit.rules import RULES, Finding, Rule, Severity
from kcprov.errors import ConnectionError_, KcprovError
from kcprov.terminal import printable


_SCOPES = ("realm", "live", "server")
_RULE_MODULES = {"realm_rules": "auditing realm files and live realms", "live": "auditing live realms (--realm)",
                 "server": "auditing running MCP servers (--server)"}


def rule_module(name: str) -> ModuleType:
    """`kcprov.audit.<name>` (registering its rules), or a KcprovError naming what this build cannot audit."""
    try:
        return importlib.import_module(f"kcprov.audit.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"kcprov.audit.{name}":
            raise
        what = _RULE_MODULES[name]
        raise KcprovError(f"{what[0].upper()}{what[1:]} is not in this kcprov yet (kcprov.audit.{name} is missing).",
                          hint="update kcprov") from None


def all_rules() -> list[Rule]:
    """Every rule of this build: realm rules, live rules, server rules, each in registration order."""
    for name in _RULE_MODULES:
        try:
            rule_module(name)
        except KcprovError:
            continue
    return by_scope(RULES.values())


def by_scope(rules: Iterable[Rule]) -> list[Rule]:
    """Realm, live, then server rules: the same order whichever rule module was imported first."""
    return sorted(rules, key=lambda r: _SCOPES.index(r.scope) if r.scope in _SCOPES else len(_SCOPES))


def audit_command(
    files: Sequence[Path],
    realms: Sequence[str],
    servers: Sequence[str],
    *,
    realm_files: Any,  # kcprov.cli.RealmFileOptions
    connect: Callable[[], Any],  # KeycloakOptions.connect
    json_output: bool,
    sarif: str | None,
    fail_on: Severity,
    out: Console,
    err: Console,
) -> int:
    """Audit what was named, print the findings (table or JSON), write SARIF if asked; the exit code."""
    from kcprov.fileio import resolve_output, write_output

    if sarif not in (None, "-"):
        resolve_output(sarif, origin="command-line", what="SARIF report")  # refused before anything runs
    findings: list[Finding] = []
    scopes: set[str] = set()
    if files:
        findings += audit_files(files, realm_files, err)
        scopes.add("realm")
    client = None
    if realms:
        read_live_view = rule_module("live").read_live_view
        audit_realm = rule_module("realm_rules").audit_realm
        client = connect()
        for realm in realms:
            findings += audit_realm(read_live_view(client, realm))
        scopes |= {"realm", "live"}
    if servers:
        audit_server = rule_module("server").audit_server
        if client is None:
            client = _optional_client(connect, err)
        for url in servers:
            findings += audit_server(url, client=client, note=lambda text: _note(err, text))
        scopes.add("server")
    rules = by_scope(r for r in RULES.values() if r.scope in scopes)
    human = err if sarif == "-" else out  # stdout carries the SARIF log then
    if json_output:  # documents go to the stream as they are: no console markup, emoji codes or wrapping
        print(report.render_json(findings, rules, fail_on), file=out.file)
    else:
        report.render_text(findings, human, fail_on)
    if sarif == "-":
        print(report.render_sarif(findings, rules), file=out.file)
    elif sarif:
        write_output(sarif, report.render_sarif(findings, rules) + "\n", origin="command-line", what="SARIF report")
        err.print(f"Wrote {printable(sarif)} (SARIF 2.1.0, {len(findings)} results)", markup=False, highlight=False)
    return report.exit_code(findings, fail_on)


def audit_files(files: Sequence[Path], realm_files: Any, err: Console) -> list[Finding]:
    """Load the files (all problems of all files, waivers included, at once), then run the realm rules on each.

    A waiver no finding needs is named on stderr: left in the file, it would hide the next finding of its rule."""
    from kcprov.audit.locate import RealmSource
    from kcprov.audit.waivers import WAIVE_KEY, read_waivers
    from kcprov.spec.loader import load_realms_located, parse_var_options
    from kcprov.spec.problems import SpecError

    located = load_realms_located(files, parse_var_options(realm_files.var or []), realm_files.var_file or [],
                                  realm_files.strict_secrets, realm_files.max_input_size)
    realm_rules = rule_module("realm_rules")
    all_rules()  # a waiver may name any rule: it is refused by name if it is not a realm rule
    prepared, problems = [], []
    for path, (spec, locator) in zip(files, located):
        source = RealmSource(locator)
        waivers, found = read_waivers(source, RULES)
        problems += found
        prepared.append((path, spec, source, waivers))
    if problems:
        raise SpecError(problems)
    findings: list[Finding] = []
    for path, spec, source, waivers in prepared:
        view = realm_rules.RealmView.from_file(path, spec, source)
        found = [waivers.apply(f) for f in realm_rules.audit_realm(view)]
        for rule_id in sorted(set(waivers.reasons) - {f.rule.id for f in found}):
            line, column = source((WAIVE_KEY, rule_id))
            _note(err, f"{printable(source.file)}:{line}:{column}: {WAIVE_KEY}: '{rule_id}' waives no finding; "
                       "remove it unless the finding is expected back")
        findings += found
    return findings


def _optional_client(connect: Callable[[], Any], err: Console) -> Any:
    """A Keycloak client if one is configured (tokens for the server probes), else None: probe without tokens."""
    try:
        return connect()
    except ConnectionError_ as exc:
        _note(err, f"{printable(exc.message)} Probing without tokens.")
        return None


def _note(err: Console, text: str) -> None:
    err.print(f"note: {text}", markup=False, emoji=False, highlight=False, soft_wrap=True)


_AUDITS = {"realm": "realm files, live realms", "live": "live realms", "server": "MCP servers"}


def rules_markdown(rules: Sequence[Rule]) -> str:
    """The README's rule table: one row per rule, in registration order."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    rows = ["| id | severity | audits | what | rests on | fix |", "| --- | --- | --- | --- | --- | --- |"]
    rows += [f"| `{r.id}` | {r.severity} | {_AUDITS.get(r.scope, r.scope)} | {cell(r.title)} | {cell(r.rests_on)} "
             f"| {cell(r.fix)} |" for r in rules]
    return "\n".join(rows) + "\n"
