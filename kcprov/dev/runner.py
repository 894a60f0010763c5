"""Starting, stopping and inspecting the dev Keycloak of one state dir.

``up`` is idempotent: a running instance with the same options is reused, a
stale record (dead process) is cleaned up. Keycloak runs in its own session
(process group), so ``down`` can stop exactly it and whatever kc.sh spawned,
and nothing else. The admin password reaches Keycloak only through its
environment, never a command line, and is never printed here.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kcprov import KEYCLOAK_VERSION
from kcprov.dev import docker, err_console, progress_status
from kcprov.dev.dist import ensure_dist, prepare_server, save_build
from kcprov.dev.java import find_java
from kcprov.dev.state import DevState, load_state, save_state, state_dir
from kcprov.errors import DevServerError

ADMIN_USER = "admin"
GRACE_SECONDS = 30.0
LOG_TAIL_LINES = 20
REALM_CACHE_ENTRIES = 200_000  # several entries per client (the client, its roles, the queries listing them)
_FEATURE_RE = re.compile(r"^[a-z0-9][a-z0-9:-]*$")

# Keycloak processes this Python process started: kept so they can be reaped
# (no zombies, no "still running" warnings) when stopped from here.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class DevStatus:
    """``readiness`` is "ready", "starting" or "stopped"; ``state`` None if never set up."""

    readiness: str
    state: DevState | None


def default_management_port(port: int) -> int:
    """Keycloak's own pairing shifted with ``port``: 8080 → 9000, 18080 → 19000."""
    management_port = port + 920
    if management_port > 65535:
        raise DevServerError(
            f"Cannot derive a management port from --port {port}.",
            hint="pass --management-port explicitly.",
        )
    return management_port


def normalize_features(features: Iterable[str]) -> tuple[str, ...]:
    """Sorted, de-duplicated feature names; accepts "a,b" items too."""
    names = {name.strip() for item in features for name in item.split(",") if name.strip()}
    for name in names:
        if not _FEATURE_RE.match(name):
            raise DevServerError(
                f"{name!r} is not a Keycloak feature name.",
                hint="use names like cimd,resource-indicators (see Keycloak's --features).",
            )
    return tuple(sorted(names))


def up(
    port: int = 8080,
    version: str | None = None,
    features: Iterable[str] = (),
    dist: str | None = None,
    timeout: float = 300.0,
    home: Path | None = None,
    progress: bool = True,
    management_port: int | None = None,
    docker_mode: bool = False,
) -> DevState:
    """Start (or reuse) the dev Keycloak of ``home`` and wait until it is ready.

    ``version`` None means the pinned :data:`kcprov.KEYCLOAK_VERSION`, or the
    version inside ``dist`` (a zip path or URL). Raises DevServerError when it
    cannot start, when the ports are taken, or when an instance with other
    options already runs from ``home``.
    """
    home = _home(home)
    wanted = normalize_features(features)
    management_port = management_port or default_management_port(port)
    if docker_mode and dist:
        raise DevServerError("--dist does not apply to --docker (the image has Keycloak).")
    with _locked(home):
        state = load_state(home)
        if state is not None and _alive(state):
            _check_same(state, port, version, wanted, docker_mode)
            if progress:
                err_console.print(
                    f"Keycloak {state.version} is already running at {state.url} "
                    f"({_process_name(state)}); reusing it.",
                    markup=False,
                )
            _wait_ready(state, timeout, progress)
            return state
        if state is not None and (state.pid or state.container):
            save_state(state := state.stopped())  # stale: its process is gone
        _check_port_free(port, "Port", "--port")
        _check_port_free(management_port, "Management port", "--management-port")
        password = _password(state, home)
        if docker_mode:
            new = _start_container(
                home, version or KEYCLOAK_VERSION, port, management_port, wanted, password
            )
            _wait_ready(new, timeout, progress)
        else:
            java = find_java()
            kc = ensure_dist(version, dist, progress)
            prepare_server(kc, home / "server", wanted)
            new = _start_process(
                home, kc.version, java.home, port, management_port, wanted, password
            )
            _wait_ready(new, timeout, progress)
            save_build(kc, new.server_dir, wanted)
        return new


def down(home: Path | None = None, grace: float = GRACE_SECONDS) -> bool:
    """Stop the instance of ``home``; False if nothing was running. Data is kept."""
    home = _home(home)
    with _locked(home):
        state = load_state(home)
        if state is None or not (state.pid or state.container):
            return False
        if _alive(state):
            _stop(state, grace)
            _wait_ports_free(state)
            stopped = True
        else:
            stopped = False
        save_state(state.stopped())
        return stopped


def status(home: Path | None = None) -> DevStatus:
    """Whether the instance of ``home`` is ready, starting or stopped."""
    state = load_state(_home(home))
    if state is None or not _alive(state):
        return DevStatus("stopped", state)
    return DevStatus("ready" if _ready(state) else "starting", state)


def log_tail(state: DevState, lines: int = 50) -> str:
    """The last ``lines`` lines Keycloak logged (they hold no secrets)."""
    if state.container:
        return docker.logs(state.container, lines)
    try:
        with state.log_path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 200 * lines - 4096))
            data = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "".join(data.splitlines(keepends=True)[-lines:])


def follow_log(state: DevState, lines: int = 50) -> Iterator[str]:
    """The last ``lines`` lines, then new ones as Keycloak writes them (until stopped)."""
    if state.container:
        yield from docker.follow(state.container, lines)
        return
    yield log_tail(state, lines)
    if not state.log_path.exists():
        return
    with state.log_path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        while True:
            chunk = fh.read()
            if chunk:
                yield chunk.decode(errors="replace")
            elif not _alive(state):
                return
            else:
                time.sleep(0.5)


def start_dev_args(port: int, management_port: int, features: tuple[str, ...]) -> list[str]:
    """The ``kc.sh`` arguments: the same for the native and the Docker mode."""
    args = [
        "start-dev",
        f"--http-port={port}",
        f"--http-management-port={management_port}",
        "--health-enabled=true",
        # Keycloak's default (10,000 entries) cannot hold a realm of a few thousand clients with their
        # roles: each plan's export would load them from the database again (BENCHMARKS.md, "Results")
        f"--cache-embedded-realms-max-count={REALM_CACHE_ENTRIES}",
    ]
    return args + ([f"--features={','.join(features)}"] if features else [])


def _home(home: Path | None) -> Path:
    """Absolute and symlink-free, as kc.sh sees it, so process checks can match it."""
    return (home or state_dir()).expanduser().resolve()


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Serialise up/down on one state dir across processes (a second ``up`` waits)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (home / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _check_same(
    state: DevState, port: int, version: str | None, features: tuple[str, ...], docker_mode: bool
) -> None:
    differences = []
    if state.port != port:
        differences.append(f"port {state.port}, not {port}")
    if version and state.version != version:
        differences.append(f"version {state.version}, not {version}")
    if state.features != features:
        differences.append(
            f"features {','.join(state.features) or 'none'}, not {','.join(features) or 'none'}"
        )
    if bool(state.container) != docker_mode:
        differences.append("Docker mode" if state.container else "native mode")
    if differences:
        raise DevServerError(
            f"A dev Keycloak already runs from {state.home} with {'; '.join(differences)}; "
            "a restart is needed to change that.",
            hint="run `kcprov dev down`, then `kcprov dev up` with the new options (data is kept).",
        )


def _check_port_free(port: int, what: str, option: str) -> None:
    if not _port_free(port):
        raise DevServerError(
            f"{what} {port} is already in use by another program.",
            hint=f"pick a free one with {option} (`kcprov dev status` shows the dev ports).",
        )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _password(state: DevState | None, home: Path) -> str:
    """The admin password the instance's database was created with, or a new one."""
    if state is not None:
        return state.password
    if (home / "server" / "data").exists():
        raise DevServerError(
            f"{home / 'server' / 'data'} holds a Keycloak database, but its state file "
            "(with the admin password) is gone.",
            hint=f"delete {home / 'server' / 'data'} to start with a fresh database.",
        )
    return secrets.token_urlsafe(24)


def _new_state(
    home: Path,
    version: str,
    port: int,
    management_port: int,
    features: tuple[str, ...],
    password: str,
    pid: int | None = None,
    container: str | None = None,
) -> DevState:
    return DevState(
        url=f"http://localhost:{port}",
        management_url=f"http://localhost:{management_port}",
        user=ADMIN_USER,
        password=password,
        version=version,
        port=port,
        management_port=management_port,
        features=features,
        home=home,
        log_path=home / "keycloak.log",
        server_dir=home / "server",
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        pid=pid,
        container=container,
    )


def _admin_env(password: str) -> dict[str, str]:
    return {"KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER, "KC_BOOTSTRAP_ADMIN_PASSWORD": password}


def _start_process(
    home: Path,
    version: str,
    java_home: Path,
    port: int,
    management_port: int,
    features: tuple[str, ...],
    password: str,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> DevState:
    """Start kc.sh from ``home``'s server dir; ``extra_*`` are a cluster node's options."""
    server_dir = home / "server"
    env = {
        **os.environ,
        **(extra_env or {}),
        **_admin_env(password),
        "JAVA_HOME": str(java_home),
        "JAVA": str(java_home / "bin" / "java"),
        "PATH": f"{java_home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [
        str(server_dir / "bin" / "kc.sh"),
        *start_dev_args(port, management_port, features),
        *extra_args,
    ]
    log_path = home / "keycloak.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=home,
            env=env,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    state = _new_state(home, version, port, management_port, features, password, pid=proc.pid)
    save_state(state)  # before waiting, so `kcprov dev down` elsewhere can stop it
    return state


def _start_container(
    home: Path,
    version: str,
    port: int,
    management_port: int,
    features: tuple[str, ...],
    password: str,
) -> DevState:
    args = start_dev_args(docker.CONTAINER_HTTP_PORT, docker.CONTAINER_MANAGEMENT_PORT, features)
    container = docker.start(version, args, port, management_port, _admin_env(password))
    state = _new_state(
        home, version, port, management_port, features, password, container=container
    )
    save_state(state)
    return state


def _wait_ready(state: DevState, timeout: float, progress: bool) -> None:
    """Poll /health/ready; on death or timeout stop Keycloak and fail with its last log lines."""
    if _ready(state):
        return
    started = time.monotonic()
    text = f"Starting Keycloak {state.version} at {state.url}"
    try:
        with progress_status(f"{text} …", progress) as update:
            while not _ready(state):
                elapsed = time.monotonic() - started
                if not _alive(state):
                    raise _start_failed(state, "Keycloak exited before it was ready.")
                if elapsed > timeout:
                    raise _start_failed(
                        state,
                        f"Keycloak was not ready after {timeout:.0f} s; stopped it.",
                        "; on a slow machine pass a larger --timeout.",
                    )
                update(f"{text} … {elapsed:.0f} s")
                time.sleep(1)
    except BaseException:
        # Timed out, died or interrupted (Ctrl-C): leave no half-started server
        # (nor an exited container) behind.
        if state.container or _alive(state):
            _stop(state, GRACE_SECONDS)
        save_state(state.stopped())
        raise


def _start_failed(state: DevState, message: str, advice: str = "") -> DevServerError:
    tail = log_tail(state, LOG_TAIL_LINES).rstrip()
    where = "`kcprov dev logs`" if state.container else str(state.log_path)
    return DevServerError(
        f"{message} Last log lines:\n{tail}" if tail else message,
        hint=f"full log: {where}{advice}",
    )


def _ready(state: DevState) -> bool:
    import httpx  # here, not at the top: every kcprov command imports this module, few poll the server

    try:
        return httpx.get(f"{state.management_url}/health/ready", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(state: DevState) -> bool:
    if state.container:
        return docker.running(state.container)
    return state.pid is not None and _pid_alive(state.pid, state.server_dir)


def _pid_alive(pid: int, server_dir: Path) -> bool:
    """True if ``pid`` is still this instance's Keycloak (not a reused pid)."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return str(server_dir) in _cmdline(pid)


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return ""  # Linux: the process is gone
    done = subprocess.run(
        ["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return done.stdout


def _stop(state: DevState, grace: float) -> None:
    """SIGTERM the instance's process group, SIGKILL it after ``grace`` seconds."""
    if state.container:
        docker.stop(state.container, grace)
        return
    pid = state.pid
    assert pid is not None
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)  # pid == pgid: started with start_new_session
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _pid_alive(pid, state.server_dir):
                return
            time.sleep(0.2)
    raise DevServerError(f"Keycloak (pid {pid}) did not stop, even after SIGKILL.")


def _wait_ports_free(state: DevState, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_free(state.port) and _port_free(state.management_port):
            return
        time.sleep(0.2)
    err_console.print(
        f"Warning: port {state.port} or {state.management_port} is still in use.", markup=False
    )


def _process_name(state: DevState) -> str:
    return f"container {state.container[:12]}" if state.container else f"pid {state.pid}"
