"""Executing a Plan: stage by stage, concurrently within a stage, stopping at the first failure.

Changes of one stage do not depend on each other (the stage order is the
dependency order), so they run on a bounded thread pool. After a failure no
new change starts; the result says what was done and what was not, and the
next plan shows exactly the rest. The ownership record (which objects kcprov
created or adopted) is written last, for whatever was done.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby

from kcprov.errors import KcprovError
from kcprov.keycloak import KeycloakClient
from kcprov.plan.changes import Change, Plan
from kcprov.resources.base import ApplyContext, Kind
from kcprov.state import OWNERSHIP_ATTRIBUTE, LiveState, encode_ownership

DEFAULT_WORKERS = 8


@dataclass
class ApplyResult:
    done: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, KcprovError]] = field(default_factory=list)
    not_run: list[Change] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def apply_plan(
    client: KeycloakClient,
    plan: Plan,
    live: LiveState,
    desired: Mapping[str, Mapping[str, Mapping]],
    kinds: Sequence[Kind],
    workers: int = DEFAULT_WORKERS,
    on_done: Callable[[Change], None] | None = None,
) -> ApplyResult:
    """Run every change of the plan; never raises for a Keycloak error, reports it instead."""
    by_name = {k.name: k for k in kinds}
    ctx = ApplyContext(client, plan.realm, live, {k: dict(v) for k, v in desired.items()})
    result = ApplyResult()
    batches = [list(batch) for _, batch in groupby(plan.changes, key=lambda c: c.sort_key()[:2])]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for index, batch in enumerate(batches):
            futures = [(c, pool.submit(_run, by_name[c.kind], ctx, c)) for c in batch]
            for change, future in futures:
                error = future.result()
                if error is None:
                    result.done.append(change)
                    if on_done:
                        on_done(change)
                else:
                    result.failed.append((change, error))
            if result.failed:
                result.not_run = [c for later in batches[index + 1:] for c in later]
                break
    if plan.realm_exists or any(c.kind == "realm" and c.action == "create" for c in result.done):
        _record_ownership(ctx, plan, live, desired, by_name, result)
    return result


def _run(kind: Kind, ctx: ApplyContext, change: Change) -> KcprovError | None:
    try:
        getattr(kind, change.action)(ctx, change)
    except KcprovError as exc:
        return exc
    return None


def _record_ownership(ctx, plan, live, desired, by_name, result: ApplyResult) -> None:
    """Own what the file declares and now exists; forget what was deleted."""
    unfinished = [c for c, _ in result.failed] + result.not_run
    failed_creates = {(c.kind, c.key) for c in unfinished if c.action == "create"}
    deleted = {(c.kind, c.key) for c in result.done if c.action == "delete"}
    record = {k: set(v) for k, v in live.owned.items()}
    for kind_name, objects in desired.items():
        if not by_name[kind_name].deletable:
            continue
        for key in objects:
            if (kind_name, key) not in failed_creates:
                record.setdefault(kind_name, set()).add(key)
    for kind_name, key in deleted:
        record.get(kind_name, set()).discard(key)
    encoded = encode_ownership(record)
    current = ((live.raw.export or {}).get("attributes") or {}).get(OWNERSHIP_ATTRIBUTE)
    if encoded != current:
        what = f"ownership record of realm '{ctx.realm}'"
        try:
            # Keycloak replaces the whole attribute map on update: send it back with ours changed.
            attributes = ctx.client.get(ctx.base, what).get("attributes") or {}
            ctx.client.put(ctx.base, {"attributes": {**attributes, OWNERSHIP_ATTRIBUTE: encoded}}, what)
        except KcprovError as exc:
            result.failed.append((Change("update", "realm", ctx.realm, 0), exc))
