"""Apply under faults: Keycloak killed mid-apply, Ctrl-C, a Keycloak that starts failing.

The kill and Ctrl-C tests start their own Keycloak (never the shared one),
apply a generated realm of hundreds of clients through the CLI in a
subprocess, strike once some clients exist, then check what a user sees (exit
code, no traceback, a short summary) and that the next plan shows exactly the
remaining creates and no unmanaged orphans. The figures each test prints
(`-s`) are the ones quoted in the notes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from keycloak.exceptions import KeycloakError
from test_keycloak_client import FlakyProxy

from kcprov.dev import runner
from kcprov.dev.state import load_state
from kcprov.lock import LOCK_GROUP

pytestmark = pytest.mark.keycloak

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ("cimd", "resource-indicators")  # as the session Keycloak of tests/conftest.py
SUMMARY_LINES = 15  # what an apply may print after the plan, however many changes it had


@dataclass
class OwnKeycloak:
    """A Keycloak of this module only (it gets killed); its home keeps the H2 data across restarts."""

    home: Path
    port: int
    management_port: int
    server_type: type  # tests/conftest.py's KeycloakServer (a module named conftest is ambiguous to import)
    server: Any = None

    def start(self):
        state = runner.up(port=self.port, management_port=self.management_port, home=self.home,
                          features=FEATURES, timeout=600, progress=False)
        self.server = self.server_type(state.url, state.user, state.password, state.management_url)
        return self.server

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a pulled plug does (Keycloak runs in its own process group)."""
        os.killpg(load_state(self.home).pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def own_keycloak(tmp_path_factory, free_ports, keycloak):
    own = OwnKeycloak(tmp_path_factory.mktemp("faults-keycloak"), *free_ports(2), type(keycloak))
    try:
        own.start()
        yield own
    finally:
        runner.down(own.home)


def cli_env(server: Any, url: str | None = None) -> dict:
    # KCPROV_TIMEOUT: Keycloak 26.7.3's first partial export after a mass create of a thousand clients takes
    # 20-30 s of its CPU (bench/compare.py), past the default 30 s on a busy machine
    return {**os.environ, "KCPROV_URL": url or server.url, "KCPROV_USER": server.user,
            "KCPROV_PASSWORD": server.password, "NO_COLOR": "1", "COLUMNS": "200", "KCPROV_TIMEOUT": "300"}


def realm_file(tmp_path: Path, realm: str, clients: int) -> Path:
    path = tmp_path / f"{realm}.yaml"
    lines = [f"realm: {realm}", "clients:"]
    for i in range(clients):
        lines += [f"  - client_id: app-{i:04d}", "    confidential: false",
                  f"    redirect_uris: ['http://localhost:{10000 + i}/callback']"]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Stopped:
    """How an apply that was struck mid-run ended."""

    code: int
    seconds: float  # from the strike to the exit
    output: str
    summary: list[str]  # the lines after the plan


def apply_and_strike(path: Path, env: dict, tmp_path: Path, server: Any, realm: str, at_least: int,
                     strike: Callable[[subprocess.Popen], None]) -> Stopped:
    """Run the CLI apply, `strike` once `at_least` clients exist, and wait for the end.

    Output goes to a file: the plan of hundreds of clients would fill a pipe.
    """
    log = tmp_path / f"{path.stem}-apply.log"
    # SIGINT as a terminal delivers it: a suite started in the background (CI's `.ci/run &`) inherits it ignored
    # two workers: a create costs one request, and eight would finish hundreds before the test's first look
    proc = subprocess.Popen([sys.executable, "-m", "kcprov.cli", "apply", str(path), "--auto-approve", "--workers", "2"],
                            env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while client_count(server, realm) < at_least:
        assert proc.poll() is None, "the apply ended before the test could strike:\n" + log.read_text()[-3000:]
        time.sleep(0.2)
    strike(proc)
    struck = time.monotonic()
    code = proc.wait(timeout=300)
    seconds = time.monotonic() - struck
    output = log.read_text()
    assert "Traceback" not in output, output[-3000:]
    stopped = Stopped(code, seconds, output, after_plan(output))
    assert len(stopped.summary) <= SUMMARY_LINES, stopped.summary
    return stopped


def client_count(server: Any, realm: str) -> int:
    try:
        clients = server.admin(realm).get_clients()
    except KeycloakError:
        return 0  # the realm is not made yet
    return sum(1 for c in clients if c["clientId"].startswith("app-"))


def after_plan(output: str) -> list[str]:
    """The lines an apply printed after its plan (summary, progress, errors)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Plan: "))
    return [line for line in lines[start + 1:] if line.strip()]


def plan_json(path: Path, env: dict) -> dict:
    result = subprocess.run([sys.executable, "-m", "kcprov.cli", "plan", str(path), "--json"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)["plans"]
    return plan


def converge(path: Path, env: dict) -> None:
    applied = subprocess.run([sys.executable, "-m", "kcprov.cli", "apply", str(path), "--auto-approve"], env=env,
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr
    check = subprocess.run([sys.executable, "-m", "kcprov.cli", "plan", str(path), "--detailed-exitcode"], env=env,
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout[-3000:]


def assert_rest_is_exactly_the_missing_clients(server: Any, path: Path, realm: str, total: int) -> int:
    """The plan creates exactly the clients that do not exist and sees no unmanaged object; answers that count."""
    done = client_count(server, realm)
    plan = plan_json(path, cli_env(server))
    assert plan["unmanaged"] == []
    assert {(c["action"], c["kind"]) for c in plan["changes"]} <= {("create", "client")}
    assert len(plan["changes"]) == total - done
    return total - done


def test_keycloak_killed_mid_apply_stops_fast_and_the_next_apply_converges(own_keycloak, tmp_path):
    server, total = own_keycloak.server, 1000
    path = realm_file(tmp_path, "killed", total)
    run = apply_and_strike(path, cli_env(server), tmp_path, server, "killed", 60, lambda _proc: own_keycloak.kill())
    assert run.code == 1, run.output[-3000:]
    assert run.seconds < 90  # loosely: one backoff sequence for the whole run, not one per change
    assert "stopped: Keycloak could not be reached" in run.output
    assert "refused the connection" in run.output and "kcprov plan" in run.output

    server = own_keycloak.start()  # same home: the H2 database keeps what was made
    remaining = assert_rest_is_exactly_the_missing_clients(server, path, "killed", total)
    print(f"\nkill: {total - remaining} of {total} clients made, {remaining} remaining; gave up {run.seconds:.1f} s "
          f"after the kill; {len(run.output.splitlines())} lines of output, {len(run.summary)} after the plan:\n"
          + "\n".join(run.summary))
    converge(path, cli_env(server))
    assert [g for g in server.admin("killed").get_groups() if g["name"] == LOCK_GROUP] == []


def test_ctrl_c_finishes_in_flight_changes_records_ownership_and_exits_130(own_keycloak, tmp_path):
    server, total = own_keycloak.server, 800
    path = realm_file(tmp_path, "interrupted", total)
    run = apply_and_strike(path, cli_env(server), tmp_path, server, "interrupted", 40,
                           lambda proc: proc.send_signal(signal.SIGINT))
    assert run.code == 130, run.output[-3000:]
    assert "stopped: interrupted (Ctrl-C)" in run.output and " done, 0 failed, " in run.output
    assert [g for g in server.admin("interrupted").get_groups() if g["name"] == LOCK_GROUP] == []
    remaining = assert_rest_is_exactly_the_missing_clients(server, path, "interrupted", total)
    print(f"\nSIGINT: {total - remaining} of {total} clients made, {remaining} remaining; exit {run.code} "
          f"{run.seconds:.1f} s after the signal; {len(run.summary)} lines after the plan:\n" + "\n".join(run.summary))
    converge(path, cli_env(server))


def test_a_keycloak_that_starts_answering_503_ends_the_apply_with_one_short_report(keycloak, realm, tmp_path):
    proxy = FlakyProxy(keycloak.url)
    try:
        total = 200
        path = realm_file(tmp_path, realm, total)
        run = apply_and_strike(path, cli_env(keycloak, proxy.url), tmp_path, keycloak, realm, 20,
                               lambda _proc: setattr(proxy, "failures", 10**6))
        assert run.code == 1 and run.seconds < 60, run.output[-3000:]
        assert "stopped: Keycloak could not be reached" in run.output and "kept answering HTTP 503" in run.output
        print(f"\n503: gave up {run.seconds:.1f} s after Keycloak began failing, {proxy.refused} requests answered "
              f"503; {len(run.summary)} lines after the plan:\n" + "\n".join(run.summary))
    finally:
        proxy.close()
    remaining = assert_rest_is_exactly_the_missing_clients(keycloak, path, realm, total)
    assert remaining < total


def test_an_apply_that_meets_503s_shrinks_its_pool_finishes_and_converges(keycloak, realm_name):
    """Keycloak answers 503 to a few requests mid-apply: the pool halves, the retries (within the run's
    budget) go through, and the next plan is empty."""
    from test_request_counts import benchmark_realm

    from kcprov.apply import apply_plan
    from kcprov.connection import ConnectionSettings
    from kcprov.keycloak import KeycloakClient
    from kcprov.resources import KINDS
    from kcprov.workflow import plan_realm

    proxy = FlakyProxy(keycloak.url)
    try:
        client = KeycloakClient(ConnectionSettings(url=proxy.url, user=keycloak.user, password=keycloak.password))
        spec = benchmark_realm(realm_name, 40)
        run = plan_realm(client, spec, realm_name)
        heard: list[float | None] = []
        struck: list[bool] = []

        def strike(_change) -> None:  # once the pool is busy with clients: 503s for the requests in flight
            if not struck and proxy.admin_requests > 20:
                struck.append(True)
                proxy.failures = 3  # fewer than a request's tries, and than the run's retry budget

        with client.overload_listener(heard.append):
            result = apply_plan(client, run.plan, run.live, run.desired, KINDS, on_done=strike)
        assert result.ok, [str(e) for e in result.errors]
        assert proxy.refused == 3 and len(heard) == 3
        assert plan_realm(client, spec, realm_name).plan.empty
    finally:
        proxy.close()
