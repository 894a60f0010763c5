"""The realm lock: one apply per realm at a time, across machines.

Keycloak has no lock primitive, but creating a top-level group is one: a
second create of the same name answers 409. The lock is the group
`kcprov-apply-lock` in the realm; its attribute holds who holds it (host,
pid, user, since) and until when. The group kind leaves it out of the live
realm (and a realm file may not name it), so plans, ownership records and
saved-plan fingerprints never see it; plans (read-only) do not take it. Managing groups takes realm-management `manage-users`, which
an apply of users or service-account roles needs anyway.

A holder that died leaves its group behind; the lock is then stale when its
expiry has passed (the holder refreshes it every TTL/3 while it runs) or,
on the same host, when the holder's pid is gone. A stale lock is deleted by
id and taken anew: two takers race on the create, and the 409 decides.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from kcprov.errors import KcprovError, KeycloakApiError

if TYPE_CHECKING:
    from kcprov.keycloak import KeycloakClient

LOCK_GROUP = "kcprov-apply-lock"
HOLDER_ATTRIBUTE = "kcprov.lock.holder"
DEFAULT_TTL = 600.0  # seconds a lock lives without a refresh
RETRY_EVERY = 1.0  # seconds between tries while waiting for a held lock


class RealmLocked(KcprovError):
    """Another apply holds the realm."""


class RealmLock:
    """The lock of one realm, taken by `acquire`, kept fresh while held, dropped by `release`."""

    def __init__(self, client: KeycloakClient, realm: str, ttl: float = DEFAULT_TTL):
        self.client = client
        self.realm = realm
        self.ttl = ttl
        self.token = secrets.token_hex(8)
        self._group_id: str | None = None
        self._since: str | None = None
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._group_id is not None

    @property
    def _groups(self) -> str:
        from kcprov.keycloak import seg  # not at the top: the spec imports LOCK_GROUP, and `validate` stays offline

        return f"/admin/realms/{seg(self.realm)}/groups"

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, waiting up to `wait` seconds for a live holder; RealmLocked names it."""
        deadline = time.monotonic() + wait
        while True:
            holder = self._try()
            if holder is None:
                self._start_refresher()
                return
            if time.monotonic() >= deadline:
                raise RealmLocked(
                    f"realm '{self.realm}' is being applied by {describe(holder)}; not applying at the same time.",
                    hint=(f"wait for it to finish (--lock-timeout SECONDS waits), or, if that run is dead, delete the "
                          f"group '{LOCK_GROUP}' of realm '{self.realm}'; it expires by itself at {holder.get('expires')}"),
                )
            time.sleep(min(RETRY_EVERY, max(0.0, deadline - time.monotonic())))

    def release(self) -> None:
        """Drop the lock if held; a failure leaves it to expire (the next run sees a stale lock)."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join()
        group_id, self._group_id = self._group_id, None
        if group_id is None:
            return
        try:
            self.client.delete(f"{self._groups}/{group_id}", self._what)
        except KcprovError:
            pass  # Keycloak gone or the lock already taken over: expiry and the pid check cover it

    @property
    def _what(self) -> str:
        return f"lock of realm '{self.realm}'"

    def _try(self) -> dict | None:
        """One attempt: None when the lock is now ours, else the live holder."""
        holder: dict = {}
        for _ in range(2):  # a stale lock is removed once, then the create decides
            try:
                # once: the lock is Keycloak's 409; a lookup after a lost answer could find another run's lock
                self._group_id = self.client.post(self._groups, self._representation(), self._what, once=True)
                return None
            except KeycloakApiError as exc:
                if exc.status == 403:
                    raise KcprovError(f"{exc.message} kcprov locks a realm with a group while it applies.",
                                      hint=f"grant the admin account realm-management `manage-users` of realm "
                                           f"'{self.realm}' (groups are managed with it)") from None
                if exc.status != 409:
                    raise
            current = self._current()
            if current is None:
                continue  # released meanwhile
            group_id, holder = current
            if holder.get("token") == self.token:  # our own create, whose answer was lost
                self._group_id = group_id
                return None
            if not stale(holder):
                return holder
            try:
                self.client.delete(f"{self._groups}/{group_id}", self._what)
            except KeycloakApiError as exc:
                if exc.status != 404:
                    raise
        return holder

    def _current(self) -> tuple[str, dict] | None:
        found = self.client.get(self._groups, self._what, search=LOCK_GROUP, exact="true", briefRepresentation="false")
        for group in found or []:
            if group.get("name") == LOCK_GROUP:
                raw = ((group.get("attributes") or {}).get(HOLDER_ATTRIBUTE) or ["{}"])[0]
                try:
                    holder = json.loads(raw)
                except ValueError:
                    holder = {}
                return group["id"], holder if isinstance(holder, dict) else {}
        return None

    def _representation(self) -> dict:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        holder = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "user": _user(),
            "since": self._since or now.isoformat(),
            "expires": (now + timedelta(seconds=self.ttl)).isoformat(),
            "token": self.token,
        }
        self._since = holder["since"]
        return {"name": LOCK_GROUP, "attributes": {HOLDER_ATTRIBUTE: [json.dumps(holder)]}}

    def _start_refresher(self) -> None:
        self._stop.clear()
        self._refresher = threading.Thread(target=self._refresh, name=f"lock-{self.realm}", daemon=True)
        self._refresher.start()

    def _refresh(self) -> None:
        """Push the expiry forward every TTL/3 while held; stop if the lock is gone."""
        while not self._stop.wait(self.ttl / 3):
            group_id = self._group_id
            if group_id is None:
                return
            try:
                self.client.put(f"{self._groups}/{group_id}", self._representation(), self._what)
            except KcprovError:
                return


def stale(holder: dict) -> bool:
    """Past its expiry, or held by a process of this host that no longer runs."""
    try:
        if datetime.fromisoformat(holder["expires"]) <= datetime.now(timezone.utc):
            return True
    except (KeyError, TypeError, ValueError):
        return True  # not a holder kcprov wrote
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return not _alive(holder["pid"])
    return False


def describe(holder: dict) -> str:
    """Who holds a lock, for messages."""
    return (f"{holder.get('user', '?')} on {holder.get('host', '?')} (pid {holder.get('pid', '?')}) "
            f"since {holder.get('since', '?')}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown user"
