"""The pure diff: (desired objects, live state) -> Plan. No I/O here.

Both sides arrive normalised into the same flat shape per kind (see
kcprov.resources): {key: {field: value}}. Only fields the realm file writes
are compared, so Keycloak's own defaults never show as changes. A create also
lists the kind's `create_defaults` (marked `default`): what the new object will
hold for the fields the file leaves out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kcprov.plan.changes import Change, FieldDiff, Plan
from kcprov.resources.base import Kind
from kcprov.state import LiveState

Objects = Mapping[str, Mapping[str, Mapping]]  # kind -> key -> field -> value


def compute_plan(
    realm: str,
    desired: Objects,
    live: LiveState,
    kinds: Sequence[Kind],
    prune: bool = False,
    groups: Mapping[tuple[str, str], str] | None = None,
    source: str | None = None,
) -> Plan:
    """Diff every kind; deletes only what kcprov owns (or everything unmanaged with prune)."""
    groups = groups or {}
    by_name = {k.name: k for k in kinds}
    changes: list[Change] = []
    unmanaged: list[tuple[str, str]] = []
    deleted: set[tuple[str, str]] = set()
    for kind in kinds:  # kinds come in dependency order: parents before children
        want = desired.get(kind.name, {})
        have = live.objects.get(kind.name, {})
        owned = live.owned.get(kind.name, set())
        for key, attrs in want.items():
            group = groups.get((kind.name, key))
            if key not in have:
                defaults = kind.create_defaults(key, attrs, desired, live)
                diffs = tuple(FieldDiff(f, None, v) for f, v in attrs.items()) + tuple(
                    FieldDiff(f, None, v, default=True) for f, v in defaults.items() if f not in attrs)
                changes.append(Change("create", kind.name, key, kind.stage_of(key), diffs, group))
                continue
            current = have[key]
            diffs = tuple(
                FieldDiff(f, current.get(f), v)
                for f, v in attrs.items()
                if f not in kind.write_only and current.get(f) != v
            )
            if diffs:
                changes.append(Change("update", kind.name, key, kind.stage_of(key), diffs, group))
        if not kind.deletable:
            continue
        for key in sorted(set(have) - set(want)):
            parent = kind.parent(key)
            if parent is not None:
                if parent in deleted:
                    deleted.add((kind.name, key))  # goes with its parent
                    continue
                if parent[1] not in desired.get(parent[0], {}):
                    continue  # a child of an object kcprov does not manage
            if is_builtin(kind, key, realm, by_name):
                continue  # never deleted, even once a file adopted it (owned) and then left it out
            if key in owned or prune:
                deleted.add((kind.name, key))
                before = tuple(FieldDiff(f, v, None) for f, v in sorted(have[key].items()))
                changes.append(Change("delete", kind.name, key, kind.stage_of(key), before, groups.get((kind.name, key))))
            else:
                unmanaged.append((kind.name, key))
    return Plan(
        realm=realm,
        realm_exists=live.exists,
        changes=changes,
        managed_count=sum(len(keys & set(live.objects.get(k, {}))) for k, keys in live.owned.items()),
        live_fingerprint=lambda: live.fingerprint,  # the state is not changed before an apply reads it
        unmanaged=unmanaged,
        warnings=list(live.warnings),
        source=source,
    )


def is_builtin(kind: Kind, key: str, realm: str, by_name: Mapping[str, Kind]) -> bool:
    """Built into the realm, or a child of something that is (the roles of `realm-management`,
    the mappers of `profile`): never listed as unmanaged, never pruned."""
    while True:
        if kind.is_builtin(key, realm):
            return True
        parent = kind.parent(key)
        if parent is None or parent[0] not in by_name:
            return False
        kind, key = by_name[parent[0]], parent[1]
