"""What every resource kind provides: its identity, how to read it, how to write it.

A kind turns the realm file into flat desired objects ({key: {field: value}})
and the live realm into the same shape; the engine diffs the two without
knowing any kind. A create also carries `create_defaults`: the values a kind
sets for fields the file leaves out, so what the plan shows is what Keycloak
will hold (Keycloak's own create defaults are not always safe, and differ by
endpoint). Writing happens through `create/update/delete`, which get
an ApplyContext (the Keycloak client and the ids known so far) and must do
nothing but Admin API calls for that one object. `export` is the way back:
a live object into the realm file (`kcprov export`), so each kind's file
format is known in one module only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kcprov.errors import KeycloakApiError

from kcprov.keycloak import seg

if TYPE_CHECKING:
    from kcprov.export.document import ExportContext
    from kcprov.keycloak import KeycloakClient
    from kcprov.plan.changes import Change
    from kcprov.spec.models import RealmSpec
    from kcprov.state import LiveState, RawRealm

Attrs = dict[str, Any]
Objects = dict[str, dict[str, Attrs]]  # kind -> key -> flat fields


def flag(value: Any) -> bool | None:
    """Keycloak stores booleans as JSON booleans or as "true"/"false" strings."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def text(value: Any) -> str:
    """Config values as Keycloak keeps them: strings ("true"/"false" for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def drop_none(attrs: dict[str, Any]) -> Attrs:
    """Only fields the file writes are managed: None means "not written"."""
    return {k: v for k, v in attrs.items() if v is not None}


def prefixed(prefix: str, mapping: dict[str, Any] | None) -> Attrs:
    """Raw passthrough maps become one field per entry (`attributes.x`), compared one by one."""
    return {f"{prefix}.{k}": text(v) for k, v in (mapping or {}).items()}


def without_ids(value: Any) -> Any:
    """A representation without server ids, which differ between any two realms (for comparing two realms)."""
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k not in ("id", "containerId", "parentId", "flowId")}
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    return value


def new_builtin(kind: Kind, key: str, live: LiveState) -> bool:
    """A built-in object of a realm this apply creates: Keycloak makes it with the realm, so its
    "create" is an update of what Keycloak made, without create defaults (a file naming a built-in
    to change it, applied to a new realm)."""
    return not live.exists and kind.is_builtin(key, live.realm)


class ApplyContext:
    """Shared by the writers of one apply: the client, the realm, and server ids."""

    def __init__(self, client: KeycloakClient, realm: str, live: LiveState, desired: dict[str, dict[str, Attrs]]):
        self.client = client
        self.realm = realm
        self.live = live
        self.desired = desired
        self._ids: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._documents: dict[str, threading.Lock] = {}

    @property
    def base(self) -> str:
        return f"/admin/realms/{seg(self.realm)}"

    def remember(self, kind: str, key: str, server_id: str) -> None:
        with self._lock:
            self._ids[(kind, key)] = server_id

    def serialised(self, document: str) -> threading.Lock:
        """The lock of one document several changes rewrite whole (the user profile): changes of a stage run
        concurrently, and two GET-modify-PUTs from the same GET would lose one of them."""
        with self._lock:
            return self._documents.setdefault(document, threading.Lock())

    def known_id(self, kind: str, key: str) -> str | None:
        with self._lock:
            return self._ids.get((kind, key))

    def server_id(self, kind: str, key: str, export_field: str, name_field: str,
                  lookup: Callable[[], list[dict]], missing_hint: str) -> str:
        """The server id of an object: known from this apply, else from the export, else looked up."""
        known = self.known_id(kind, key)
        if known:
            return known
        for source in (lambda: (self.live.raw.export or {}).get(export_field, []), lookup):
            for rep in source():
                if rep[name_field] == key:
                    self.remember(kind, key, rep["id"])
                    return rep["id"]
        label = kind.replace("_", " ")
        raise KeycloakApiError(f"{label} '{key}' does not exist in realm '{self.realm}'.", hint=missing_hint)


class Kind:
    """Base class of resource kinds; subclasses set the class attributes and methods."""

    name: str = ""
    stage: float = 0  # dependency order: lower stages are created first, deleted last (see stage_of)
    deletable: bool = True  # kinds kcprov may delete (and list as unmanaged)
    label: str = ""  # how the kind is named to users
    write_only: frozenset[str] = frozenset()  # set on create, never read back (passwords)
    # what Keycloak does for a field it does not hold (an attribute never set): an export need not write it
    absent_means: dict[str, Any] = {}
    # top-level fields of the realm's representation this kind models (smtpServer, browserFlow, groups):
    # the realm kind does not read them as settings, and an export does not list them as not modelled
    reads: frozenset[str] = frozenset()

    def desired(self, spec: RealmSpec) -> dict[str, Attrs]:
        raise NotImplementedError

    def read(self, client: KeycloakClient, raw: RawRealm, desired: Objects, owned: dict[str, set[str]]) -> None:
        """Fetch into `raw` what the partial export lacks, for an existing realm; most kinds need nothing.

        Runs before `live`. Only the objects `desired` (every kind's desired objects)
        or `owned` (the ownership record) name may cost requests, so an in-sync plan
        costs the same number of requests whatever else the realm holds; a kind with
        its own section stores it under `raw.extra[self.name]`.
        """

    def live(self, raw: RawRealm) -> dict[str, Attrs]:
        raise NotImplementedError

    def create_defaults(self, key: str, attrs: Attrs, desired: Objects, live: LiveState) -> Attrs:
        """Values for fields `attrs` leaves out, set when the object is created and shown as `(default)`.

        Pure (no request): `desired` is every kind's desired objects, `live` the realm as read.
        Only fields missing from `attrs` count; the object is created with them and they are
        not managed afterwards (the file does not write them).
        """
        return {}

    def stage_of(self, key: str) -> float:
        """The stage of one object: the kind's, unless its objects depend on each other (a subgroup
        on its parent group), when deeper objects come later (and are deleted earlier)."""
        return self.stage

    def parent(self, key: str) -> tuple[str, str] | None:
        """The (kind, key) this object belongs to, if it is a child (mappers, client roles)."""
        return None

    def is_builtin(self, key: str, realm: str) -> bool:
        """Objects every realm has; never listed as unmanaged, never pruned."""
        return False

    def refuses_changes(self, key: str, realm: str) -> bool:
        """Objects Keycloak does not let an admin change (403): an export lists their changes instead."""
        return False

    def create(self, ctx: ApplyContext, change: Change) -> None:
        raise NotImplementedError

    def update(self, ctx: ApplyContext, change: Change) -> None:
        raise NotImplementedError

    def delete(self, ctx: ApplyContext, change: Change) -> None:
        raise NotImplementedError

    def export(self, key: str, fields: Attrs, ctx: ExportContext) -> None:
        """Write one live object into the realm file being exported (`ctx.doc`, the YAML document as dicts).

        `fields` are the object's flat fields (as `live` gives them) that differ from
        what a new realm or a bare create gives (all of them with `--all`); the whole
        object is `ctx.live.objects[self.name][key]`. What the file format cannot hold
        is named with `ctx.not_exported`, never dropped silently; secrets go through
        `ctx.secret_ref`. The contract is the round trip: a plan of the written entry
        against the same realm is empty, and applying it to a new realm then exporting
        that gives the same entry. A kind without an export lists its objects as not
        exported.
        """
        ctx.not_exported(self.label, key)
