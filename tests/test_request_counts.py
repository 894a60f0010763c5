"""Request counts pinned against the real Keycloak: what a create and an in-sync plan cost.

The benchmark's client (confidential or public, one redirect URI, an optional
scope carrying an audience mapper, one client role) is created with two
requests: the client (its scope lists in the body, its id from the Location
header) and its role. Everything else of an apply is a constant: the realm,
the scope and its mapper, the lock, the ownership record. An in-sync plan
reads the realm in one partial export, whatever its size. Counted with
`KeycloakClient.requests`, never timed.

The scope lists a create leaves to Keycloak's create body are checked here
too, read back through the client's own scope endpoints: the cut request
(reading the new client back) must not change what the client holds.
"""

from __future__ import annotations

import io
import threading

import pytest
from rich.console import Console

from kcprov import warmup
from kcprov.connection import ConnectionSettings
from kcprov.keycloak import KeycloakClient
from kcprov.run import apply_realm
from kcprov.spec.models import RealmSpec
from kcprov.workflow import plan_realm

pytestmark = pytest.mark.keycloak

PER_CLIENT = 2  # the client, its role
# the realm, the lock (create, delete), the ownership record (read, write; the final one is the same),
# the realm role, the scope, its realm type, its mapper
APPLY_CONSTANT = 9
NEW_REALM_DEFAULT_SCOPES = ["acr", "basic", "email", "profile", "roles", "web-origins"]
NEW_REALM_OPTIONAL_SCOPES = ["address", "microprofile-jwt", "offline_access", "organization", "phone"]


def benchmark_realm(name: str, clients: int) -> RealmSpec:
    """The benchmark's realm shape (issue 13), `clients` clients."""
    return RealmSpec.model_validate({
        "realm": name,
        "roles": [{"name": "mcp-user"}],
        "client_scopes": [{"name": "mcp:tools", "type": "optional", "include_in_token_scope": True,
                           "mappers": [{"name": "aud", "audience": "http://localhost:3000/mcp"}]}],
        "clients": [{"client_id": f"app-{i:04d}", "confidential": i % 2 == 0, "roles": ["reader"],
                     "redirect_uris": [f"http://localhost:{10000 + i}/callback"], "optional_scopes": ["mcp:tools"]}
                    for i in range(clients)],
    })


@pytest.fixture
def client(keycloak) -> KeycloakClient:
    return KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user, password=keycloak.password))


def applied(client: KeycloakClient, spec: RealmSpec) -> int:
    """Plan and apply `spec` as `kcprov apply` does (lock included); the apply's requests."""
    run = plan_realm(client, spec, spec.realm)
    quiet = Console(file=io.StringIO())
    before = client.requests
    result = apply_realm(client, run, quiet, quiet, 8, 0.0, threading.Event())
    assert result.ok, [str(e) for e in result.errors]
    return client.requests - before


def in_sync_plan(client: KeycloakClient, spec: RealmSpec) -> int:
    before = client.requests
    run = plan_realm(client, spec, spec.realm)
    assert run.plan.empty, run.plan.summary()
    return client.requests - before


def test_a_created_client_costs_two_requests_and_an_in_sync_plan_a_constant(client, realm_name, second_realm_name):
    small = applied(client, benchmark_realm(realm_name, 10))
    large = applied(client, benchmark_realm(second_realm_name, 30))
    assert large - small == PER_CLIENT * 20, (small, large)
    assert small <= PER_CLIENT * 10 + APPLY_CONSTANT, small
    assert in_sync_plan(client, benchmark_realm(realm_name, 10)) == 1  # the partial export


def test_an_in_sync_plan_costs_the_same_for_10_and_40_clients(client, realm_name, second_realm_name):
    small, large = benchmark_realm(realm_name, 10), benchmark_realm(second_realm_name, 40)
    applied(client, small)
    applied(client, large)
    assert in_sync_plan(client, small) == in_sync_plan(client, large)


SCOPE_CASES = {
    # client fields -> (default scopes, optional scopes) it must hold
    "realm-lists": ({}, (NEW_REALM_DEFAULT_SCOPES, NEW_REALM_OPTIONAL_SCOPES)),
    "only-optional": ({"optional_scopes": ["mcp:tools"]}, (NEW_REALM_DEFAULT_SCOPES, ["mcp:tools"])),
    "own-defaults": ({"default_scopes": ["basic", "mcp:tools"]}, (["basic", "mcp:tools"], NEW_REALM_OPTIONAL_SCOPES)),
    "own-both": ({"default_scopes": ["basic"], "optional_scopes": []}, (["basic"], [])),
    "none-at-all": ({"default_scopes": [], "optional_scopes": []}, ([], [])),
    # Keycloak adds `service_account` to a client with a service account: the file's list wins
    "service-account": ({"service_account": True, "default_scopes": ["basic", "roles"]},
                        (["basic", "roles"], NEW_REALM_OPTIONAL_SCOPES)),
}


def scopes_realm(name: str) -> RealmSpec:
    return RealmSpec.model_validate({
        "realm": name,
        # a SAML scope in the realm's default list: never attached to an OpenID Connect client
        "client_scopes": [{"name": "mcp:tools", "type": "none"}, {"name": "saml-only", "protocol": "saml", "type": "default"}],
        "clients": [{"client_id": key, **fields} for key, (fields, _) in SCOPE_CASES.items()],
    })


@pytest.mark.parametrize("exists", [False, True], ids=["new-realm", "existing-realm"])
def test_a_created_client_holds_exactly_the_scopes_the_plan_shows(client, keycloak, realm_name, exists):
    if exists:
        keycloak.admin().create_realm({"realm": realm_name, "enabled": True})
    applied(client, scopes_realm(realm_name))
    admin = keycloak.admin(realm_name)
    for key, (_, (defaults, optional)) in SCOPE_CASES.items():
        uuid = admin.get_client_id(key)
        held = (sorted(s["name"] for s in admin.get_client_default_client_scopes(uuid)),
                sorted(s["name"] for s in admin.get_client_optional_client_scopes(uuid)))
        assert held == (sorted(defaults), sorted(optional)), key
    assert in_sync_plan(client, scopes_realm(realm_name)) == 1


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_a_large_realm_is_read_in_pages_first_only_when_the_cache_is_cold(client, keycloak, realm_name, monkeypatch,
                                                                         cache):
    """The warm-up (kcprov.warmup) at a size a test can afford: its thresholds lowered, the cache declared cold.

    Cold: every page of clients, each client's roles, then the export; warm: one page, then the export.
    Either way the plan is the same and in sync: the warm-up's answers are dropped.
    """
    spec = benchmark_realm(realm_name, 10)
    applied(client, spec)
    warm_fingerprint = plan_realm(client, spec, spec.realm).plan.state_fingerprint
    monkeypatch.setattr(warmup, "LARGE_REALM", 10)
    monkeypatch.setattr(warmup, "PAGE", 4)
    monkeypatch.setattr(warmup, "cold", lambda seconds, clients: cache == "cold")
    total = len(keycloak.admin(realm_name).get_clients())  # the file's 10 and the realm's built-in ones
    pages = total // 4 + 1
    assert in_sync_plan(client, spec) == (pages + total + 1 if cache == "cold" else 2)
    assert plan_realm(client, spec, spec.realm).plan.state_fingerprint == warm_fingerprint
