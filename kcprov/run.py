"""Running an apply for a person or a CI job: show, confirm, apply with progress, report.

The engine (`kcprov.apply`) never prints; this is where a run meets the
terminal: the plan is shown, a terminal user confirms (CI must pass
--auto-approve or a saved plan), progress goes to stderr, and the outcome is
a short summary.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from kcprov.errors import KcprovError


def run_apply(client, runs, out: Console, err_console: Console, approved: bool, force: bool, workers: int) -> None:
    """Show the plans, ask (on a terminal), apply realm by realm, report; exit 1 if any realm failed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from kcprov.apply import apply_plan
    from kcprov.plan.render import render_text
    from kcprov.resources import KINDS

    plans = [r.plan for r in runs]
    render_text(plans, out, client.settings.url)
    for p in plans:
        p.raise_if_unsafe(force)
    if all(p.empty for p in plans):
        return
    if not approved:
        if not sys.stdin.isatty():
            raise KcprovError("Refusing to apply without confirmation: standard input is not a terminal.",
                              hint="review the plan above, then re-run with --auto-approve (or apply a saved plan)")
        if not typer.confirm("Apply these changes?", default=False):
            raise typer.Abort()
    failures = 0
    for run in runs:
        total = len(run.plan.changes)
        if not total:
            continue
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=err_console, transient=True) as progress:
            task = progress.add_task(f"Applying realm '{run.plan.realm}'", total=total)
            result = apply_plan(client, run.plan, run.live, run.desired, KINDS, workers,
                                on_done=lambda _c: progress.advance(task))
        if result.ok:
            p = run.plan
            out.print(f"[green]Applied realm '{p.realm}':[/] {p.count('create')} created, "
                      f"{p.count('update')} updated, {p.count('delete')} deleted.")
            continue
        failures += 1
        out.print(f"[red]Apply of realm '{run.plan.realm}' stopped:[/] {len(result.done)} of {total} changes done.")
        for change, exc in result.failed:
            out.print(f"  [red]failed[/] {change.address}: {exc}")
        for change in result.not_run:
            out.print(f"  [dim]not run[/] {change.address}")
        out.print("  Run `kcprov plan` to see what remains; `kcprov apply` again to finish.")
    if failures:
        raise typer.Exit(1)
