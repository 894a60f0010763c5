"""The test harness: one real Keycloak per test run, fresh realms per test.

Behaviour tests talk to a real Keycloak, never a mock. The session fixture
``keycloak`` starts one through ``kcprov.dev.runner.up`` in a private
KCPROV_HOME on free ports (about a minute on 2 cores) and stops it at the end,
or uses the one named by KCPROV_TEST_URL / KCPROV_TEST_USER /
KCPROV_TEST_PASSWORD (then left running). Tests that use it are marked
``keycloak`` automatically, so ``-m "not keycloak"`` runs the fast rest.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from keycloak.exceptions import KeycloakError

from kcprov.dev import cluster, postgres, runner
from kcprov.dev.cluster import ClusterPorts
from kcprov.dev.state import DevState

TEST_FEATURES = ("cimd", "resource-indicators")
START_TIMEOUT = 600.0  # a loaded 2-core CI machine can take minutes for a cold start


@dataclass(frozen=True)
class KeycloakServer:
    """Where the test Keycloak is and how to log in as its admin."""

    url: str
    user: str
    password: str = field(repr=False)
    management_url: str | None = None
    #: Its dev state dir (the `kcprov dev up` record, admin password inside): the suite's own server's, or
    #: KCPROV_TEST_HOME for one named by KCPROV_TEST_URL; None if unknown. `kcprov dev token` needs it.
    home: Path | None = None

    def admin(self, realm: str = "master") -> KeycloakAdmin:
        """An Admin API client for ``realm``, logged in as the master realm's admin."""
        connection = KeycloakOpenIDConnection(
            server_url=self.url,
            username=self.user,
            password=self.password,
            realm_name=realm,
            user_realm_name="master",
            client_id="admin-cli",
        )
        return KeycloakAdmin(connection=connection)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "keycloak" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.keycloak)


def pick_free_ports(count: int) -> list[int]:
    """``count`` distinct ports free right now (held together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="session")
def free_ports() -> Callable[[int], list[int]]:
    """A function giving ``n`` distinct free TCP ports."""
    return pick_free_ports


@pytest.fixture(autouse=True)
def _private_kcprov_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point KCPROV_HOME away from the user's own dev Keycloak in every test."""
    monkeypatch.setenv("KCPROV_HOME", str(tmp_path_factory.mktemp("kcprov-home")))


@pytest.fixture(scope="session")
def keycloak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeycloakServer]:
    """The run's Keycloak (features cimd and resource-indicators on)."""
    url = os.environ.get("KCPROV_TEST_URL")
    if url:
        password = os.environ.get("KCPROV_TEST_PASSWORD")
        if not password:
            raise pytest.UsageError("KCPROV_TEST_URL is set but KCPROV_TEST_PASSWORD is not.")
        yield KeycloakServer(
            url=url.rstrip("/"),
            user=os.environ.get("KCPROV_TEST_USER", "admin"),
            password=password,
            management_url=os.environ.get("KCPROV_TEST_MANAGEMENT_URL"),
            home=Path(os.environ["KCPROV_TEST_HOME"]) if os.environ.get("KCPROV_TEST_HOME") else None,
        )
        return
    if os.environ.get("KCPROV_TEST_CLUSTER") == "1":
        yield from _cluster_server()
        return
    home = tmp_path_factory.mktemp("keycloak")
    port, management_port = pick_free_ports(2)
    state = runner.up(
        port=port,
        management_port=management_port,
        features=TEST_FEATURES,
        home=home,
        timeout=START_TIMEOUT,
        progress=False,
    )
    try:
        yield KeycloakServer(state.url, state.user, state.password, state.management_url, home)
    finally:
        runner.down(home)


def start_cluster(nodes: int = 2) -> tuple[DevState, ClusterPorts]:
    """A ``kcprov dev up --db postgres --nodes N`` cluster on free ports, in a new home under the
    system temp dir (PostgreSQL runs as the ``postgres`` user under root and must reach it).
    Stop it with :func:`stop_cluster`; skips the test when PostgreSQL is not installed."""
    if postgres.find_bin() is None:
        pytest.skip(f"no PostgreSQL server binaries under {postgres.PG_ROOTS} (apt-get install postgresql)")
    home = Path(tempfile.mkdtemp(prefix="kcprov-cluster-"))
    ports = ClusterPorts(*_free_port_runs(nodes, 5))
    front = cluster.up(ports, nodes=nodes, features=TEST_FEATURES, home=home, timeout=START_TIMEOUT,
                       progress=False)
    return front, ports


def stop_cluster(front: DevState) -> None:
    """Stop every part of the cluster and delete its home (database included)."""
    cluster.down(front.home)
    shutil.rmtree(front.home, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster_control() -> tuple[Callable[[int], tuple[DevState, ClusterPorts]], Callable[[DevState], None]]:
    """:func:`start_cluster` and :func:`stop_cluster`, for a test module that runs its own cluster."""
    return start_cluster, stop_cluster


def _cluster_server() -> Iterator[KeycloakServer]:
    """KCPROV_TEST_CLUSTER=1: the session's Keycloak is 2 nodes on PostgreSQL behind the balancer."""
    front, ports = start_cluster(2)
    try:
        yield KeycloakServer(front.url, front.user, front.password, front.management_url, front.home)
    finally:
        stop_cluster(front)


def _free_port_runs(length: int, runs: int) -> list[int]:
    """Starts of ``runs`` blocks of ``length`` consecutive ports, all free right now."""
    while True:
        base = random.randrange(20000, 60000 - runs * length * 10)
        starts = [base + i * length * 10 for i in range(runs)]
        wanted = [start + offset for start in starts for offset in range(length)]
        if all(runner._port_free(port) for port in wanted):
            return starts


@pytest.fixture
def realm_name(request: pytest.FixtureRequest, keycloak: KeycloakServer) -> Iterator[str]:
    """A fresh realm name (the realm does not exist); the realm is deleted afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    admin = keycloak.admin()
    while True:
        name = f"t-{slug}-{secrets.token_hex(2)}"
        if not _realm_exists(admin, name):
            break
    yield name
    delete_realm_if_there(keycloak, name)


@pytest.fixture
def second_realm_name(realm_name: str, keycloak: KeycloakServer) -> Iterator[str]:
    """A second fresh name beside ``realm_name`` (for a copy of a realm); deleted afterwards if made."""
    name = f"{realm_name}-b"
    yield name
    delete_realm_if_there(keycloak, name)


def delete_realm_if_there(keycloak: KeycloakServer, name: str) -> None:
    try:
        keycloak.admin().delete_realm(name)
    except KeycloakError as exc:
        if exc.response_code != 404:
            raise


@pytest.fixture
def realm(realm_name: str, keycloak: KeycloakServer) -> str:
    """Like ``realm_name``, but the realm exists (empty, enabled)."""
    keycloak.admin().create_realm({"realm": realm_name, "enabled": True})
    return realm_name


@pytest.fixture
def kc_env(keycloak: KeycloakServer, monkeypatch: pytest.MonkeyPatch) -> KeycloakServer:
    """KCPROV_URL/USER/PASSWORD set to the test Keycloak, for CLI runs in or out of process."""
    monkeypatch.setenv("KCPROV_URL", keycloak.url)
    monkeypatch.setenv("KCPROV_USER", keycloak.user)
    monkeypatch.setenv("KCPROV_PASSWORD", keycloak.password)
    return keycloak


def _realm_exists(admin: KeycloakAdmin, name: str) -> bool:
    try:
        admin.get_realm(name)
    except KeycloakError as exc:
        if exc.response_code == 404:
            return False
        raise
    return True
