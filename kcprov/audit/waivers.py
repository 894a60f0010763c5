"""`x-audit-waive`: a realm file accepts a finding of a rule, with the reason, in the file under review.

    x-audit-waive:
      long-access-token: "batch clients poll once an hour; reviewed 2026-11 (SEC-42)"

The key is top level and starts with `x-`, so the realm model ignores it (like
Docker Compose extension keys) and it is read from the parsed document. A
waiver is part of the review: a waived finding is still listed, marked with
its reason, and only stops counting for the exit code. So a waiver must say
why, and must name a rule that runs on realm files -- a typo would otherwise
waive nothing and look like it did, and a rule of live realms or running
servers never reads this file. Those are file:line errors like the loader's.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from kcprov.audit.locate import RealmSource
from kcprov.audit.rules import Rule, Waivers
from kcprov.spec.problems import Problem

WAIVE_KEY = "x-audit-waive"
_EXAMPLE = f'{WAIVE_KEY}: {{RULE-ID: "why this realm may"}}'
_ELSEWHERE = {"live": "live realms (kcprov audit --realm)", "server": "running MCP servers (kcprov audit --server)"}


def read_waivers(source: RealmSource, rules: Mapping[str, Rule]) -> tuple[Waivers, list[Problem]]:
    """The file's waivers of `rules` (the registry), and a problem for each waiver that cannot stand."""
    written = source.data.get(WAIVE_KEY)
    if written is None:
        return Waivers(), []
    problem = source.problem
    if not isinstance(written, Mapping):
        return Waivers(), [problem((WAIVE_KEY,), f"{WAIVE_KEY}: expected a mapping of rule id: reason",
                                  f"write {_EXAMPLE}")]
    reasons: dict[str, str] = {}
    problems: list[Problem] = []
    for rule_id, reason in written.items():
        refused = _refused(rule_id, reason, rules)
        if refused:
            problems.append(problem((WAIVE_KEY, rule_id), f"{WAIVE_KEY}: {refused[0]}", refused[1]))
        else:
            reasons[rule_id] = reason.strip()
    return Waivers(reasons), problems


def _refused(rule_id: str, reason: object, rules: Mapping[str, Rule]) -> tuple[str, str] | None:
    """(message, hint) when the waiver of `rule_id` cannot stand, else None."""
    rule = rules.get(rule_id)
    if rule is None:
        close = difflib.get_close_matches(rule_id, list(rules), n=1)
        return f"unknown audit rule '{rule_id}'", (
            f"did you mean '{close[0]}'?" if close else
            "the rule ids are listed in the README's Audit section and in `kcprov audit` output")
    if rule.scope != "realm":
        return (f"rule '{rule_id}' checks {_ELSEWHERE.get(rule.scope, rule.scope)}, not realm files",
                "a realm file waives only the rules run on it; remove this line")
    if not isinstance(reason, str) or not reason.strip():
        return (f"the waiver of '{rule_id}' has no reason",
                f'say why the finding is accepted: {rule_id}: "..." (a text, shown with the finding)')
    return None
