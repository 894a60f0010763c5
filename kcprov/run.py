"""Running an apply for a person or a CI job: show, confirm, lock, apply with progress, report.

The engine (`kcprov.apply`) never prints; this is where a run meets the
terminal: the realm is locked (`realm_locks`), the plan is shown, a terminal
user confirms (CI must pass --auto-approve or a saved plan), progress goes to
stderr, and the outcome is a summary of a few lines whatever the size of the
realm (the next `kcprov plan` lists the rest). Ctrl-C stops starting changes,
lets those in flight finish, records ownership and reports, then exits 130;
a second Ctrl-C aborts at once.

Several realms (files, or a directory of them) are applied one after
another, each with its worker pool. Measured (bench/many_realms.py, realms
of 10 clients, 2 cores): creating 4 realms at once took 0.43 s per realm
against 0.53 s one after another; not worth 4 worker pools hitting Keycloak
at once, interleaved progress and a summary whose order depends on timing.
One realm at a time keeps the output in file order. A realm that fails or is refused does not stop the
others; the run ends with one line per realm (applied, failed, not run) and
exits 1 if any failed.

An apply of one realm that exists locks it before reading it, as Terraform
locks its state before it refreshes: the plan shown (and confirmed) is then
the plan applied, and nothing needs reading again under the lock. Planning
first and locking after means a second full read of the realm to make sure
no other apply finished in between: at 10,000 clients 1.8 s of a 6 s apply
of a 1% change. The lock is held while a terminal user reads the plan
(refreshed meanwhile); an in-sync apply takes and drops it, two requests.
A realm that does not exist yet is locked once this apply has created it;
the realms of a run of several are each locked after planning, and read
again under the lock, only when they have changes (`realm_locks` says why).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import typer
from rich.console import Console

from kcprov.errors import KcprovError, KeycloakApiError
from kcprov.keycloak import KeycloakUnreachable
from kcprov.lock import RealmLock
from kcprov.terminal import shown

SHOWN = 3  # errors (and changes not run) listed in the summary of a stopped apply
EXIT_INTERRUPTED = 130


@contextmanager
def realm_locks(client, realms: Sequence[str], timeout: float) -> Iterator[dict[str, RealmLock | KcprovError]]:
    """For a run of one realm that exists, its lock, taken before the realm is read; released on leaving.

    Waits up to `timeout` seconds. A realm Keycloak does not have is left
    out: `apply_realm` locks it once created. A lock that cannot be taken
    (held by a live apply, or the account may not manage groups) is kept as
    its error: the realm is still planned, and `apply_realm` raises the error
    only if there is something to apply, so an in-sync realm never fails for it.

    A run of several realms takes no lock first: most of a directory's realms
    are usually in sync, and a lock is two requests, one after the other (100
    realms of 10 clients: an in-sync apply 2.1 -> 5.3 s), where reading again
    the few realms with changes under their locks (`apply_realm`) costs less.
    """
    locks: dict[str, RealmLock | KcprovError] = {}
    names = set(realms)
    try:
        if len(names) == 1:
            [realm] = names
            lock = RealmLock(client, realm)
            try:
                lock.acquire(timeout)
                locks[realm] = lock
            except KeycloakUnreachable:
                raise
            except KeycloakApiError as exc:
                if exc.status != 404:  # 404: no such realm yet
                    locks[realm] = exc
            except KcprovError as exc:  # RealmLocked
                locks[realm] = exc
        yield locks
    finally:
        for lock in locks.values():
            if isinstance(lock, RealmLock):
                lock.release()


def run_apply(client, runs, out: Console, err_console: Console, approved: bool, force: bool, workers: int,
              lock_timeout: float = 0.0, full: bool = False,
              locks: Mapping[str, RealmLock | KcprovError] | None = None) -> None:
    """Show the plans, ask (on a terminal), apply realm by realm, report.

    Exits 1 if any realm failed, 130 if interrupted. `lock_timeout` is how
    long to wait for another apply of the same realm (0: refuse at once).
    `full` shows every field of bulk creates (`--full`). `locks`: what
    `realm_locks` took before the runs were planned.
    """
    from kcprov.plan.render import render_text

    plans = [r.plan for r in runs]
    render_text(plans, out, client.settings.url, full=full)
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
    pending = [run for run in runs if not run.plan.empty]
    outcomes: list[tuple[str, str, str]] = []  # (outcome, realm, detail) per realm with changes
    with interruptible(err_console) as stop:
        for run in pending:
            outcomes.append(apply_outcome(client, run, out, err_console, workers, lock_timeout, stop,
                                          alone=len(pending) == 1, lock=(locks or {}).get(run.plan.realm)))
    if len(pending) > 1:
        report_realms(out, outcomes, in_sync=len(runs) - len(pending))
    if stop.is_set():
        raise typer.Exit(EXIT_INTERRUPTED)
    if any(outcome != "applied" for outcome, _, _ in outcomes):
        raise typer.Exit(1)


def apply_outcome(client, run, out: Console, err_console: Console, workers: int, lock_timeout: float,
                  stop: threading.Event, alone: bool, lock: RealmLock | KcprovError | None = None,
                  ) -> tuple[str, str, str]:
    """Apply one realm of several: ("applied" | "failed" | "not run", realm, what happened).

    A realm refused (locked, changed since planned) is reported and the run
    goes on with the next one: realms are independent. Alone, the refusal is
    the run's error, as it always was.
    """
    realm = run.plan.realm
    if stop.is_set():
        return "not run", realm, "interrupted before it started"
    try:
        result = apply_realm(client, run, out, err_console, workers, lock_timeout, stop, lock)
    except KcprovError as exc:
        if alone:
            raise
        out.print(f"[red]Apply of realm '{shown(realm)}' refused:[/] {shown(exc.message)}")
        if exc.hint:
            out.print(f"  hint: {shown(exc.hint)}")
        return "failed", realm, "refused (see above)"
    if result.ok:
        return "applied", realm, change_counts(run.plan)
    return "failed", realm, progress_counts(run.plan, result)


def report_realms(out: Console, outcomes: list[tuple[str, str, str]], in_sync: int) -> None:
    """The last lines of an apply of several realms: each realm with changes and what became of it."""
    applied = sum(outcome == "applied" for outcome, _, _ in outcomes)
    out.print(f"Realms: {applied} of {len(outcomes)} with changes applied, {in_sync} in sync.")
    style = {"applied": "green", "failed": "red", "not run": "dim"}
    for outcome, realm, detail in outcomes:
        out.print(f"  [{style[outcome]}]{outcome:<8}[/] {shown(realm)}: {shown(detail)}")


def change_counts(plan) -> str:
    adopted = f"{plan.count('adopt')} adopted, " if plan.count("adopt") else ""
    return f"{adopted}{plan.count('create')} created, {plan.count('update')} updated, {plan.count('delete')} deleted"


def progress_counts(plan, result) -> str:
    return (f"{len(result.done)} of {len(plan.changes)} changes done, {len(result.failed)} failed, "
            f"{len(result.not_run)} not run")


def apply_realm(client, run, out: Console, err_console: Console, workers: int, lock_timeout: float,
                stop: threading.Event, held: RealmLock | KcprovError | None = None):
    """Apply one realm under its lock and print the outcome; its ApplyResult.

    `held`: the realm's entry of `realm_locks` (a lock taken before the plan
    was read, or why it could not be); without one the lock is taken here,
    and a realm that existed is read again under it. KcprovError when the
    realm cannot be taken (locked, changed since planned): then nothing of it changed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from kcprov.apply import apply_plan
    from kcprov.resources import KINDS

    if isinstance(held, KcprovError):
        raise held
    plan = run.plan
    lock = held or RealmLock(client, plan.realm)

    def take_lock() -> None:
        if held is not None:
            return  # taken before the realm was read: the plan is current
        lock.acquire(lock_timeout)
        if plan.realm_exists:
            ensure_unchanged(client, run)

    try:
        if plan.realm_exists:  # else the lock is taken once apply_plan has created the realm
            take_lock()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=err_console, transient=True) as progress:
            task = progress.add_task(f"Applying realm '{plan.realm}'", total=len(plan.changes))
            result = apply_plan(client, plan, run.live, run.desired, KINDS, workers,
                                on_done=lambda _c: progress.advance(task), stop=stop,
                                before_changes=None if plan.realm_exists else take_lock)
    finally:
        if held is None:
            lock.release()
    if result.ok:
        out.print(f"[green]Applied realm '{shown(plan.realm)}':[/] {change_counts(plan)}.")
    else:
        report_stopped(out, plan, result, interrupted=stop.is_set() and not result.errors)
    return result


def ensure_unchanged(client, run) -> None:
    """Under the lock, refuse a plan made before another apply changed the realm."""
    from kcprov.resources import KINDS
    from kcprov.state import read_state

    if read_state(client, run.plan.realm, run.desired, KINDS).fingerprint != run.plan.state_fingerprint:
        raise KcprovError(f"realm '{run.plan.realm}' changed since it was planned (another apply just finished?).",
                          hint="run `kcprov apply` again: it plans against the realm as it is now")


def report_stopped(out: Console, plan, result, interrupted: bool) -> None:
    """A few lines whatever the number of changes: counts, the first errors, where to look for the rest."""
    errors = [f"{change.address}: {exc.message}" for change, exc in result.failed]
    errors += [exc.message for exc in result.run_errors]
    unreachable = any(isinstance(exc, KeycloakUnreachable) for exc in result.errors)
    why = "interrupted (Ctrl-C)" if interrupted else "Keycloak could not be reached" if unreachable else "a change failed"
    out.print(f"[red]Apply of realm '{shown(plan.realm)}' stopped:[/] {why}.")
    out.print(f"  {progress_counts(plan, result)}.")
    for error in errors[:SHOWN]:
        out.print(f"  [red]failed[/] {shown(error)}")
    more(out, len(errors), "failed")
    hints = list(dict.fromkeys(exc.hint for exc in result.errors if exc.hint))
    if hints:
        out.print(f"  hint: {shown(hints[0])}")
    for change in result.not_run[:SHOWN]:
        out.print(f"  [dim]not run[/] {shown(change.address)}")
    more(out, len(result.not_run), "not run")
    out.print("  Run `kcprov plan` to see what remains; `kcprov apply` again to finish.")


def more(out: Console, count: int, what: str) -> None:
    if count > SHOWN:
        out.print(f"  ... and {count - SHOWN} more {what}")


@contextmanager
def interruptible(err_console: Console) -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C (the run winds down); the second one aborts as usual."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err_console.print("Interrupted: finishing the changes in flight, then stopping (Ctrl-C again to abort).")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
