"""Audit rules and findings: the registry every check registers in, and the value every output renders.

A rule has a stable id (`long-access-token`): findings, waivers
(`x-audit-waive: {RULE: reason}` in a realm file) and SARIF `ruleId`s use it,
so it never changes once released. Each rule names what it rests on (an MCP
authorization requirement id such as A46 from the spec's authorization page,
or a pitfall of the seed documents) and how to fix it, so a finding explains
itself without the docs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Rule:
    id: str  # stable, kebab-case: `long-access-token`
    severity: Severity
    title: str  # one line: what is wrong
    rests_on: str  # requirement ids ("A46") and/or a seed pitfall ("seed: short-lived tokens")
    fix: str  # one line: how to fix it
    scope: str  # "realm" (files and live realms), "live" (live realms only), "server" (running MCP servers)


@dataclass(frozen=True)
class Location:
    """Where a finding is: a realm file position, an object of a live realm, or a URL of a running server."""

    file: str | None = None
    line: int | None = None
    column: int | None = None
    realm: str | None = None
    resource: str | None = None  # "client 'web-app'", "realm", "mcp server 'calculator'"
    url: str | None = None

    def __str__(self) -> str:
        if self.file:
            return f"{self.file}:{self.line or 1}:{self.column or 1}"
        if self.url:
            return self.url
        return " ".join(p for p in (f"realm '{self.realm}'" if self.realm else None, self.resource) if p)


@dataclass(frozen=True)
class Finding:
    rule: Rule
    message: str  # one line, never a secret or a token
    location: Location
    waived: str | None = None  # the reason given in the file's x-audit-waive


RULES: dict[str, Rule] = {}
"""Every rule, by id, in registration order (the README's rule table lists them in this order)."""

RealmCheck = Callable[[Any], Iterator[tuple[str, Any]]]
REALM_CHECKS: dict[str, RealmCheck] = {}
"""Rule id -> the check of a realm-scope rule: given a `kcprov.audit.realm_rules.RealmView`, it yields
(message, where) pairs; `where` is what the view can locate (see RealmView.locate)."""


def register(rule: Rule) -> Rule:
    if rule.id in RULES:
        raise ValueError(f"audit rule '{rule.id}' registered twice")
    RULES[rule.id] = rule
    return rule


def realm_rule(id: str, severity: Severity, title: str, rests_on: str, fix: str,
               scope: str = "realm") -> Callable[[RealmCheck], RealmCheck]:
    """Register a rule over a realm: the decorated function is its check."""
    def decorate(check: RealmCheck) -> RealmCheck:
        register(Rule(id, severity, title, rests_on, fix, scope))
        REALM_CHECKS[id] = check
        return check
    return decorate


@dataclass
class Waivers:
    """Rule id -> reason, from a realm file's `x-audit-waive`; a waived finding is still listed, marked."""

    reasons: dict[str, str] = field(default_factory=dict)

    def apply(self, finding: Finding) -> Finding:
        reason = self.reasons.get(finding.rule.id)
        if reason is None:
            return finding
        return Finding(finding.rule, finding.message, finding.location, waived=reason)
