"""Every command with known secrets, and every place a secret could land, scanned.

The secrets: the admin password (given the way the README recommends, in
KCPROV_PASSWORD), a client secret and a user password taken by the realm file
from the environment, and the introspection client's secret that Keycloak
generates (read back from the env file afterwards). Each command runs as a
user runs it (a subprocess in a working directory of its own) while a thread
samples every process's command line. Afterwards stdout, stderr, every file
the run left (saved plans, state, logs) and the sampled command lines are
searched: the only places a secret may be are the 0600 env file and the
output of `kcprov env --stdout`, which exists to show it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dotenv import dotenv_values

pytestmark = pytest.mark.keycloak

CLIENT_SECRET = "scan-client-secret-5c1f9e"
USER_PASSWORD = "scan-user-password-7d2a0b"

REALM = """\
realm: {realm}
settings:
  access_token_lifespan: 5m
roles:
  - name: mcp-admin
clients:
  - client_id: scan-agent
    confidential: true
    secret: "{{{{ env.SCAN_CLIENT_SECRET }}}}"
    service_account: true
users:
  - username: scan-user
    password: "{{{{ env.SCAN_USER_PASSWORD }}}}"
mcp_servers:
  - name: scanner
    url: http://localhost:3977/mcp
    scopes: {{scan:tools: Scan tools}}
    token_validation: introspection
    env_file: server.env
"""


class CmdlineSampler:
    """Samples /proc/*/cmdline while the commands run: secrets passed as arguments would show there."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    self.seen.add(path.read_bytes())
                except OSError:
                    pass
            self.samples += 1
            time.sleep(0.02)

    def __enter__(self) -> CmdlineSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_no_secret_anywhere_but_the_env_file(tmp_path, keycloak, realm_name):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    (work / "realm.yaml").write_text(REALM.format(realm=realm_name))
    (work / "bad.yaml").write_text(f"realm: {realm_name}\nclients:\n  - client_id: x\n    secret: {CLIENT_SECRET}\n    bogus: 1\n")
    env = {**os.environ, "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user, "KCPROV_PASSWORD": keycloak.password,
           "KCPROV_HOME": str(home), "SCAN_CLIENT_SECRET": CLIENT_SECRET, "SCAN_USER_PASSWORD": USER_PASSWORD,
           "NO_COLOR": "1", "COLUMNS": "200"}
    env = {k: v for k, v in env.items() if not k.startswith("KCPROV_TEST_")}
    outputs: dict[str, str] = {}
    allowed: dict[str, str] = {}

    def run(*args: str, expect: int = 0, secret_output_allowed: bool = False, **extra_env: str) -> None:
        done = subprocess.run([sys.executable, "-m", "kcprov.cli", *args], cwd=work, env={**env, **extra_env},
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        label = " ".join(args)
        assert done.returncode == expect, (label, done.stdout, done.stderr)
        assert "Traceback" not in done.stdout + done.stderr, (label, done.stderr)
        (allowed if secret_output_allowed else outputs)[label] = done.stdout + "\n" + done.stderr

    with CmdlineSampler() as sampler:
        run("validate", "realm.yaml")
        run("validate", "--strict-secrets", "bad.yaml", expect=1)
        run("plan", "realm.yaml", "-o", "plan.json", "--detailed-exitcode", expect=2)
        run("plan", "realm.yaml", "--json")
        run("apply", "plan.json")
        run("plan", "realm.yaml", "--detailed-exitcode")
        run("apply", "realm.yaml", "--auto-approve")
        run("env", "realm.yaml")
        run("env", "realm.yaml", "--stdout", secret_output_allowed=True)
        run("plan", "realm.yaml", expect=1, KCPROV_PASSWORD="wrong-" + CLIENT_SECRET)
        run("plan", "realm.yaml", expect=1, SCAN_CLIENT_SECRET="changed-" + CLIENT_SECRET, KCPROV_URL="http://127.0.0.1:9")
        run("plan", "realm.yaml", "--detailed-exitcode", expect=2, SCAN_CLIENT_SECRET="rotated-" + CLIENT_SECRET)
        run("dev", "status", expect=1)
        run("--help")
        run("plan", "--help")

    env_file = work / "server.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    generated = dotenv_values(env_file)["OAUTH_CLIENT_SECRET"]
    assert generated and len(generated) >= 16
    assert generated in "".join(allowed.values())  # `env --stdout` is the one way to see it
    secrets = {"admin password": keycloak.password, "client secret": CLIENT_SECRET, "user password": USER_PASSWORD,
               "introspection secret": generated}

    places: dict[str, str] = dict(outputs)
    for root in (work, home):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path not in (env_file, work / "bad.yaml"):  # bad.yaml is the input holding it
                places[str(path)] = path.read_text(errors="replace")
    places.update({f"cmdline {i}": line.decode(errors="replace") for i, line in enumerate(sampler.seen)})
    found = [(what, place) for what, value in secrets.items() for place, text in places.items() if value in text]
    print(f"secret scan: {len(secrets)} secrets x {len(places)} places "
          f"({len(outputs)} command outputs, {len(sampler.seen)} command lines in {sampler.samples} samples): "
          f"{len(found)} occurrences")
    assert found == []
    assert "plan.json" in " ".join(places) and stat.S_IMODE((work / "plan.json").stat().st_mode) == 0o600
