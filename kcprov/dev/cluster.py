"""`kcprov dev up --db postgres [--nodes N]`: Keycloak clustered on PostgreSQL, as deployments run.

One dev home holds the whole cluster: ``postgres/`` (kcprov's own PostgreSQL,
see :mod:`kcprov.dev.postgres`), ``node1/``, ``node2/`` … (each a dev instance
of its own: server dir, log, state file) and, with two nodes or more, the
loopback balancer (:mod:`kcprov.dev.balancer`) in front. Nodes form one
Infinispan cluster (``--cache ispn``) found through the database
(``--cache-stack jdbc-ping``, Keycloak 26's default stack), JGroups bound to
127.0.0.1, so a change made through one node invalidates the others' caches.

Node *i* (from 0) listens on ``port + i`` and ``management_port + i``, JGroups
on ``jgroups_port + i``. The home's ``state.json`` names the front (balancer or
only node), so ``kcprov plan`` without --url talks to the cluster. Whatever
ends ``up`` early (an error, Ctrl-C, SIGTERM) stops what it had started.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from kcprov.dev import err_console, postgres, runner
from kcprov.dev.dist import ensure_dist, prepare_server
from kcprov.dev.java import find_java
from kcprov.dev.state import ClusterState, DevState, load_cluster, load_state, save_cluster, save_state
from kcprov.errors import DevServerError

NODE_HEAP = "-Xms128m -Xmx512m"  # two nodes and PostgreSQL share a small machine


@dataclass(frozen=True)
class ClusterPorts:
    """Every port one cluster takes; node ports count up from the first node's."""

    port: int
    management_port: int
    balancer_port: int
    db_port: int
    jgroups_port: int

    def node(self, index: int) -> tuple[int, int, int]:
        """HTTP, management and JGroups port of node ``index`` (from 0)."""
        return self.port + index, self.management_port + index, self.jgroups_port + index


@dataclass(frozen=True)
class ClusterStatus:
    """Readiness ("ready", "starting", "stopped") of every part of the cluster."""

    cluster: ClusterState
    front: DevState | None
    database: str
    nodes: tuple[tuple[DevState | None, str], ...]
    balancer: str

    @property
    def readiness(self) -> str:
        parts = [self.database, self.balancer, *(r for _, r in self.nodes)]
        if all(r == "ready" for r in parts if r != "none"):
            return "ready"
        return "stopped" if all(r in ("stopped", "none") for r in parts) else "starting"


def up(
    ports: ClusterPorts,
    nodes: int = 2,
    version: str | None = None,
    features: Iterable[str] = (),
    dist: str | None = None,
    timeout: float = 300.0,
    home: Path | None = None,
    progress: bool = True,
) -> DevState:
    """Start (or reuse) the cluster of ``home``; the front's state (URL and admin login)."""
    if nodes < 1:
        raise DevServerError(f"--nodes {nodes}: a cluster needs at least one node.")
    home = runner._home(home)
    wanted = runner.normalize_features(features)
    with runner._locked(home), _terminate_as_interrupt():
        cluster = load_cluster(home)
        single = load_state(home)
        if cluster is None and single is not None:
            raise DevServerError(
                f"{home} holds a single dev Keycloak (H2 database), not a cluster.",
                hint="use another KCPROV_HOME for the cluster, or run `kcprov dev up` without --db.",
            )
        if cluster is not None and _any_alive(cluster):
            if len(cluster.node_homes) != nodes:
                raise DevServerError(
                    f"A dev cluster of {len(cluster.node_homes)} node(s) already runs from {home}.",
                    hint="run `kcprov dev down` first to change --nodes (data is kept).",
                )
            _stop_all(cluster)  # restart as a whole: a half-running cluster is not worth mending
            cluster = load_cluster(home)
        for number in _ports_to_check(ports, nodes):
            runner._check_port_free(number, "Port", "the port options")
        cluster = cluster or _new_cluster(home, ports, nodes)
        front = _front_state(cluster, ports, wanted, _admin_password(home))
        try:
            return _start_all(cluster, front, ports, version, dist, wanted, timeout, progress)
        except BaseException:
            _stop_all(load_cluster(home) or cluster)
            raise


def down(home: Path | None = None) -> bool:
    """Stop balancer, nodes and PostgreSQL of ``home``; False if none was running. Data is kept."""
    home = runner._home(home)
    with runner._locked(home):
        cluster = load_cluster(home)
        if cluster is None:
            return False
        was_running = _any_alive(cluster)
        _stop_all(cluster)
        return was_running


def status(home: Path | None = None) -> ClusterStatus | None:
    """The cluster's parts and their readiness; None if ``home`` holds no cluster."""
    home = runner._home(home)
    cluster = load_cluster(home)
    if cluster is None:
        return None
    where = postgres.PostgresDir(home / "postgres")
    database = "ready" if postgres.alive(cluster.db_pid, where) else "stopped"
    node_states = tuple(
        (state, runner.status(node_home).readiness if state else "stopped")
        for node_home in cluster.node_homes
        for state in (load_state(node_home),)
    )
    if cluster.balancer_port is None:
        balancer = "none"
    else:
        balancer = "ready" if _balancer_alive(cluster) else "stopped"
    return ClusterStatus(cluster, load_state(home), database, node_states, balancer)


def log_paths(cluster: ClusterState) -> dict[str, Path]:
    """Every log of the cluster by part name: node1 …, balancer, postgres."""
    logs = {f"node{i + 1}": node_home / "keycloak.log" for i, node_home in enumerate(cluster.node_homes)}
    if cluster.balancer_port is not None:
        logs["balancer"] = cluster.home / "balancer.log"
    return logs | {"postgres": postgres.PostgresDir(cluster.home / "postgres").log}


def stop_node(cluster: ClusterState, index: int) -> None:
    """Stop node ``index`` (from 0) alone, as a crash or a rolling restart would."""
    state = load_state(cluster.node_homes[index])
    if state is not None and runner._alive(state):
        runner._stop(state, runner.GRACE_SECONDS)
        save_state(state.stopped())


def _new_cluster(home: Path, ports: ClusterPorts, nodes: int) -> ClusterState:
    if (home / "postgres" / "data").exists():
        raise DevServerError(
            f"{home / 'postgres' / 'data'} holds a database, but its cluster file (with the "
            "database password) is gone.",
            hint=f"delete {home / 'postgres'} to start with a fresh database.",
        )
    cluster = ClusterState(
        home=home,
        db_port=ports.db_port,
        db_user=postgres.DB_USER,
        db_password=secrets.token_urlsafe(24),
        db_name=postgres.DB_NAME,
        node_homes=tuple(home / f"node{i + 1}" for i in range(nodes)),
        jgroups_ports=tuple(ports.node(i)[2] for i in range(nodes)),
        balancer_port=ports.balancer_port if nodes > 1 else None,
    )
    save_cluster(cluster)
    return cluster


def _admin_password(home: Path) -> str:
    state = load_state(home)
    return state.password if state is not None else secrets.token_urlsafe(24)


def _front_state(
    cluster: ClusterState, ports: ClusterPorts, features: tuple[str, ...], password: str
) -> DevState:
    """What ``state.json`` of the home says: where clients go (balancer or only node), the admin login."""
    front_port = cluster.balancer_port or ports.port
    return runner._new_state(cluster.home, "", front_port, ports.management_port, features, password)


def _start_all(
    cluster: ClusterState,
    front: DevState,
    ports: ClusterPorts,
    version: str | None,
    dist: str | None,
    features: tuple[str, ...],
    timeout: float,
    progress: bool,
) -> DevState:
    java = find_java()
    kc = ensure_dist(version, dist, progress)
    front = replace(front, version=kc.version, log_path=cluster.node_homes[0] / "keycloak.log",
                    server_dir=cluster.node_homes[0] / "server")
    save_state(front)
    pg_bin = postgres.require_bin()
    where = postgres.PostgresDir(cluster.home / "postgres")
    cluster = replace(cluster, db_pid=postgres.start(pg_bin, where, cluster.db_port, cluster.db_password))
    save_cluster(cluster)
    for index, node_home in enumerate(cluster.node_homes):
        port, management_port, jgroups_port = ports.node(index)
        node_home.mkdir(mode=0o700, exist_ok=True)
        prepare_server(kc, node_home / "server", features)
        if index:  # the first node's Quarkus build (db and cache options) spares the others theirs
            _copy_build(cluster.node_homes[0] / "server", node_home / "server")
        state = runner._start_process(
            node_home, kc.version, java.home, port, management_port, features, front.password,
            extra_args=("--http-host=127.0.0.1",), extra_env=_node_env(cluster, jgroups_port),
        )
        runner._wait_ready(state, timeout, progress)
    if cluster.balancer_port is not None:
        cluster = replace(cluster, balancer_pid=_start_balancer(cluster, ports))
        save_cluster(cluster)
        front = replace(front, pid=cluster.balancer_pid, server_dir=cluster.home)
    else:
        front = replace(front, pid=load_state(cluster.node_homes[0]).pid)  # type: ignore[union-attr]
    save_state(front)
    return front


def _node_env(cluster: ClusterState, jgroups_port: int) -> dict[str, str]:
    """Database, cache and heap settings in the environment: the password stays off command lines."""
    return {
        "KC_DB": "postgres",
        "KC_DB_URL": cluster.db_url,
        "KC_DB_USERNAME": cluster.db_user,
        "KC_DB_PASSWORD": cluster.db_password,
        "KC_DB_POOL_MAX_SIZE": "20",
        "KC_CACHE": "ispn",
        "KC_CACHE_STACK": "jdbc-ping",
        "JAVA_OPTS_KC_HEAP": NODE_HEAP,
        "JAVA_OPTS_APPEND": f"-Djgroups.bind.address=127.0.0.1 -Djgroups.bind.port={jgroups_port}",
    }


def _copy_build(source: Path, target: Path) -> None:
    shutil.rmtree(target / "lib" / "quarkus")
    shutil.copytree(source / "lib" / "quarkus", target / "lib" / "quarkus", symlinks=True)


def _start_balancer(cluster: ClusterState, ports: ClusterPorts) -> int:
    assert cluster.balancer_port is not None
    backends = [arg for i in range(len(cluster.node_homes)) for arg in ("--backend", str(ports.node(i)[0]))]
    with (cluster.home / "balancer.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kcprov.dev.balancer", "--listen", str(cluster.balancer_port),
             *backends, "--home", str(cluster.home)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    runner._children[proc.pid] = proc
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevServerError(f"The balancer exited at start; see {cluster.home / 'balancer.log'}.")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", cluster.balancer_port)) == 0:
                return proc.pid
        time.sleep(0.1)
    raise DevServerError(f"The balancer did not listen on {cluster.balancer_port} within 15 s.")


def _balancer_alive(cluster: ClusterState) -> bool:
    return cluster.balancer_pid is not None and runner._pid_alive(cluster.balancer_pid, cluster.home)


def _any_alive(cluster: ClusterState) -> bool:
    where = postgres.PostgresDir(cluster.home / "postgres")
    nodes = (load_state(node_home) for node_home in cluster.node_homes)
    return (
        _balancer_alive(cluster)
        or postgres.alive(cluster.db_pid, where)
        or any(state is not None and runner._alive(state) for state in nodes)
    )


def _stop_all(cluster: ClusterState) -> None:
    """Balancer first (no new connections), then the nodes, then PostgreSQL."""
    if _balancer_alive(cluster):
        balancer = runner._new_state(cluster.home, "", 0, 0, (), "", pid=cluster.balancer_pid)
        runner._stop(replace(balancer, server_dir=cluster.home), runner.GRACE_SECONDS)
    for index in reversed(range(len(cluster.node_homes))):
        stop_node(cluster, index)
    if postgres.alive(cluster.db_pid, postgres.PostgresDir(cluster.home / "postgres")):
        assert cluster.db_pid is not None
        postgres.stop(cluster.db_pid)
    save_cluster(cluster.stopped())
    front = load_state(cluster.home)
    if front is not None:
        save_state(front.stopped())
    for node_home in cluster.node_homes:
        state = load_state(node_home)
        if state is not None:
            runner._wait_ports_free(state)


def _ports_to_check(ports: ClusterPorts, nodes: int) -> list[int]:
    numbers = [ports.db_port] + [p for i in range(nodes) for p in ports.node(i)]
    return numbers + ([ports.balancer_port] if nodes > 1 else [])


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C while the cluster starts, so nothing is left running."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

