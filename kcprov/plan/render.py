"""Showing plans to people: terraform-style text (+ / ~ / -), or JSON.

Rendering never computes anything: it takes Plans (after octoDNS's
PlanLogger/PlanMarkdown split). Secrets appear only as `(sensitive)`. Every
name and value passes through `terminal.shown`: object names come from
realm files and from Keycloak (a DCR client names itself), so neither markup
nor a terminal escape sequence in them takes effect.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from kcprov.plan.changes import Change, FieldDiff, Plan
from kcprov.secret import SENSITIVE, public
from kcprov.terminal import shown

SIGNS = {"adopt": ("=", "cyan"), "create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red")}
ADOPTED = " [dim](exists, will be adopted)[/]"


def show(value: Any) -> str:
    value = public(value)
    if value is None:
        return "null"
    if value == SENSITIVE:
        return SENSITIVE
    return json.dumps(value, ensure_ascii=False)


def _diff_line(change: Change, d: FieldDiff, width: int) -> str:
    sign, colour = SIGNS[change.action]
    name = shown(d.field.ljust(width))
    if change.action == "create":
        marker = " [dim](default)[/]" if d.default else ""
        return f"      [{colour}]{sign}[/] {name} = {shown(show(d.after))}{marker}"
    if change.action == "delete":
        return f"      [{colour}]{sign}[/] {name} = {shown(show(d.before))}"
    if d.sensitive:
        return f"      [{colour}]{sign}[/] {name} = {SENSITIVE} [dim](changed)[/]"
    return f"      [{colour}]{sign}[/] {name} = {shown(show(d.before))} [dim]->[/] {shown(show(d.after))}"


def render_text(plans: Sequence[Plan], console: Console, url: str | None = None, verbose_deletes: bool = False) -> None:
    """Print plans the way `terraform plan` does."""
    for plan in plans:
        where = f" at {url}" if url else ""
        console.print(f"[bold]Realm '{shown(plan.realm)}'[/]{shown(where)}"
                      + ("" if plan.realm_exists else " [green](new realm)[/]"))
        for warning in plan.warnings:
            console.print(f"  [yellow]warning:[/] {shown(warning)}")
        if plan.empty:
            console.print("  No changes. The realm matches the file." if plan.deferred is None else
                          "  Nothing to adopt: what the file names is managed by kcprov already, or does not exist.")
        groups: dict[str | None, list[Change]] = {}
        for change in plan.changes:  # realm-level objects first, then one block per MCP server
            groups.setdefault(change.group, []).append(change)
        for group in sorted(groups, key=lambda g: (g is not None, g or "")):
            if group:
                console.print(f"\n  [bold]# MCP server '{shown(group)}'[/]")
            for change in groups[group]:
                sign, colour = SIGNS[change.action]
                console.print(f"  [{colour}]{sign} {shown(change.address)}[/]" + (ADOPTED if change.action == "adopt" else ""))
                diffs = change.diffs if change.action != "delete" or verbose_deletes else ()
                width = max((len(d.field) for d in diffs), default=0)
                for d in diffs:
                    console.print(_diff_line(change, d, width), soft_wrap=True)
        if plan.deferred:
            console.print("\n  [dim]Left for `kcprov apply` (adopt changes nothing):[/]")
            for change in plan.deferred:
                console.print(f"  [dim]  {SIGNS[change.action][0]} {shown(change.address)}[/]")
        if plan.not_adopted:
            console.print("\n  [dim]Named by this file but not created by kcprov (not owned: removing them from the "
                          "file leaves them in place; `kcprov adopt` or `apply --adopt` takes them over):[/]")
            for kind, key in plan.not_adopted:
                console.print(f"  [dim]  {shown(kind)}.{shown(key)}[/]")
        if plan.unmanaged:
            console.print("\n  [dim]Not managed by this file (left alone; `--prune` deletes them):[/]")
            for kind, key in plan.unmanaged:
                console.print(f"  [dim]  {shown(kind)}.{shown(key)}[/]")
        console.print(f"\n[bold]Plan:[/] {plan.summary()}.\n")


def render_json(plans: Sequence[Plan], url: str | None = None) -> str:
    return json.dumps({"keycloak_url": url, "plans": [p.to_json() for p in plans]}, indent=2)
