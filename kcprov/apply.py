"""Executing a Plan: stage by stage, concurrently within a stage, stopping at the first failure.

Changes of one stage do not depend on each other (the stage order is the
dependency order), so they run on a bounded thread pool, as many at once as
an AdaptiveLimit allows: up to `workers`, halved whenever Keycloak answers
429/503 (and nothing starts before its Retry-After), grown by one after a run
of changes that went through. After a failure, or
when the caller sets `stop` (Ctrl-C), no queued change starts; the changes in
flight finish or fail; the result says what was done, what failed and what
did not run, and the next plan shows exactly the rest.

Ownership (which objects kcprov created or adopted) is recorded twice: once
before the first change inside the realm, for everything the plan will
create or adopt (a record of an object that does not exist yet is harmless:
plans only consult it for objects that exist), so a run that dies with
Keycloak leaves no unmanaged orphans; and once at the end, for what was done.
Only what the plan creates or adopts is taken: an object the file names that
existed before, made outside kcprov, stays unowned unless the plan adopts it
(`kcprov adopt`, `apply --adopt`; see kcprov.plan.adopt for why). An adoption
changes nothing in Keycloak: its change is done once that first record holds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby

from kcprov.errors import KcprovError
from kcprov.keycloak import KeycloakClient, KeycloakUnreachable
from kcprov.plan.changes import Change, Plan
from kcprov.resources.base import ApplyContext, Kind
from kcprov.state import OWNERSHIP_ATTRIBUTE, LiveState, encode_ownership

DEFAULT_WORKERS = 8  # the most changes at once; fewer while Keycloak answers 429/503 (AdaptiveLimit)
NOT_STARTED = object()  # a queued change skipped because the run is stopping


@dataclass
class ApplyResult:
    done: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, KcprovError]] = field(default_factory=list)
    not_run: list[Change] = field(default_factory=list)
    # failures of the run's own bookkeeping (lock, ownership record), not of a planned change
    run_errors: list[KcprovError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_run and not self.run_errors

    @property
    def errors(self) -> list[KcprovError]:
        return [exc for _, exc in self.failed] + self.run_errors


class AdaptiveLimit:
    """How many changes may run at once: additive increase, multiplicative decrease (as TCP).

    Pure (the caller passes the clock): starts at `maximum`; `overloaded` halves the
    limit (never below 1) and holds every start until the server's Retry-After has
    passed; `succeeded` raises it by one once `limit` changes in a row went through,
    back up to `maximum`.
    """

    def __init__(self, maximum: int):
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.not_before = 0.0  # no change starts before this time (a Retry-After)
        self._successes = 0

    def overloaded(self, now: float, retry_after: float | None = None) -> None:
        self.limit = max(1, self.limit // 2)
        self._successes = 0
        if retry_after:
            self.not_before = max(self.not_before, now + retry_after)

    def succeeded(self) -> None:
        self._successes += 1
        if self._successes >= self.limit and self.limit < self.maximum:
            self.limit += 1
            self._successes = 0

    def may_start(self, running: int, now: float) -> bool:
        return running < self.limit and now >= self.not_before


class _Gate:
    """The AdaptiveLimit shared by the pool's threads: a change waits here until it may start."""

    def __init__(self, limit: AdaptiveLimit):
        self.limit = limit
        self.running = 0
        self._changed = threading.Condition()

    def overloaded(self, retry_after: float | None) -> None:
        with self._changed:
            self.limit.overloaded(time.monotonic(), retry_after)

    def enter(self) -> None:
        with self._changed:
            while not self.limit.may_start(self.running, now := time.monotonic()):
                self._changed.wait(max(self.limit.not_before - now, 0.0) or None)
            self.running += 1

    def leave(self, succeeded: bool) -> None:
        with self._changed:
            self.running -= 1
            if succeeded:
                self.limit.succeeded()
            self._changed.notify_all()


def apply_plan(
    client: KeycloakClient,
    plan: Plan,
    live: LiveState,
    desired: Mapping[str, Mapping[str, Mapping]],
    kinds: Sequence[Kind],
    workers: int = DEFAULT_WORKERS,
    on_done: Callable[[Change], None] | None = None,
    stop: threading.Event | None = None,
    before_changes: Callable[[], None] | None = None,
) -> ApplyResult:
    """Run every change of the plan; never raises for a Keycloak error, reports it instead.

    `before_changes` runs once the realm exists, before anything inside it
    changes (the realm lock of a realm this run creates); if it raises a
    KcprovError nothing further is done.
    """
    stop = stop or threading.Event()
    failed = threading.Event()  # set by the first failure, in whichever worker it happens
    by_name = {k.name: k for k in kinds}
    ctx = ApplyContext(client, plan.realm, live, {k: dict(v) for k, v in desired.items()})
    result = ApplyResult()
    recorded = _recorded(live)
    prepared = False
    batches = [list(batch) for _, batch in groupby(plan.changes, key=lambda c: c.sort_key()[:2])]
    gate = _Gate(AdaptiveLimit(workers))
    with ThreadPoolExecutor(max_workers=workers) as pool, client.overload_listener(gate.overloaded):
        for index, batch in enumerate(batches):
            if not prepared and _realm_exists(plan, result) and not _creates_realm(batch):
                prepared = True
                try:
                    if before_changes:
                        before_changes()
                    recorded = _write_ownership(ctx, recorded, _ownership(live, plan, by_name, ApplyResult()))
                except KcprovError as exc:
                    result.run_errors.append(exc)
                    failed.set()
            if stop.is_set() or failed.is_set():
                result.not_run.extend(c for later in batches[index:] for c in later)
                break
            futures = [(c, pool.submit(_run, by_name[c.kind], ctx, c, stop, failed, gate)) for c in batch]
            for change, future in futures:
                outcome = future.result()
                if outcome is NOT_STARTED:
                    result.not_run.append(change)
                elif outcome is None:
                    result.done.append(change)
                    if on_done:
                        on_done(change)
                else:
                    result.failed.append((change, outcome))
    if _realm_exists(plan, result):
        try:
            _write_ownership(ctx, recorded, _ownership(live, plan, by_name, result))
        except KcprovError as exc:
            result.run_errors.append(exc)
    return result


def _run(kind: Kind, ctx: ApplyContext, change: Change, stop: threading.Event, failed: threading.Event, gate: _Gate):
    """One change once the gate lets it start, unless the run is stopping; a failure stops the run for every
    other worker."""
    gate.enter()
    outcome = None
    try:
        if stop.is_set() or failed.is_set():
            outcome = NOT_STARTED
        elif change.action != "adopt":  # an adoption is done by the ownership record
            getattr(kind, change.action)(ctx, change)
    except KcprovError as exc:
        failed.set()
        outcome = exc
    finally:
        gate.leave(succeeded=outcome is None)
    return outcome


def _realm_exists(plan: Plan, result: ApplyResult) -> bool:
    return plan.realm_exists or any(c.kind == "realm" and c.action == "create" for c in result.done)


def _creates_realm(batch: list[Change]) -> bool:
    return any(c.kind == "realm" and c.action == "create" for c in batch)


def _recorded(live: LiveState) -> str | None:
    return ((live.raw.export or {}).get("attributes") or {}).get(OWNERSHIP_ATTRIBUTE)


def _ownership(live: LiveState, plan: Plan, by_name: Mapping[str, Kind], result: ApplyResult) -> dict[str, set[str]]:
    """Own what the plan creates or adopts, unless `result` says it did not happen; forget what was deleted.

    A create that failed for a transport reason may have been made (its answer
    was lost): it stays owned, so it can never turn up as an unmanaged orphan.
    """
    unfinished = [c for c, exc in result.failed if not isinstance(exc, KeycloakUnreachable)] + result.not_run
    not_taken = {(c.kind, c.key) for c in unfinished if c.action in ("create", "adopt")}
    deleted = {(c.kind, c.key) for c in result.done if c.action == "delete"}
    record = {k: set(v) for k, v in live.owned.items()}
    for change in plan.changes:
        if (change.action in ("create", "adopt") and by_name[change.kind].deletable
                and (change.kind, change.key) not in not_taken):
            record.setdefault(change.kind, set()).add(change.key)
    for kind_name, key in deleted:
        record.get(kind_name, set()).discard(key)
    return record


def _write_ownership(ctx: ApplyContext, current: str | None, record: dict[str, set[str]]) -> str | None:
    """Store the record in the realm attribute unless it is already there; answers what is stored."""
    encoded = encode_ownership(record)
    if encoded != current:
        what = f"ownership record of realm '{ctx.realm}'"
        # Keycloak replaces the whole attribute map on update: send it back with ours changed.
        attributes = ctx.client.get(ctx.base, what).get("attributes") or {}
        ctx.client.put(ctx.base, {"attributes": {**attributes, OWNERSHIP_ATTRIBUTE: encoded}}, what)
    return encoded
