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
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TEST_FEATURES, KeycloakServer
from keycloak.exceptions import KeycloakError
from test_keycloak_client import FlakyProxy

from kcprov.dev import runner
from kcprov.dev.state import load_state
from kcprov.lock import LOCK_GROUP

pytestmark = pytest.mark.keycloak

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_LINES = 15  # what an apply may print after the plan, however many changes it had


@dataclass
class OwnKeycloak:
    """A Keycloak of this module only (it gets killed); its home keeps the H2 data across restarts."""

    home: Path
    port: int
    management_port: int
    server: KeycloakServer | None = None

    def start(self) -> KeycloakServer:
        state = runner.up(port=self.port, management_port=self.management_port, home=self.home,
                          features=TEST_FEATURES, timeout=600, progress=False)
        self.server = KeycloakServer(state.url, state.user, state.password, state.management_url)
        return self.server

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a pulled plug does (Keycloak runs in its own process group)."""
        os.killpg(load_state(self.home).pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def own_keycloak(tmp_path_factory, free_ports):
    own = OwnKeycloak(tmp_path_factory.mktemp("faults-keycloak"), *free_ports(2))
    try:
        own.start()
        yield own
    finally:
        runner.down(own.home)


def cli_env(server: KeycloakServer, url: str | None = None) -> dict:
    return {**os.environ, "KCPROV_URL": url or server.url, "KCPROV_USER": server.user,
            "KCPROV_PASSWORD": server.password, "NO_COLOR": "1", "COLUMNS": "200"}


def realm_file(tmp_path: Path, realm: str, clients: int) -> Path:
    path = tmp_path / f"{realm}.yaml"
    lines = [f"realm: {realm}", "clients:"]
    for i in range(clients):
        lines += [f"  - client_id: app-{i:04d}", "    confidential: false",
                  f"    redirect_uris: ['http://localhost:{10000 + i}/callback']"]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_apply(path: Path, env: dict, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """The CLI apply, its output to a file (the plan of hundreds of clients would fill a pipe)."""
    log = tmp_path / f"{path.stem}-apply.log"
    proc = subprocess.Popen([sys.executable, "-m", "kcprov.cli", "apply", str(path), "--auto-approve"],
                            env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)
    return proc, log


def client_count(server: KeycloakServer, realm: str) -> int:
    try:
        clients = server.admin(realm).get_clients()
    except KeycloakError:
        return 0  # the realm is not made yet
    return sum(1 for c in clients if c["clientId"].startswith("app-"))


def wait_for_clients(server: KeycloakServer, realm: str, proc: subprocess.Popen, at_least: int) -> None:
    while client_count(server, realm) < at_least:
        assert proc.poll() is None, "the apply ended before the test could strike"
        time.sleep(0.2)


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


def assert_rest_is_exactly_the_missing_clients(server: KeycloakServer, path: Path, realm: str, total: int) -> int:
    """The plan creates exactly the clients that do not exist and sees no unmanaged object; answers that count."""
    done = client_count(server, realm)
    plan = plan_json(path, cli_env(server))
    assert plan["unmanaged"] == []
    assert {(c["action"], c["kind"]) for c in plan["changes"]} <= {("create", "client")}
    assert len(plan["changes"]) == total - done
    return total - done


def test_keycloak_killed_mid_apply_stops_fast_and_the_next_apply_converges(own_keycloak, tmp_path):
    server, total = own_keycloak.server, 500
    path = realm_file(tmp_path, "killed", total)
    proc, log = start_apply(path, cli_env(server), tmp_path)
    wait_for_clients(server, "killed", proc, at_least=60)
    own_keycloak.kill()
    killed = time.monotonic()
    code = proc.wait(timeout=300)
    gave_up = time.monotonic() - killed
    output = log.read_text()
    summary = after_plan(output)
    assert code == 1, output[-3000:]
    assert "Traceback" not in output
    assert gave_up < 90  # loosely: one backoff sequence for the whole run, not one per change
    assert len(summary) <= SUMMARY_LINES, summary
    assert "stopped: Keycloak could not be reached" in output
    assert "refused the connection" in output and "kcprov plan" in output

    server = own_keycloak.start()  # same home: the H2 database keeps what was made
    remaining = assert_rest_is_exactly_the_missing_clients(server, path, "killed", total)
    print(f"\nkill: {total - remaining} of {total} clients made, {remaining} remaining; gave up {gave_up:.1f} s "
          f"after the kill; {len(output.splitlines())} lines of output, {len(summary)} after the plan:\n"
          + "\n".join(summary))
    converge(path, cli_env(server))
    assert [g for g in server.admin("killed").get_groups() if g["name"] == LOCK_GROUP] == []


def test_ctrl_c_finishes_in_flight_changes_records_ownership_and_exits_130(own_keycloak, tmp_path):
    server, total = own_keycloak.server, 300
    path = realm_file(tmp_path, "interrupted", total)
    proc, log = start_apply(path, cli_env(server), tmp_path)
    wait_for_clients(server, "interrupted", proc, at_least=40)
    proc.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    code = proc.wait(timeout=300)
    stopped = time.monotonic() - interrupted
    output = log.read_text()
    summary = after_plan(output)
    assert code == 130, output[-3000:]
    assert "Traceback" not in output
    assert "stopped: interrupted (Ctrl-C)" in output and " done, 0 failed, " in output
    assert len(summary) <= SUMMARY_LINES, summary
    assert [g for g in server.admin("interrupted").get_groups() if g["name"] == LOCK_GROUP] == []
    remaining = assert_rest_is_exactly_the_missing_clients(server, path, "interrupted", total)
    print(f"\nSIGINT: {total - remaining} of {total} clients made, {remaining} remaining; exit {code} "
          f"{stopped:.1f} s after the signal; {len(summary)} lines after the plan:\n" + "\n".join(summary))
    converge(path, cli_env(server))


def test_a_keycloak_that_starts_answering_503_ends_the_apply_with_one_short_report(keycloak, realm, tmp_path):
    proxy = FlakyProxy(keycloak.url)
    try:
        total = 200
        path = realm_file(tmp_path, realm, total)
        proc, log = start_apply(path, cli_env(keycloak, proxy.url), tmp_path)
        wait_for_clients(keycloak, realm, proc, at_least=20)
        proxy.failures = 10**6
        failing = time.monotonic()
        code = proc.wait(timeout=300)
        gave_up = time.monotonic() - failing
        output = log.read_text()
        summary = after_plan(output)
        assert code == 1, output[-3000:]
        assert "Traceback" not in output
        assert gave_up < 60 and len(summary) <= SUMMARY_LINES, summary
        assert "stopped: Keycloak could not be reached" in output and "kept answering HTTP 503" in output
        print(f"\n503: gave up {gave_up:.1f} s after Keycloak began failing, {proxy.refused} requests answered 503; "
              f"{len(summary)} lines after the plan:\n" + "\n".join(summary))
    finally:
        proxy.close()
    remaining = assert_rest_is_exactly_the_missing_clients(keycloak, path, realm, total)
    assert remaining < total
