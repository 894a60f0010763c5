"""The command lines of README.md's 3-minute path and of docs/mcp-clients.md, run as printed.

The commands are read from the documents at test time, so a doc change that
breaks a command fails here. They run in bash in a scratch directory laid out
like the checkout (``realms/mcp-dev.yaml``, ``examples/mcp-server/*.py``), with
``kcprov`` and ``python`` on PATH being this interpreter. What differs from a
user's machine, and why:

* the realm file is a copy with a unique realm name (the suite shares one
  Keycloak) and a free port instead of 3000 (other tests or helpers may hold it);
* ``pip install`` is skipped: the suite runs installed;
* ``kcprov dev up`` reuses the suite's Keycloak when its dev state dir is known
  (the line as printed plus ``--port`` of that server, so it says "reusing it"
  and starts nothing); otherwise the line is skipped and KCPROV_URL/USER/PASSWORD
  name the suite's Keycloak;
* lines that need another program (Claude Code, ``npx`` downloads) are skipped
  with the reason, except the MCP Inspector CLI, which runs from the copy the
  e2e suite installs.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kcprov.dev.state import load_state

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from e2e_support import INITIALIZE, MCP_HEADERS, challenge, free_port, install_inspector

README = REPO / "README.md"
CLIENTS_DOC = REPO / "docs" / "mcp-clients.md"
DEV_REALM = REPO / "realms" / "mcp-dev.yaml"
SERVER_DIR = REPO / "examples" / "mcp-server"
KCPROV_SHIM = "#!{python}\nimport sys\nsys.argv[0] = 'kcprov'\nfrom kcprov.cli import main\nmain()\n"
TIMEOUT = 300

pytestmark = pytest.mark.keycloak


# --------------------------------------------------------------------------- reading the documents


def section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no section {heading!r}"
    return match[1]


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def command_lines(block: str, prompt: str = "") -> list[str]:
    """The block's commands: backslash continuations joined, trailing ``# comments`` dropped, only ``prompt`` lines."""
    joined = block.replace("\\\n", " ")
    lines = [line for line in joined.splitlines() if line.startswith(prompt)]
    return [re.sub(r"\s+#\s.*$", "", line[len(prompt):]).strip() for line in lines]


def words(command: str) -> list[str]:
    return shlex.split(command)


# --------------------------------------------------------------------------- the scratch checkout and the shell


@dataclass
class Workdir:
    """A directory laid out like the checkout, and the environment the doc's commands run in."""

    path: Path
    realm: str
    port: int
    env: dict[str, str]
    dev_port: int | None  # the suite's dev Keycloak port when `kcprov dev up` can reuse it

    @property
    def env_file(self) -> Path:
        return self.path / "examples" / "mcp-server" / ".env"

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}/mcp"

    def command(self, command: str) -> str | None:
        """The doc's command as run here, or None for a line that is skipped (the reason is in the module doc)."""
        argv = words(command)
        if argv[:2] == ["pip", "install"]:
            return None
        if argv[:3] == ["kcprov", "dev", "up"]:
            return f"{command} --port {self.dev_port}" if self.dev_port else None
        return command

    def run(self, command: str, *, terminal_input: str | None = None,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``bash -c COMMAND`` here; with ``terminal_input``, standard input is a terminal that types it."""
        argv = ["bash", "-euo", "pipefail", "-c", command]
        env = {**self.env, **(extra_env or {})}
        if terminal_input is None:
            return subprocess.run(argv, cwd=self.path, env=env, capture_output=True, text=True,
                                  timeout=TIMEOUT, check=False)
        controller, terminal = pty.openpty()
        try:
            process = subprocess.Popen(argv, cwd=self.path, env=env, stdin=terminal, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
            os.write(controller, terminal_input.encode())
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        finally:
            os.close(terminal)
            os.close(controller)
        return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)

    @contextmanager
    def start(self, command: str) -> Iterator[subprocess.Popen[bytes]]:
        """The server command in the background until the caller is done; its log is shown when it fails."""
        log = self.path / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.path, env=self.env,
                                       stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(process, f"http://localhost:{self.port}/.well-known/oauth-protected-resource/mcp", log)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_serving(process: subprocess.Popen[bytes], metadata_url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the server exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(metadata_url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not answer within {timeout}s:\n{log.read_text()}")
        time.sleep(0.2)


@pytest.fixture
def workdir(tmp_path: Path, realm_name: str, keycloak: Any) -> Workdir:
    """The scratch checkout for ``realm_name`` (deleted afterwards by that fixture)."""
    port = free_port()
    text = DEV_REALM.read_text()
    assert "\nrealm: mcp-dev\n" in text and "localhost:3000" in text
    (tmp_path / "realms").mkdir()
    realm_text = text.replace("\nrealm: mcp-dev\n", f"\nrealm: {realm_name}\n").replace("localhost:3000", f"localhost:{port}")
    (tmp_path / "realms" / "mcp-dev.yaml").write_text(realm_text)
    server_dir = tmp_path / "examples" / "mcp-server"
    server_dir.mkdir(parents=True)
    for module in SERVER_DIR.glob("*.py"):
        shutil.copy(module, server_dir / module.name)  # a copy: the server reads the .env beside itself
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kcprov").write_text(KCPROV_SHIM.format(python=sys.executable))
    (bin_dir / "kcprov").chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCPROV_", "MCP_", "OAUTH_", "ALICE_"))}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    state = load_state(keycloak.home) if keycloak.home else None
    if state is not None and state.url == keycloak.url:
        env["KCPROV_HOME"] = str(keycloak.home)  # as after `kcprov dev up`: no connection settings at all
        dev_port = state.port
    else:
        env.update(KCPROV_URL=keycloak.url, KCPROV_USER=keycloak.user, KCPROV_PASSWORD=keycloak.password)
        dev_port = None
    return Workdir(tmp_path, realm_name, port, env, dev_port)


def assert_ran(done: subprocess.CompletedProcess[str], command: str) -> None:
    assert done.returncode == 0, f"{command} exited {done.returncode}\n{done.stdout}\n{done.stderr}"


def assert_401_with_resource_metadata(work: Workdir) -> None:
    response = httpx.post(work.url, json=INITIALIZE, headers=MCP_HEADERS, timeout=30)
    assert response.status_code == 401
    metadata_url = challenge(response)["resource_metadata"]
    metadata = httpx.get(metadata_url, timeout=30).json()
    assert metadata["resource"] == work.url
    assert metadata["authorization_servers"][0].endswith(f"/realms/{work.realm}")


# --------------------------------------------------------------------------- README: Secure an MCP server in 3 minutes


def test_readme_three_minute_path_runs_as_printed(workdir: Workdir) -> None:
    text = section(README.read_text(), "Secure an MCP server in 3 minutes")
    commands = command_lines(fenced_blocks(text, "sh")[0])
    assert [words(c)[:2] for c in commands] == [
        ["pip", "install"], ["kcprov", "dev"], ["kcprov", "plan"], ["kcprov", "apply"], ["python", "examples/mcp-server/server.py"],
    ]
    *setup, serve = commands
    for command in setup:
        run = workdir.command(command)
        if run is None:
            continue
        done = workdir.run(run)
        assert_ran(done, run)
        if words(command)[:2] == ["kcprov", "plan"]:
            assert "# MCP server 'calculator'" in done.stdout
        if words(command)[:3] == ["kcprov", "dev", "up"]:
            assert "reusing it" in done.stderr

    assert stat.S_IMODE(workdir.env_file.stat().st_mode) == 0o600
    written = workdir.env_file.read_bytes()
    env_command = re.search(r"`(kcprov env [^`]+)`", text)
    assert env_command, "the section names no `kcprov env` command"
    for _ in range(2):
        assert_ran(workdir.run(env_command[1]), env_command[1])
        assert workdir.env_file.read_bytes() == written  # byte-identical when nothing changed

    with workdir.start(serve):
        assert_401_with_resource_metadata(workdir)


# --------------------------------------------------------------------------- docs/mcp-clients.md

SKIPPED_CLIENT_LINES = {
    "claude": "needs Claude Code (the `claude` CLI), not installed for the suite",
}


def mcp_clients_consoles() -> tuple[list[str], list[str]]:
    """The doc's first console block (start Keycloak, realm, server), and every command of the later ones."""
    consoles = [command_lines(block, "$ ") for block in fenced_blocks(CLIENTS_DOC.read_text(), "console")]
    start, *others = consoles
    assert [words(c)[:2] for c in start] == [["kcprov", "dev"], ["kcprov", "apply"], ["python", "examples/mcp-server/server.py"]]
    return start, [command for block in others for command in block]


@contextmanager
def run_start_block(work: Workdir, start: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """The first block: its setup lines, then its server until the caller is done."""
    *setup, serve = start
    for command in setup:
        run = work.command(command)
        if run is None:
            continue
        # `kcprov apply` without --auto-approve asks on a terminal: a terminal answers yes.
        done = work.run(run, terminal_input="y\n")
        assert_ran(done, run)
    assert stat.S_IMODE(work.env_file.stat().st_mode) == 0o600
    with work.start(serve) as process:
        yield process


def test_mcp_clients_doc_start_block_runs_as_printed(workdir: Workdir) -> None:
    start, _ = mcp_clients_consoles()
    with run_start_block(workdir, start):
        assert_401_with_resource_metadata(workdir)


def test_mcp_clients_doc_client_lines_run_where_they_need_no_outside_program(workdir: Workdir) -> None:
    """Every later command is either skipped for a named reason or is the Inspector CLI line, which is run."""
    start, later = mcp_clients_consoles()
    inspector_lines = [c for c in later if words(c)[0] not in SKIPPED_CLIENT_LINES]
    assert all(words(c)[:3] == ["npx", "@modelcontextprotocol/inspector", "--cli"] for c in inspector_lines), later
    if workdir.dev_port is None:
        pytest.skip("`kcprov dev token` needs the dev state of the suite's Keycloak (set KCPROV_TEST_HOME)")
    try:
        inspector = install_inspector()
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"the MCP Inspector CLI is not available here: {exc}")
    with run_start_block(workdir, start):
        for command in inspector_lines:
            run_inspector_line(workdir, inspector, command)


def run_inspector_line(work: Workdir, inspector: Any, command: str) -> None:
    """The Inspector CLI line with $TOKEN from `kcprov dev token`, run by the inspector the e2e suite installs."""
    token_command = f"kcprov dev token --realm {work.realm} --user alice --scope mcp:tools"
    done = work.run(token_command, extra_env={"KCPROV_DEV_USER_PASSWORD": "alice"})
    assert_ran(done, token_command)
    argv = words(command.replace("http://localhost:3000/mcp", work.url).replace("$TOKEN", done.stdout.strip()))
    answer = inspector.run(*argv[3:])
    assert answer.returncode == 0, answer.stderr
    result = json.loads(answer.stdout)
    assert result["isError"] is False and result["structuredContent"]["result"] == 5
