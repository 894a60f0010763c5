"""A private PostgreSQL for the dev cluster: Debian's binaries, a data dir under the dev home.

Never a system-wide cluster: kcprov runs its own ``postgres`` from
``/usr/lib/postgresql/<version>/bin`` on 127.0.0.1 with its data dir and unix
socket under ``<home>/postgres``. Keycloak logs in over TCP with a random
password (scram-sha-256); the unix socket in that dir trusts local tools.
PostgreSQL refuses to run as root, so under root it runs as the system
``postgres`` user, which then owns the data dir (and needs to traverse the home).
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kcprov.errors import DevServerError

PG_ROOTS = Path("/usr/lib/postgresql")
DB_USER = "kcprov"
DB_NAME = "keycloak"
SERVICE_USER = "postgres"  # the Debian package's system user, used only when we are root


@dataclass(frozen=True)
class PostgresDir:
    """Where one dev home's PostgreSQL lives."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"


def find_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``postgres`` and ``initdb``."""
    found = [
        path.parent
        for path in PG_ROOTS.glob("*/bin/postgres")
        if (path.parent / "initdb").is_file() and re.fullmatch(r"\d+", path.parent.parent.name)
    ]
    return max(found, key=lambda p: int(p.parent.name), default=None)


def require_bin() -> Path:
    pg_bin = find_bin()
    if pg_bin is None:
        raise DevServerError(
            f"No PostgreSQL server binaries under {PG_ROOTS}/<version>/bin.",
            hint="install Debian's package: apt-get install postgresql (kcprov starts its own "
            "server; the system one can stay disabled).",
        )
    return pg_bin


def start(pg_bin: Path, where: PostgresDir, port: int, password: str) -> int:
    """Initialise the data dir if new, start ``postgres`` on 127.0.0.1:``port``; its pid.

    Returns once it accepts connections and the Keycloak database exists.
    """
    fresh = not (where.data / "PG_VERSION").is_file()
    _prepare_dirs(where)
    if fresh:
        _initdb(pg_bin, where, password)
    with where.log.open("ab") as log:
        proc = subprocess.Popen(
            [str(pg_bin / "postgres"), "-D", str(where.data), "-p", str(port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={where.socket_dir}",
             "-c", "max_connections=100", "-c", "shared_buffers=64MB", "-c", "fsync=off"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, **_as_service_user(),
        )
    try:
        _wait_accepting(pg_bin, where, port, proc)
        if fresh:
            _run(pg_bin / "createdb", "-h", str(where.socket_dir), "-p", str(port), "-U", DB_USER, DB_NAME)
    except BaseException:
        stop(proc.pid)
        raise
    return proc.pid


def alive(pid: int | None, where: PostgresDir) -> bool:
    """True if ``pid`` is still the postmaster of ``where`` (not a reused pid)."""
    if pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return str(where.data) in cmdline


def stop(pid: int, grace: float = 30.0) -> None:
    """Fast shutdown (SIGINT: ends sessions, checkpoints), SIGKILL after ``grace`` seconds."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child: poll its existence
                done = 0 if Path(f"/proc/{pid}").exists() else pid
            if done == pid:
                return
            time.sleep(0.2)
    raise DevServerError(f"PostgreSQL (pid {pid}) did not stop, even after SIGKILL.")


def _prepare_dirs(where: PostgresDir) -> None:
    where.root.mkdir(mode=0o700, exist_ok=True)
    where.socket_dir.mkdir(mode=0o700, exist_ok=True)
    where.data.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        service = pwd.getpwnam(SERVICE_USER)
        for path in (where.root, where.data, where.socket_dir):
            os.chown(path, service.pw_uid, service.pw_gid)
        # The service user must reach <home>/postgres: let it traverse (not list) the home.
        home = where.root.parent
        home.chmod(home.stat().st_mode & 0o777 | 0o711)
        probe = subprocess.run(["test", "-w", str(where.data)], check=False, **_as_service_user())
        if probe.returncode != 0:
            raise DevServerError(
                f"PostgreSQL runs as the '{SERVICE_USER}' user under root, and that user cannot "
                f"reach {where.data}.",
                hint="set KCPROV_HOME to a folder whose parents others may traverse, e.g. /tmp/kcprov-dev.",
            )


def _initdb(pg_bin: Path, where: PostgresDir, password: str) -> None:
    fd, pwfile = tempfile.mkstemp(dir=where.socket_dir, prefix=".pw-")
    try:
        os.write(fd, password.encode() + b"\n")
        os.close(fd)
        if os.geteuid() == 0:
            os.chown(pwfile, pwd.getpwnam(SERVICE_USER).pw_uid, -1)
        _run(pg_bin / "initdb", "-D", str(where.data), "-U", DB_USER, f"--pwfile={pwfile}",
             "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions")
    finally:
        os.unlink(pwfile)


def _wait_accepting(pg_bin: Path, where: PostgresDir, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _failed(where, "PostgreSQL exited before it accepted connections.")
        ready = subprocess.run([str(pg_bin / "pg_isready"), "-q", "-h", str(where.socket_dir), "-p", str(port)],
                               check=False, **_as_service_user())
        if ready.returncode == 0:
            return
        time.sleep(0.3)
    raise _failed(where, "PostgreSQL did not accept connections within 60 s.")


def _run(*command: Path | str) -> None:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, **_as_service_user())
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).strip().splitlines()
        raise DevServerError(
            f"{Path(command[0]).name} failed: {lines[-1] if lines else f'exit code {done.returncode}'}",
        )


def _failed(where: PostgresDir, message: str) -> DevServerError:
    try:
        tail = "".join(where.log.read_text(errors="replace").splitlines(keepends=True)[-10:]).rstrip()
    except OSError:
        tail = ""
    return DevServerError(f"{message} Last log lines:\n{tail}" if tail else message, hint=f"full log: {where.log}")


def _as_service_user() -> dict[str, object]:
    """Popen arguments that drop root to the service user (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": SERVICE_USER, "group": SERVICE_USER, "extra_groups": []}
