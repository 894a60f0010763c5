"""Adoption: taking over objects that exist in the realm but kcprov did not create. Pure.

kcprov deletes only what its ownership record names (see kcprov.state). An
object the file names that was made by hand (or by an older tool, or is the
realm a user clicked together) is not in the record: a plan may update it,
but removing it from the file leaves it in place. Only an explicit
adoption (`kcprov adopt`, `apply --adopt`) records it, because ownership is
the licence to delete: if any apply adopted silently, a pull request adding
an entry that happens to name an existing hand-made object would take it
over, and a later removal of that entry would delete an object kcprov never
made.

What can be adopted follows the deletion rules of compute_plan: only kinds
kcprov may delete, never a built-in object or a child of one (they are never
deleted anyway), and children (mappers, client roles) by their own key, like
any object the file names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from kcprov.plan.changes import Change, Plan
from kcprov.plan.diff import Objects, is_builtin
from kcprov.resources.base import Kind
from kcprov.state import LiveState


def adoptable(realm: str, desired: Objects, live: LiveState, kinds: Sequence[Kind]) -> list[tuple[str, str]]:
    """(kind, key) of every object the file names that exists, is not owned and is not built in."""
    by_name = {k.name: k for k in kinds}
    found = []
    for kind in kinds:
        if not kind.deletable:
            continue  # ownership means nothing to a kind kcprov never deletes
        have = live.objects.get(kind.name, {})
        owned = live.owned.get(kind.name, set())
        found += [(kind.name, key) for key in desired.get(kind.name, {})
                  if key in have and key not in owned and not is_builtin(kind, key, realm, by_name)]
    return found


def with_adoptions(plan: Plan, found: Sequence[tuple[str, str]], kinds: Sequence[Kind],
                   groups: Mapping[tuple[str, str], str] | None = None, adopt: bool = False) -> Plan:
    """The plan with an "adopt" change for each object found, or (not adopting) with them listed as not adopted."""
    if not adopt:
        return replace(plan, not_adopted=list(found))
    by_name = {k.name: k for k in kinds}
    groups = groups or {}
    adoptions = [Change("adopt", kind, key, by_name[kind].stage_of(key), group=groups.get((kind, key))) for kind, key in found]
    return replace(plan, changes=adoptions + plan.changes)


def adoptions_only(plan: Plan) -> Plan:
    """The plan of `kcprov adopt`: its adoptions; every other change is left (deferred) for the next apply."""
    return replace(plan, changes=[c for c in plan.changes if c.action == "adopt"],
                   deferred=[c for c in plan.changes if c.action != "adopt"])


def updates_of_adopted(plan: Plan) -> int:
    """How many objects `plan` adopts that differ from the file (the next plan updates them)."""
    adopted = {(c.kind, c.key) for c in plan.changes if c.action == "adopt"}
    return sum(1 for c in plan.deferred or () if c.action == "update" and (c.kind, c.key) in adopted)
