"""`kcprov dev up --db postgres --nodes 2` against the real thing: two Keycloak nodes on PostgreSQL.

One cluster for the module (a few minutes on 2 cores; skipped without
PostgreSQL's binaries). What a cluster adds over one server, shown as a user
meets it: a change made through one node is seen at once through the other (the
Infinispan invalidation works, no stale cache), and losing a node in the middle
of an apply through the balancer ends in a complete apply or a clean failure,
and a rerun converges. The failover test stops node 1, so it runs last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kcprov.apply import apply_plan
from kcprov.connection import resolve_connection
from kcprov.dev import cluster
from kcprov.dev.state import load_cluster
from kcprov.errors import KcprovError
from kcprov.keycloak import KeycloakClient
from kcprov.resources import KINDS
from kcprov.spec.models import RealmSpec
from kcprov.workflow import plan_realm

pytestmark = pytest.mark.keycloak  # a real Keycloak cluster, though not the session one

ROOT = Path(__file__).resolve().parents[1]
REALM = "h-cluster"


@pytest.fixture(scope="module")
def front(cluster_control):
    start_cluster, stop_cluster = cluster_control
    state, ports = start_cluster(2)
    try:
        yield state, ports
    finally:
        stop_cluster(state)


def client_for(url: str, password: str) -> KeycloakClient:
    return KeycloakClient(resolve_connection(url=url, user="admin", password=password, allow_http=True))


def realm_spec(clients: int, redirect_port: int = 10000) -> RealmSpec:
    return RealmSpec.model_validate({
        "realm": REALM,
        "roles": [{"name": "mcp-user"}],
        "client_scopes": [{"name": "mcp:tools", "type": "optional", "include_in_token_scope": True,
                           "mappers": [{"name": "aud", "audience": "http://localhost:3000/mcp"}]}],
        "clients": [
            {"client_id": f"app-{i:04d}", "confidential": False, "standard_flow": True, "pkce": "S256",
             "redirect_uris": [f"http://localhost:{redirect_port + i}/callback"],
             "optional_scopes": ["mcp:tools"]}
            for i in range(clients)
        ],
    })


def apply_spec(client: KeycloakClient, spec: RealmSpec):
    run = plan_realm(client, spec, REALM)
    return run, apply_plan(client, run.plan, run.live, run.desired, KINDS)


def node_url(ports: cluster.ClusterPorts, index: int) -> str:
    return f"http://localhost:{ports.node(index)[0]}"


@pytest.fixture
def fresh_realm(front):
    state, _ = front
    client = client_for(state.url, state.password)
    yield
    if client.get_optional(f"/admin/realms/{REALM}", "test realm"):
        client.delete(f"/admin/realms/{REALM}", "test realm")


def test_status_names_every_part_and_the_front_is_the_balancer(front):
    state, ports = front
    env = {**os.environ, "KCPROV_HOME": str(state.home)}
    done = subprocess.run([sys.executable, "-m", "kcprov.cli", "dev", "status", "--json"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["readiness"] == "ready"
    assert info["url"] == f"http://localhost:{ports.balancer_port}"
    assert [n["readiness"] for n in info["nodes"]] == ["ready", "ready"]
    assert info["database"]["readiness"] == info["balancer"]["readiness"] == "ready"
    cluster_file = load_cluster(state.home)
    assert cluster_file is not None
    assert cluster_file.db_password not in done.stdout + done.stderr
    # The nodes really formed one cluster through the database (jdbc-ping), not two.
    log = (state.home / "node1" / "keycloak.log").read_text()
    assert "stack `jdbc-ping`" in log and "(2) [" in log


def test_apply_through_node1_plan_through_node2_in_sync(front, fresh_realm):
    state, ports = front
    node1 = client_for(node_url(ports, 0), state.password)
    node2 = client_for(node_url(ports, 1), state.password)
    assert plan_realm(node2, realm_spec(3), REALM).plan.changes  # node 2 caches the realm's absence first
    _, result = apply_spec(node1, realm_spec(20))
    assert result.ok, [str(e) for e in result.errors]
    assert plan_realm(node2, realm_spec(20), REALM).plan.empty
    # A change through node 2 is seen through node 1 (invalidation runs both ways).
    _, result = apply_spec(node2, realm_spec(20, redirect_port=11000))
    assert result.ok, [str(e) for e in result.errors]
    assert plan_realm(node1, realm_spec(20, redirect_port=11000), REALM).plan.empty
    assert not plan_realm(node1, realm_spec(20), REALM).plan.empty


def test_node1_stopped_during_an_apply_through_the_balancer_converges_on_rerun(front, fresh_realm):
    state, ports = front
    spec = realm_spec(150)
    balanced = client_for(state.url, state.password)
    outcome: dict[str, object] = {}

    def run_apply() -> None:
        try:
            outcome["result"] = apply_spec(balanced, spec)[1]
        except KcprovError as exc:  # a clean failure: a message for the user, no traceback
            outcome["error"] = exc

    worker = threading.Thread(target=run_apply)
    worker.start()
    while worker.is_alive() and balanced.requests < 60:  # stop node 1 mid-apply, by progress
        worker.join(0.05)
    cluster.stop_node(load_cluster(state.home), 0)
    worker.join(600)
    assert not worker.is_alive()
    assert "result" in outcome or isinstance(outcome.get("error"), KcprovError)
    rerun = client_for(state.url, state.password)
    _, result = apply_spec(rerun, spec)
    assert result.ok, [str(e) for e in result.errors]
    assert plan_realm(rerun, spec, REALM).plan.empty
    assert plan_realm(client_for(node_url(ports, 1), state.password), spec, REALM).plan.empty

