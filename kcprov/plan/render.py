"""Showing plans to people: terraform-style text (+ / ~ / -), or JSON.

Rendering never computes anything: it takes Plans (after octoDNS's
PlanLogger/PlanMarkdown split). Secrets appear only as `(sensitive)`. Every
name and value passes through `terminal.shown`: object names come from
realm files and from Keycloak (a DCR client names itself), so neither markup
nor a terminal escape sequence in them takes effect.

A warning ends with its id (`[dcr-default-scopes]`, what `--quiet-warning`
takes) and wraps between words on a terminal (one line in a file). Clients
DCR registered are shown by their client_name and registration date; more
than DCR_LISTED of them are one line, counted by name. With `-q`
(`terminal.QUIET`) a plan is its summary line.

A plan of thousands of creates (a new realm of 1,000 clients is 9,000 lines
of fields) is unreadable and slow through rich's markup: past BULK creates
of one kind, those creates are one line each, their addresses only, printed
as one block of plain text, then a line with their count; `full` (`--full`)
prints every field as for small plans.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from kcprov.plan.changes import Change, FieldDiff, Plan, PlanWarning
from kcprov.plan.dcr import DcrClient
from kcprov.secret import SENSITIVE, public
from kcprov.terminal import QUIET, printable, shown, wrapped

SIGNS = {"adopt": ("=", "cyan"), "create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red")}
ADOPTED = " [dim](exists, will be adopted)[/]"
WARNING = "  warning: "
DCR_LISTED = 10  # DCR clients listed one by one; more are summed up in one line
BULK = 50  # creates of one kind past which they are listed by address only (unless full)


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


def render_text(plans: Sequence[Plan], console: Console, url: str | None = None, verbose_deletes: bool = False,
                full: bool = False) -> None:
    """Print plans the way `terraform plan` does; bulk creates by address only unless `full`."""
    for plan in plans:
        if QUIET.get():
            console.print(f"[bold]Plan[/] (realm '{shown(plan.realm)}'): {plan.summary()}.")
            continue
        where = f" at {url}" if url else ""
        console.print(f"[bold]Realm '{shown(plan.realm)}'[/]{shown(where)}"
                      + ("" if plan.realm_exists else " [green](new realm)[/]"))
        for warning in plan.warnings:
            console.print(warning_text(warning, console.width if console.is_terminal else None), soft_wrap=True)
        if plan.warnings:
            console.print("  [dim](--quiet-warning ID or x-kcprov-quiet-warnings: \\[ID] silences a warning)[/]")
        if plan.empty:
            console.print("  No changes. The realm matches the file." if plan.deferred is None else
                          "  Nothing to adopt: what the file names is managed by kcprov already, or does not exist.")
        bulk = {} if full else bulk_creates(plan.changes)
        groups: dict[str | None, list[Change]] = {}
        for change in plan.changes:  # realm-level objects first, then one block per MCP server
            groups.setdefault(change.group, []).append(change)
        for group in sorted(groups, key=lambda g: (g is not None, g or "")):
            if group:
                console.print(f"\n  [bold]# MCP server '{shown(group)}'[/]")
            listed: list[str] = []  # consecutive bulk creates, printed as one block
            for change in groups[group]:
                if change.action == "create" and change.kind in bulk:
                    listed.append(f"  + {printable(change.address)}")
                    continue
                _print_listed(console, listed)
                sign, colour = SIGNS[change.action]
                console.print(f"  [{colour}]{sign} {shown(change.address)}[/]" + (ADOPTED if change.action == "adopt" else ""))
                diffs = change.diffs if change.action != "delete" or verbose_deletes else ()
                width = max((len(d.field) for d in diffs), default=0)
                for d in diffs:
                    console.print(_diff_line(change, d, width), soft_wrap=True)
            _print_listed(console, listed)
        for kind, count in bulk.items():
            console.print(f"  [dim]{count} {shown(kind)} creates listed without their fields (`--full` shows them)[/]")
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
            summed = len(plan.dcr_clients) > DCR_LISTED
            for kind, key in plan.unmanaged:
                dcr = plan.dcr_clients.get((kind, key))
                if dcr is None or not summed:
                    console.print(f"  [dim]  {shown(kind)}.{shown(key)}{_dcr_note(dcr)}[/]")
            if summed:
                console.print(f"  [dim]  {shown(dcr_summary(list(plan.dcr_clients.values())))}[/]")
        console.print(f"\n[bold]Plan:[/] {plan.summary()}.\n")


def bulk_creates(changes: Sequence[Change]) -> dict[str, int]:
    """The kinds with more than BULK creates, with their counts."""
    counts = Counter(c.kind for c in changes if c.action == "create")
    return {kind: count for kind, count in counts.items() if count > BULK}


def _print_listed(console: Console, listed: list[str]) -> None:
    """One block of `+ address` lines: a single plain Text, no markup to parse per line; empties `listed`."""
    if listed:
        console.print(Text("\n".join(listed), style=SIGNS["create"][1]), soft_wrap=True)
        listed.clear()


def warning_text(warning: PlanWarning, width: int | None) -> Text:
    """`  warning: <message> [id]`, broken between words at `width` (None: one line)."""
    tag = f"[{warning.id}]"
    text = Text(wrapped(f"{WARNING}{printable(warning.message)} {tag}", width, len(WARNING)))
    text.stylize("yellow", 2, len(WARNING) - 1)
    text.stylize("dim", len(text) - len(tag))
    return text


def _dcr_note(dcr: DcrClient | None) -> str:
    if dcr is None:
        return ""
    name = f"'{shown(dcr.name)}'" if dcr.name else "(no client_name)"
    when = f" on {dcr.registered:%Y-%m-%d}" if dcr.registered else ""
    return f"  {name}, registered by DCR{when}"


def dcr_summary(clients: Sequence[DcrClient], names: int = 3) -> str:
    """One line for many DCR clients: how many, the commonest names, the newest registration known."""
    counted = Counter(c.name or "(no client_name)" for c in clients).most_common()
    shown_names = ", ".join(f"{n} '{name}'" for name, n in counted[:names])
    others = sum(n for _, n in counted[names:])
    line = f"{len(clients)} clients registered by DCR: {shown_names}" + (f", {others} others" if others else "")
    dated = [c for c in clients if c.registered]
    if dated:
        newest = max(dated, key=lambda c: c.registered)
        line += f" (newest: '{newest.name or '(no client_name)'}' on {newest.registered:%Y-%m-%d})"
    return line + "; `kcprov plan --json` lists each"


def render_json(plans: Sequence[Plan], url: str | None = None) -> str:
    return json.dumps({"keycloak_url": url, "plans": [p.to_json() for p in plans]}, indent=2)
