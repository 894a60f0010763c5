"""Warming Keycloak's realm cache before a large realm's one export.

The partial export reads every client and every client role inside ONE
transaction. With a cold cache (after a restart; after a mass create, which
invalidates what it touches) Keycloak loads each from its database: 11-17 ms
of server time per client on the dev Keycloak (BENCHMARKS.md, "Results"), even
where the first page of clients answers fast (COLD_SECONDS_PER_CLIENT). At
2,000 clients that outlasts kcprov's 30 s request timeout; past ~5,000,
Keycloak's own transaction limit (300 s): its reaper rolls the export back,
nothing stays cached, and every later plan fails the same way.

Read first in many small requests, each its own short transaction, the same
loading stays in the cache request by request, and the export then answers
from the cache (10,000 clients: 1.1-1.7 s). Only for a realm of many clients,
and only when a first page shows the cache is cold: a warm realm costs one
request more. What the warm-up reads is dropped: the export stays the one
source of the live state, so every kind reads one shape.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from kcprov.errors import KeycloakApiError
from kcprov.keycloak import KeycloakClient

LARGE_REALM = 1000  # clients: below this, a cold export stays well inside the request timeout
PAGE = 500  # clients per page: a cold page loads in 5-12 s here
COLD_SECONDS_PER_CLIENT = 0.001
"""Per client, the page time from which the cache is taken for cold. Measured on the dev Keycloak 26.7.3 (H2,
2 cores): warm pages 0.1-0.6 ms a client; cold after a restart 9-17 ms; cold right after a mass create only
2.5-3.0 ms (the clients were just written, yet the export of those 2,000 took 33 s, and 0.22 s after the
warm-up). The bound sits between warm and the cheapest cold: taking a warm cache for cold costs one needless
warm-up, taking a cold one for warm an export past Keycloak's transaction limit at 10,000 clients."""
WORKERS = 4  # concurrent role reads: Keycloak's database load is the bound, not the connection


def may_be_large(expected_clients: int | None) -> bool:
    """Whether to look at the cache first: the file names many clients, or the realm is read whole (size unknown)."""
    return expected_clients is None or expected_clients >= LARGE_REALM


def cold(seconds: float, clients: int) -> bool:
    """Whether a page of `clients` that took `seconds` came from the database rather than the cache."""
    return clients > 0 and seconds / clients >= COLD_SECONDS_PER_CLIENT


def warm_up(client: KeycloakClient, realm: str, expected_clients: int | None) -> None:
    """Load a large realm's clients and their roles into Keycloak's cache when it is cold.

    `expected_clients`: the clients the file names, None when the realm is read
    whole (`kcprov export`).
    """
    if not may_be_large(expected_clients):
        return
    pages = client.client_pages(realm, PAGE)
    started = time.monotonic()
    try:
        page = next(pages)
    except KeycloakApiError as exc:
        if exc.status == 404:  # a realm not made yet
            return
        raise
    if len(page) < PAGE or not cold(time.monotonic() - started, len(page)):
        return  # a small realm (its export is cheap even cold), or a warm cache
    clients = [*page, *(c for later in pages for c in later)]
    with ThreadPoolExecutor(WORKERS) as pool:
        for _ in pool.map(lambda c: client.client_roles(realm, c["id"], c["clientId"]), clients):
            pass
