"""`kcprov dev` through the real CLI, as a user runs it.

The lifecycle tests share ONE extra Keycloak (its own KCPROV_HOME and ports,
next to the session one) because each start costs about a minute on 2 cores;
they run in file order and the last one stops it. The failure tests start
nothing: they fail before Keycloak would be launched.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kcprov import KEYCLOAK_VERSION
from network import reachable

from kcprov.dev.dist import ARTIFACT_PATH, MAVEN_CENTRAL, zip_name

CLI = [sys.executable, "-c", "from kcprov.cli import main; main()"]


def kcprov(
    *args: str, env: dict[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def up_args(port: int, management_port: int, *extra: str) -> list[str]:
    return ["dev", "up", "--port", str(port), "--management-port", str(management_port), *extra]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "KCPROV_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", **extra}


def assert_clear_failure(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    for text in expected:
        assert text in result.stderr, result.stderr


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def all_cmdlines() -> list[bytes]:
    found = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append(path.read_bytes())
        except OSError:  # the process just ended
            pass
    return found


# --------------------------------------------------------------- one real instance


@dataclass
class Instance:
    home: Path
    port: int
    management_port: int
    env: dict[str, str]
    first_up: subprocess.CompletedProcess[str]

    @property
    def state(self) -> dict:
        return json.loads((self.home / "state.json").read_text())

    def assert_no_password(self, result: subprocess.CompletedProcess[str]) -> None:
        password = self.state["password"]
        assert password not in result.stdout and password not in result.stderr


@pytest.fixture(scope="module")
def instance(
    tmp_path_factory: pytest.TempPathFactory, free_ports: Callable[[int], list[int]]
) -> Iterator[Instance]:
    home = tmp_path_factory.mktemp("dev-cli")
    port, management_port = free_ports(2)
    env = cli_env(home)
    first = kcprov(*up_args(port, management_port, "--timeout", "600"), env=env)
    try:
        yield Instance(home, port, management_port, env, first)
    finally:
        kcprov("dev", "down", env=env)


@pytest.mark.keycloak
def test_up_starts_a_ready_keycloak(instance: Instance) -> None:
    result = instance.first_up
    assert result.returncode == 0, result.stderr
    assert f"is ready at http://localhost:{instance.port}" in result.stdout
    instance.assert_no_password(result)
    response = httpx.get(
        f"http://localhost:{instance.port}/realms/master/.well-known/openid-configuration"
    )
    assert response.status_code == 200
    assert response.json()["issuer"] == f"http://localhost:{instance.port}/realms/master"
    assert stat.S_IMODE((instance.home / "state.json").stat().st_mode) == 0o600


@pytest.mark.keycloak
def test_status_reports_ready(instance: Instance) -> None:
    result = kcprov("dev", "status", env=instance.env)
    assert result.returncode == 0, result.stderr
    assert f"Keycloak {KEYCLOAK_VERSION}: ready" in result.stdout
    instance.assert_no_password(result)
    as_json = kcprov("dev", "status", "--json", env=instance.env)
    info = json.loads(as_json.stdout)
    assert info["readiness"] == "ready" and info["pid"] == instance.state["pid"]
    assert info["features"] == ["cimd", "resource-indicators"]
    assert "password" not in info


@pytest.mark.keycloak
def test_up_again_reuses_the_running_instance(instance: Instance) -> None:
    started = time.monotonic()
    result = kcprov(*up_args(instance.port, instance.management_port), env=instance.env)
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stderr
    assert time.monotonic() - started < 30
    instance.assert_no_password(result)


@pytest.mark.keycloak
def test_up_with_other_features_asks_for_a_restart(instance: Instance) -> None:
    result = kcprov(
        *up_args(instance.port, instance.management_port, "--features", "cimd"), env=instance.env
    )
    assert_clear_failure(result, "features cimd,resource-indicators, not cimd", "kcprov dev down")


@pytest.mark.keycloak
def test_password_is_only_in_credentials(instance: Instance) -> None:
    password = instance.state["password"]
    logs = kcprov("dev", "logs", "-n", "500", env=instance.env)
    assert logs.returncode == 0 and "Keycloak" in logs.stdout
    instance.assert_no_password(logs)
    assert password not in (instance.home / "keycloak.log").read_text()
    cmdlines = all_cmdlines()
    ours = [c for c in cmdlines if str(instance.home.resolve()).encode() in c]
    assert ours, "the Keycloak java process should name its home on its command line"
    assert not [c for c in cmdlines if password.encode() in c]
    creds = json.loads(kcprov("dev", "credentials", "--json", env=instance.env).stdout)
    assert creds == {
        "url": f"http://localhost:{instance.port}",
        "user": "admin",
        "password": password,
    }
    token = httpx.post(
        f"http://localhost:{instance.port}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": "admin",
            "password": password,
        },
    )
    assert token.status_code == 200


@pytest.mark.keycloak
def test_down_stops_it_and_frees_the_ports(
    instance: Instance,
) -> None:  # keep last: stops the instance
    pid = instance.state["pid"]
    result = kcprov("dev", "down", env=instance.env)
    assert result.returncode == 0, result.stderr
    assert "Stopped Keycloak" in result.stdout
    assert port_is_free(instance.port) and port_is_free(instance.management_port)
    assert not Path(f"/proc/{pid}").exists() or b"" == Path(f"/proc/{pid}/cmdline").read_bytes()
    assert instance.state["pid"] is None and instance.state["password"]  # credentials kept
    status = kcprov("dev", "status", env=instance.env)
    assert status.returncode == 1 and "stopped" in status.stdout
    again = kcprov("dev", "down", env=instance.env)
    assert again.returncode == 0 and "No dev Keycloak is running" in again.stdout


# --------------------------------------------------------------- clear failures


def test_busy_port_is_a_clear_error(tmp_path: Path, free_ports: Callable[[int], list[int]]) -> None:
    port, management_port = free_ports(2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = kcprov(*up_args(port, management_port), env=cli_env(tmp_path))
        assert_clear_failure(result, f"Port {port} is already in use", "--port")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", management_port))
        busy.listen()
        result = kcprov(*up_args(port, management_port), env=cli_env(tmp_path))
        assert_clear_failure(result, f"Management port {management_port} is already in use")


def test_missing_java_is_a_clear_error(
    tmp_path: Path, free_ports: Callable[[int], list[int]]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    env = cli_env(tmp_path / "home", PATH=str(empty), KCPROV_JDK_DIRS=str(empty))
    env.pop("JAVA_HOME", None)
    port, management_port = free_ports(2)
    result = kcprov(*up_args(port, management_port), env=env)
    assert_clear_failure(
        result, "No Java 17 or newer found", "openjdk-17-jre-headless", "kcprov[jdk]"
    )


def test_dist_that_is_not_a_zip_is_a_clear_error(
    tmp_path: Path, free_ports: Callable[[int], list[int]]
) -> None:
    bogus = tmp_path / "keycloak.zip"
    bogus.write_text("<html>Not Found</html>")
    port, management_port = free_ports(2)
    result = kcprov(
        *up_args(port, management_port, "--dist", str(bogus)), env=cli_env(tmp_path / "home")
    )
    assert_clear_failure(result, f"{bogus} is not a valid zip file")
    result = kcprov(
        "dev", "fetch", "--dist", str(tmp_path / "missing.zip"), env=cli_env(tmp_path / "home")
    )
    assert_clear_failure(result, "no such file")


def test_corrupt_cached_zip_is_discarded_and_fetched_again(tmp_path: Path) -> None:
    in_m2 = Path.home() / ".m2" / "repository" / ARTIFACT_PATH / KEYCLOAK_VERSION / zip_name(KEYCLOAK_VERSION)
    if not in_m2.is_file() and not reachable(MAVEN_CENTRAL):
        pytest.skip("needs the network: Maven Central is unreachable and ~/.m2 has no Keycloak zip")
    cache = tmp_path / "cache"
    folder = cache / "keycloak" / KEYCLOAK_VERSION
    folder.mkdir(parents=True)
    cached = folder / zip_name(KEYCLOAK_VERSION)
    cached.write_bytes(b"PK\x03\x04" + os.urandom(4096))  # a truncated download
    result = kcprov("dev", "fetch", env=cli_env(tmp_path / "home", KCPROV_CACHE_DIR=str(cache)))
    assert result.returncode == 0, result.stderr
    assert "Discarding the cached zip" in result.stderr
    assert (folder / f"keycloak-{KEYCLOAK_VERSION}" / "bin" / "kc.sh").is_file()
    published = (folder / (cached.name + ".sha1")).read_text().split()[0]
    assert hashlib.sha1(cached.read_bytes()).hexdigest() == published


def test_docker_mode_without_an_engine_is_a_clear_error(
    tmp_path: Path, free_ports: Callable[[int], list[int]]
) -> None:
    port, management_port = free_ports(2)
    env = cli_env(tmp_path / "home", DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    result = kcprov(*up_args(port, management_port, "--docker"), env=env)
    assert_clear_failure(result, "No Docker engine is reachable", "drop --docker")


@pytest.mark.keycloak
def test_keycloak_exiting_early_shows_its_last_log_lines(
    tmp_path: Path, free_ports: Callable[[int], list[int]]
) -> None:
    port, management_port = free_ports(2)
    home = tmp_path / "home"
    result = kcprov(
        *up_args(port, management_port, "--features", "no-such-feature"), env=cli_env(home)
    )
    assert_clear_failure(
        result, "Keycloak exited before it was ready. Last log lines:", "'no-such-feature'"
    )
    assert json.loads((home / "state.json").read_text())["pid"] is None


@pytest.mark.keycloak
def test_timeout_stops_the_half_started_keycloak(
    tmp_path: Path, free_ports: Callable[[int], list[int]]
) -> None:
    port, management_port = free_ports(2)
    home = tmp_path / "home"
    result = kcprov(*up_args(port, management_port, "--timeout", "2"), env=cli_env(home))
    assert_clear_failure(result, "Keycloak was not ready after 2 s; stopped it.", "--timeout")
    assert json.loads((home / "state.json").read_text())["pid"] is None
    assert not [c for c in all_cmdlines() if str(home.resolve()).encode() in c]
    assert port_is_free(port) and port_is_free(management_port)
