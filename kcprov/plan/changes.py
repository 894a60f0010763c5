"""The Plan value: typed, ordered, comparable changes (after octoDNS's Create/Update/Delete).

A Plan is data: it can be rendered, saved as JSON and compared with a
recomputed plan. Secret values never enter its JSON form: a sensitive field
is kept as an opaque object in memory (for apply) and rendered as
`(sensitive)` everywhere else.

An "adopt" change (after Terraform's import) changes nothing in Keycloak: it
takes an object the file names, that exists but kcprov did not create, into
the ownership record, so removing it from the file later deletes it. Only
`kcprov adopt` and `apply --adopt` plan adoptions; a plain plan lists such
objects as `not_adopted` and leaves their ownership alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from kcprov.errors import KcprovError
from kcprov.plan.dcr import DcrClient
from kcprov.secret import Secret, public

Action = Literal["adopt", "create", "update", "delete"]

# octoDNS-style thresholds: refuse plans that delete or replace more than this
# share of the objects kcprov manages in a realm, once it manages at least MIN.
MAX_DELETE_SHARE = 0.30
MIN_MANAGED_FOR_THRESHOLD = 10


class UnsafePlan(KcprovError):
    """The plan would remove too much at once; --force overrides."""


@dataclass(frozen=True)
class FieldDiff:
    """One attribute's before/after; `before` is None for a create.

    `default` marks a value the file leaves out that kcprov sets on create (a safe
    value, or what Keycloak would fill in anyway): shown so the reviewer sees what
    the object will hold, and managed no further once the object exists.
    """

    field: str
    before: Any
    after: Any
    default: bool = False

    @property
    def sensitive(self) -> bool:
        return isinstance(self.before, Secret) or isinstance(self.after, Secret)

    def to_json(self) -> dict:
        return {"field": self.field, "before": public(self.before), "after": public(self.after),
                "sensitive": self.sensitive, "default": self.default}


@dataclass(frozen=True)
class Change:
    """Adopt, create, update or delete of one object, identified by (kind, key)."""

    action: Action
    kind: str
    key: str
    stage: float
    diffs: tuple[FieldDiff, ...] = ()
    group: str | None = None  # e.g. the MCP server an object was expanded from

    @property
    def address(self) -> str:
        return f"{self.kind}.{self.key}"

    def sort_key(self) -> tuple:
        # adoptions first (one batch, done by the ownership record written before any change),
        # creates/updates in dependency order, deletes in reverse dependency order
        stage = -1 if self.action == "adopt" else -self.stage if self.action == "delete" else self.stage
        return (self.action == "delete", stage, self.kind, self.key)

    def to_json(self) -> dict:
        return {"action": self.action, "kind": self.kind, "key": self.key, "stage": self.stage,
                "group": self.group, "diffs": [d.to_json() for d in self.diffs]}


@dataclass(frozen=True)
class PlanWarning:
    """A legal but risky setup, shown with the plan; `id` silences it (kcprov.spec.quiet)."""

    id: str
    message: str

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict:
        return {"id": self.id, "message": self.message}


@dataclass
class Plan:
    """Everything `kcprov apply` will do to one realm, and what it will leave alone."""

    realm: str
    realm_exists: bool
    changes: list[Change]
    managed_count: int
    live_fingerprint: str | Callable[[], str]
    """The live state's digest (`state_fingerprint`), or how to compute it: a plan that is only printed
    never needs it, and it is a third of a second at 10,000 clients."""
    unmanaged: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[PlanWarning] = field(default_factory=list)
    source: str | None = None  # the realm file this plan came from
    # objects the file names that exist but kcprov does not own, in a plan that does not adopt them
    not_adopted: list[tuple[str, str]] = field(default_factory=list)
    # only in a plan of `kcprov adopt`: the changes it leaves for the next apply
    deferred: list[Change] | None = None
    # the unmanaged clients that DCR registered, by (kind, key) as in `unmanaged`: what they call themselves, when
    dcr_clients: dict[tuple[str, str], DcrClient] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.changes.sort(key=Change.sort_key)
        self.unmanaged.sort()
        self.not_adopted.sort()

    @property
    def state_fingerprint(self) -> str:
        """Digest of the live state planned against: a saved plan or an apply is stale when it moves."""
        if callable(self.live_fingerprint):
            self.live_fingerprint = self.live_fingerprint()
        return self.live_fingerprint

    @property
    def empty(self) -> bool:
        return not self.changes

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action == action)

    def summary(self) -> str:
        adopting = f"{self.count('adopt')} to adopt, " if self.count("adopt") else ""
        return (f"{adopting}{self.count('create')} to create, {self.count('update')} to update, "
                f"{self.count('delete')} to delete")

    def raise_if_unsafe(self, force: bool = False) -> None:
        """Refuse mass deletion (octoDNS's Plan.raise_if_unsafe), unless forced."""
        deletes = self.count("delete")
        if force or self.managed_count < MIN_MANAGED_FOR_THRESHOLD or deletes == 0:
            return
        share = deletes / self.managed_count
        if share > MAX_DELETE_SHARE:
            raise UnsafePlan(
                f"realm '{self.realm}': the plan deletes {deletes} of {self.managed_count} managed objects "
                f"({share:.0%}), more than the {MAX_DELETE_SHARE:.0%} safety threshold.",
                hint="check the realm file is complete (a missing include or a typo can empty a section); "
                "if the deletions are intended, re-run with --force",
            )

    def content_digest(self) -> str:
        """A digest of what the plan does, for checking a saved plan against a fresh one.

        Secret values stay out of it (not even hashed: a dev password is short
        enough to brute-force); they are resolved again at apply time anyway.
        """
        doc = [[c.action, c.kind, c.key, [[d.field, public(d.before), public(d.after), d.default] for d in c.diffs]]
               for c in self.changes]
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()

    def to_json(self) -> dict:
        return {
            "realm": self.realm,
            "realm_exists": self.realm_exists,
            "source": self.source,
            "state_fingerprint": self.state_fingerprint,
            "content_digest": self.content_digest(),
            "managed_count": self.managed_count,
            "summary": {a: self.count(a) for a in ("adopt", "create", "update", "delete")},
            "changes": [c.to_json() for c in self.changes],
            "unmanaged": [{"kind": k, "key": key, **(self.dcr_clients[k, key].to_json() if (k, key) in self.dcr_clients else {})}
                          for k, key in self.unmanaged],
            "not_adopted": [{"kind": k, "key": key} for k, key in self.not_adopted],
            "warnings": [w.to_json() for w in self.warnings],
        }
