"""Audit findings for people and for tools: a table, a JSON document, SARIF 2.1.0; and the exit code.

- The table is for a terminal (rich); anywhere else the same findings are
  plain `file:line:col: severity rule: message` lines that editors and CI logs
  link, with the fix and what the rule rests on under each. Every text from outside (names from a realm
  file or from Keycloak, waiver reasons) is shown through `printable`; rules
  never put a secret or a token in a message, and nothing here adds one.
- `--json` is a stable document (`"format": 1`): the rules that ran, then the
  findings with rule id, severity, message, location and waiver reason.
- SARIF 2.1.0 is what code-scanning tools read (GitHub shows the findings on
  the realm file's lines): one run, the rules in `tool.driver.rules` (level
  from the severity, the fix as help), results at a physical location
  (artifact URI relative to the working directory, which is the checkout in
  CI) or, for a live realm or a server, a logical one; a waiver is an
  in-source suppression with its reason as the justification.
- Exit code: 3 when a finding at or above `--fail-on` is not waived, else 0
  (1 is an error, 2 a usage error, as for every command).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kcprov import __version__
from kcprov.audit.rules import Finding, Location, Rule, Severity
from kcprov.terminal import printable

FINDINGS_EXIT = 3
DEFAULT_FAIL_ON = Severity.MEDIUM
"""The default bar: what the reference realm (`realms/mcp-dev.yaml`) must stay under -- no finding above low."""
JSON_FORMAT = 1
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_LEVELS = {Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note"}
SECURITY_SEVERITY = {Severity.HIGH: "8.0", Severity.MEDIUM: "5.0", Severity.LOW: "2.0"}
"""GitHub code scanning ranks security alerts by the rule's `security-severity` (high from 7.0, medium from 4.0)."""
_STYLES = {Severity.HIGH: "bold red", Severity.MEDIUM: "yellow", Severity.LOW: "cyan"}


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then by place: the order of every output, so two runs print the same."""
    return sorted(findings, key=lambda f: (f.waived is not None, -f.rule.severity, _place(f.location), f.rule.id,
                                           f.message))


def counted(findings: Iterable[Finding], fail_on: Severity) -> list[Finding]:
    """The findings that fail the audit: at or above `fail_on`, not waived."""
    return [f for f in findings if f.waived is None and f.rule.severity >= fail_on]


def exit_code(findings: Iterable[Finding], fail_on: Severity) -> int:
    return FINDINGS_EXIT if counted(findings, fail_on) else 0


def summary(findings: Sequence[Finding], fail_on: Severity) -> str:
    """`2 findings (1 high, 1 low), 1 waived; 1 at or above medium` -- one line under every human output."""
    open_ = [f for f in findings if f.waived is None]
    by = [f"{n} {s}" for s in sorted(Severity, reverse=True) if (n := sum(f.rule.severity == s for f in open_))]
    text = f"{len(open_)} finding{'s' * (len(open_) != 1)}" + (f" ({', '.join(by)})" if by else "")
    waived = len(findings) - len(open_)
    if waived:
        text += f", {waived} waived"
    failing = len(counted(findings, fail_on))
    return text + (f"; {failing} at or above {fail_on}" if failing else f"; none at or above {fail_on}")


# ---------------------------------------------------------------- for people


def render_text(findings: Sequence[Finding], console: Console, fail_on: Severity) -> None:
    """A table on a terminal, plain lines elsewhere; a summary line last."""
    findings = ordered(findings)
    if console.is_terminal and findings:
        table = Table(show_lines=True)
        for column in ("severity", "rule", "where"):
            table.add_column(column, no_wrap=True)
        table.add_column("finding", overflow="fold", min_width=30)
        for f in findings:
            text = Text(printable(f.message))
            text.append(f"\nfix: {printable(f.rule.fix)}\nrests on: {printable(f.rule.rests_on)}", style="dim")
            if f.waived is not None:
                text.append(f"\nwaived: {printable(f.waived)}", style="green")
            severity = Text(str(f.rule.severity), style="dim" if f.waived is not None else _STYLES[f.rule.severity])
            table.add_row(severity, Text(f.rule.id), Text(printable(f.location)), text)
        console.print(table)
    else:
        for f in findings:
            waived = f" (waived: {printable(f.waived)})" if f.waived is not None else ""
            console.print(f"{printable(f.location)}: {f.rule.severity} {f.rule.id}: {printable(f.message)}{waived}",
                          markup=False, emoji=False, highlight=False, soft_wrap=True)
            console.print(f"  fix: {printable(f.rule.fix)} — rests on {printable(f.rule.rests_on)}", markup=False,
                          emoji=False, highlight=False, soft_wrap=True)
    console.print(summary(findings, fail_on), markup=False, emoji=False, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- JSON


def render_json(findings: Sequence[Finding], rules: Sequence[Rule], fail_on: Severity) -> str:
    return json.dumps({
        "format": JSON_FORMAT,
        "tool": {"name": "kcprov", "version": __version__},
        "fail_on": str(fail_on),
        "exit_code": exit_code(findings, fail_on),
        "rules": [_rule_json(r) for r in rules],
        "findings": [{
            "rule": f.rule.id,
            "severity": str(f.rule.severity),
            "message": f.message,
            "location": {k: v for k, v in vars(f.location).items() if v is not None},
            "waived": f.waived,
        } for f in ordered(findings)],
    }, indent=2)


def _rule_json(rule: Rule) -> dict:
    return {"id": rule.id, "severity": str(rule.severity), "title": rule.title, "rests_on": rule.rests_on,
            "fix": rule.fix, "scope": rule.scope}


# ---------------------------------------------------------------- SARIF 2.1.0


def render_sarif(findings: Sequence[Finding], rules: Sequence[Rule], base: Path | None = None) -> str:
    """The findings as a SARIF 2.1.0 log of one run; file URIs relative to `base` (the working directory)."""
    base = Path(os.path.abspath(base or Path.cwd()))
    rules = list({r.id: r for r in [*rules, *(f.rule for f in findings)]}.values())  # every result's rule described
    index = {r.id: i for i, r in enumerate(rules)}
    run = {
        "tool": {"driver": {
            "name": "kcprov",
            "version": __version__,
            "semanticVersion": __version__,
            "rules": [_sarif_rule(r) for r in rules],
        }},
        "originalUriBaseIds": {"%SRCROOT%": {"uri": base.as_uri() + "/"}},
        "results": [_sarif_result(f, index[f.rule.id], base) for f in ordered(findings)],
        "columnKind": "unicodeCodePoints",  # columns count characters, as the loader's do
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2)


def _sarif_rule(rule: Rule) -> dict:
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.id.split("-")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": f"{rule.title}. Rests on: {rule.rests_on}."},
        "help": {"text": f"Fix: {rule.fix}\nRests on: {rule.rests_on}.",
                 "markdown": f"**Fix:** {rule.fix}\n\n**Rests on:** {rule.rests_on}."},
        "defaultConfiguration": {"level": SARIF_LEVELS[rule.severity]},
        "properties": {"tags": ["security", "mcp", "keycloak", rule.scope],
                       "security-severity": SECURITY_SEVERITY[rule.severity]},
    }


def _sarif_result(finding: Finding, rule_index: int, base: Path) -> dict:
    result: dict = {
        "ruleId": finding.rule.id,
        "ruleIndex": rule_index,
        "level": SARIF_LEVELS[finding.rule.severity],
        "message": {"text": finding.message},
        "locations": [_sarif_location(finding.location, base)],
    }
    if finding.waived is not None:
        result["suppressions"] = [{"kind": "inSource", "justification": finding.waived}]
    return result


def _sarif_location(location: Location, base: Path) -> dict:
    if location.file:
        return {"physicalLocation": {
            "artifactLocation": _artifact(location.file, base),
            "region": {"startLine": location.line or 1, "startColumn": location.column or 1},
        }}
    name = location.url or location.resource or "realm"
    qualified = str(location)
    logical = {"name": name, "kind": "resource"}
    if qualified != name:
        logical["fullyQualifiedName"] = qualified
    return {"logicalLocations": [logical]}


def _artifact(file: str, base: Path) -> dict:
    """A relative URI under %SRCROOT% (the working directory) when the file is inside it, else an absolute one."""
    path = Path(os.path.abspath(file))
    try:
        relative = path.relative_to(base)
    except ValueError:
        return {"uri": path.as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": "%SRCROOT%"}


def _place(location: Location) -> tuple:
    """Files first (by line), then live realms, then servers."""
    return (location.file is None, location.file or "", location.line or 0, location.column or 0,
            location.url is not None, location.realm or "", location.url or "", location.resource or "")
