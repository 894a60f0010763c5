"""`kcprov dev token` against the real Keycloak and the reference MCP server.

The realm is `realms/mcp-dev.yaml` as written, with only its name and the
server's port changed (the suite shares one Keycloak, and port 3000 may be
taken); the reference server runs with the env file `kcprov apply` wrote for
it. The dev-server rule is tested with the suite's own dev state: the
`keycloak` fixture's KCPROV_HOME when the suite started Keycloak itself, or
KCPROV_TEST_HOME next to KCPROV_TEST_URL (without it, the tests that need a
real dev state are skipped). Refusals use forged states in a private
KCPROV_HOME: no state, a URL that is not the state's, a state whose process
is gone, a state naming the real server and process with a wrong password.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kcprov.dev.state import DevState, load_state, save_state
from kcprov.dev.token import PID_ATTRIBUTE, TEMP_PREFIX

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "dev-token.md"
DEV_REALM = REPO / "realms" / "mcp-dev.yaml"
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from e2e_support import (
    INITIALIZE,
    MCP_HEADERS,
    free_port,
    install_inspector,
    kcprov,
    start_server,
    stop_server,
)

ALICE = "alice-" + secrets.token_hex(6)
KCPROV_SHIM = "#!{python}\nimport sys\nsys.argv[0] = 'kcprov'\nfrom kcprov.cli import main\nmain()\n"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def dev_home(keycloak: Any) -> Path:
    """The dev state dir of the suite's Keycloak: what `kcprov dev token` checks the server against."""
    if keycloak.home is None:
        pytest.skip("the Keycloak named by KCPROV_TEST_URL has no KCPROV_TEST_HOME (its `kcprov dev up` state dir)")
    state = load_state(keycloak.home)
    assert state is not None and state.url == keycloak.url, f"{keycloak.home} is not the state of {keycloak.url}"
    return keycloak.home


@pytest.fixture(scope="module")
def mcp_dev(keycloak: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """realms/mcp-dev.yaml applied under a fresh name, and the reference server started for it."""
    workdir = tmp_path_factory.mktemp("dev-token")
    port = free_port()
    realm = f"t-dev-token-{secrets.token_hex(3)}"
    text = DEV_REALM.read_text().replace("realm: mcp-dev", f"realm: {realm}").replace("localhost:3000", f"localhost:{port}")
    source = workdir / "mcp-dev.yaml"
    source.write_text(text)
    env = {"KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user, "KCPROV_PASSWORD": keycloak.password,
           "ALICE_PASSWORD": ALICE}
    kcprov("apply", str(source), "--auto-approve", env=env, cwd=workdir)
    url = f"http://localhost:{port}/mcp"
    server = start_server(workdir / "examples" / "mcp-server" / ".env", workdir / "server.log", url)
    try:
        yield {"realm": realm, "url": url, "server": server, "workdir": workdir}
    finally:
        stop_server(server)
        keycloak.admin().delete_realm(realm)


def dev_token(*args: str, home: Path, stdin: str | None = None, env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str]:
    """`kcprov dev token ARGS` as a user runs it: no KCPROV_URL/USER/PASSWORD, the dev state in KCPROV_HOME."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KCPROV_")}
    command = [sys.executable, "-c", "import sys; sys.argv[0] = 'kcprov'; from kcprov.cli import main; main()",
               "dev", "token", *args]
    return subprocess.run(command, input=stdin, check=False, capture_output=True, text=True, timeout=120,
                          env={**clean, "KCPROV_HOME": str(home), **(env or {})})


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def temporary_clients(keycloak: Any, realm: str) -> list[dict]:
    found = keycloak.admin(realm).get_clients()
    return [c for c in found if c["clientId"].startswith(TEMP_PREFIX)]


def call_add(url: str, token: str) -> httpx.Response:
    """initialize, then tools/call add(2, 3), as an MCP client does over streamable HTTP."""
    auth = {**MCP_HEADERS, "authorization": f"Bearer {token}"}
    opened = httpx.post(url, json=INITIALIZE, headers=auth, timeout=30)
    assert opened.status_code == 200, opened.text
    session = {**auth, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    httpx.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session, timeout=30)
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 2, "b": 3}}}
    return httpx.post(url, json=call, headers=session, timeout=30)


def sse_result(text: str) -> dict[str, Any]:
    data = [line.removeprefix("data:").strip() for line in text.splitlines() if line.startswith("data:")]
    return json.loads(data[-1])["result"]


def doc_block(marker: str) -> str:
    """The ```sh block right after `<!-- tested: MARKER ...-->` in docs/dev-token.md."""
    match = re.search(rf"<!-- tested: {marker}\b.*?-->\n```sh\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, f"docs/dev-token.md has no tested {marker} block"
    return match[1]


# --------------------------------------------------------------------------- the token works


def test_token_is_accepted_by_the_reference_server_for_add(keycloak: Any, dev_home: Path, mcp_dev: dict) -> None:
    done = dev_token("--realm", mcp_dev["realm"], "--user", "alice", "--scope", "mcp:tools", "--password-stdin",
                     home=dev_home, stdin=ALICE + "\n")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert done.stdout == token + "\n" and token.count(".") == 2  # only the token on stdout
    assert token not in done.stderr and ALICE not in done.stdout + done.stderr
    body = claims(token)
    assert mcp_dev["url"] in body["aud"] and "mcp:tools" in body["scope"].split()
    assert body["azp"].startswith(TEMP_PREFIX)
    answer = call_add(mcp_dev["url"], token)
    assert answer.status_code == 200 and sse_result(answer.text)["structuredContent"]["result"] == 5
    assert temporary_clients(keycloak, mcp_dev["realm"]) == []  # the temporary client is gone


def test_resource_gives_a_token_for_that_server_only(dev_home: Path, mcp_dev: dict) -> None:
    """--resource sends RFC 8707 `resource`: with resource-indicators on, `aud` is that URL alone."""
    done = dev_token("--realm", mcp_dev["realm"], "--user", "alice", "--scope", "mcp:tools mcp:admin",
                     "--resource", mcp_dev["url"], home=dev_home, env={"KCPROV_DEV_USER_PASSWORD": ALICE})
    assert done.returncode == 0, done.stderr
    body = claims(done.stdout.strip())
    assert body["aud"] in (mcp_dev["url"], [mcp_dev["url"]])
    assert "mcp:admin" not in body["scope"].split()  # alice lacks mcp-admin: Keycloak drops the scope
    assert call_add(mcp_dev["url"], done.stdout.strip()).status_code == 200


def test_client_credentials_token_of_a_confidential_client(dev_home: Path, mcp_dev: dict) -> None:
    """The realm's mcp-server client (service account); its secret read from the dev server."""
    done = dev_token("--realm", mcp_dev["realm"], "--client-credentials", "--client", "mcp-server", home=dev_home)
    assert done.returncode == 0, done.stderr
    assert claims(done.stdout.strip())["azp"] == "mcp-server"
    assert call_add(mcp_dev["url"], done.stdout.strip()).status_code == 200
    wrong = dev_token("--realm", mcp_dev["realm"], "--client-credentials", "--client", "mcp-server",
                      "--client-secret-stdin", home=dev_home, stdin="not-the-secret\n")
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert "wrong client secret" in wrong.stderr and "not-the-secret" not in wrong.stderr


def test_an_existing_client_that_allows_the_password_grant_is_used(keycloak: Any, dev_home: Path, mcp_dev: dict) -> None:
    """--client C: C's own token (azp), no temporary client; C made here by hand with direct access grants on."""
    admin = keycloak.admin(mcp_dev["realm"])
    admin.create_client({"clientId": "script-client", "publicClient": True, "directAccessGrantsEnabled": True,
                         "standardFlowEnabled": False})
    done = dev_token("--realm", mcp_dev["realm"], "--user", "alice", "--client", "script-client", "--scope", "mcp:tools",
                     "--password-stdin", home=dev_home, stdin=ALICE + "\n")
    assert done.returncode == 0, done.stderr
    assert claims(done.stdout.strip())["azp"] == "script-client"
    assert call_add(mcp_dev["url"], done.stdout.strip()).status_code == 200
    assert temporary_clients(keycloak, mcp_dev["realm"]) == []


def test_the_curl_lines_in_the_docs_work_as_printed(dev_home: Path, mcp_dev: dict, tmp_path: Path) -> None:
    """docs/dev-token.md's curl block, run by bash with only the realm name and the server port changed."""
    script = doc_block("curl").replace("--realm mcp-dev", f"--realm {mcp_dev['realm']}")
    script = script.replace("http://localhost:3000/mcp", mcp_dev["url"])
    shim = tmp_path / "bin" / "kcprov"
    shim.parent.mkdir()
    shim.write_text(KCPROV_SHIM.format(python=sys.executable))
    shim.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KCPROV_")}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=False, capture_output=True, text=True, timeout=120,
                          env={**clean, "PATH": f"{shim.parent}:{os.environ['PATH']}", "KCPROV_HOME": str(dev_home),
                               "ALICE_PASSWORD": ALICE})
    assert done.returncode == 0, done.stderr
    assert sse_result(done.stdout)["structuredContent"]["result"] == 5


def test_the_inspector_line_in_the_docs_works(dev_home: Path, mcp_dev: dict) -> None:
    """The doc's MCP Inspector CLI line, with the inspector the e2e suite installs (instead of npx)."""
    try:
        inspector = install_inspector()
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"the MCP Inspector CLI is not available here: {exc}")
    token = dev_token("--realm", mcp_dev["realm"], "--user", "alice", "--scope", "mcp:tools",
                      home=dev_home, env={"KCPROV_DEV_USER_PASSWORD": ALICE}).stdout.strip()
    line = doc_block("inspector").replace("\\\n", " ").replace("http://localhost:3000/mcp", mcp_dev["url"])
    words = shlex.split(line.replace("$TOKEN", token))
    assert words[:3] == ["npx", "@modelcontextprotocol/inspector", "--cli"]
    done = inspector.run(*words[3:])
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["isError"] is False and answer["structuredContent"]["result"] == 5


# --------------------------------------------------------------------------- the temporary client goes away


def test_refused_password_leaves_no_client_and_says_why(keycloak: Any, dev_home: Path, mcp_dev: dict) -> None:
    done = dev_token("--realm", mcp_dev["realm"], "--user", "alice", "--password-stdin", home=dev_home,
                     stdin="wrong-password-123\n")
    assert done.returncode == 1 and done.stdout == ""
    assert "invalid_grant" in done.stderr and "wrong-password-123" not in done.stderr
    assert "Traceback" not in done.stderr
    assert temporary_clients(keycloak, mcp_dev["realm"]) == []


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_at_the_password_the_client_is_deleted(keycloak: Any, dev_home: Path, mcp_dev: dict,
                                                           how: signal.Signals) -> None:
    """The password is read after the client is made; stopping the run there deletes the client.

    stdin stays open until the run has ended: the signal alone must end it, not an EOF.
    """
    process = start_waiting_for_password(dev_home, mcp_dev["realm"])
    wait_for_temporary_client(keycloak, mcp_dev["realm"], process)
    process.send_signal(how)
    try:
        process.wait(timeout=60)
    finally:
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert out == "" and "Interrupted" in err
    assert temporary_clients(keycloak, mcp_dev["realm"]) == []


def test_a_killed_runs_client_is_removed_by_the_next_run(keycloak: Any, dev_home: Path, mcp_dev: dict) -> None:
    process = start_waiting_for_password(dev_home, mcp_dev["realm"])
    [left] = wait_for_temporary_client(keycloak, mcp_dev["realm"], process)
    process.kill()
    process.communicate(timeout=60)
    assert left["attributes"][PID_ATTRIBUTE] == str(process.pid)
    assert [c["clientId"] for c in temporary_clients(keycloak, mcp_dev["realm"])] == [left["clientId"]]
    done = dev_token("--realm", mcp_dev["realm"], "--user", "alice", "--password-stdin", home=dev_home,
                     stdin=ALICE + "\n")
    assert done.returncode == 0, done.stderr
    assert f"leftover temporary client '{left['clientId']}'" in done.stderr
    assert temporary_clients(keycloak, mcp_dev["realm"]) == []


def start_waiting_for_password(home: Path, realm: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KCPROV_")}
    command = [sys.executable, "-c", "import sys; sys.argv[0] = 'kcprov'; from kcprov.cli import main; main()",
               "dev", "token", "--realm", realm, "--user", "alice", "--password-stdin"]
    # SIGINT as a terminal delivers it: a suite started in the background (CI's `.ci/run &`) inherits it ignored
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**clean, "KCPROV_HOME": str(home)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_temporary_client(keycloak: Any, realm: str, process: subprocess.Popen[str]) -> list[dict]:
    """Poll until the run's temporary client exists (the run then waits on stdin for the password)."""
    for _ in range(600):
        found = [c for c in temporary_clients(keycloak, realm)
                 if (c.get("attributes") or {}).get(PID_ATTRIBUTE) == str(process.pid)]
        if found:
            return found
        assert process.poll() is None, process.communicate()
        try:
            process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    raise AssertionError("the temporary client never appeared")


# --------------------------------------------------------------------------- only the dev server


def test_no_dev_state_is_refused(tmp_path: Path) -> None:
    done = dev_token("--realm", "mcp-dev", "--user", "alice", home=tmp_path / "empty")
    assert done.returncode == 1 and done.stdout == ""
    assert "works only with kcprov's dev Keycloak" in done.stderr and "Traceback" not in done.stderr


def test_a_url_that_is_not_the_dev_servers_is_refused(keycloak: Any, dev_home: Path, mcp_dev: dict) -> None:
    """KCPROV_URL pointing elsewhere (production, in a shell that has it exported): refused, nothing made."""
    done = dev_token("--realm", mcp_dev["realm"], "--user", "alice", home=dev_home,
                     env={"KCPROV_URL": "https://keycloak.example.com"})
    assert done.returncode == 1 and "Refusing https://keycloak.example.com" in done.stderr
    assert temporary_clients(keycloak, mcp_dev["realm"]) == []


def test_a_state_whose_keycloak_is_gone_is_refused(keycloak: Any, dev_home: Path, mcp_dev: dict, tmp_path: Path) -> None:
    """The state's URL answers (the suite's Keycloak), but the process the state names is not running."""
    forge(tmp_path, load_state(dev_home), pid=None, container=None)
    done = dev_token("--realm", mcp_dev["realm"], "--user", "alice", home=tmp_path)
    assert done.returncode == 1 and "is stopped" in done.stderr
    assert temporary_clients(keycloak, mcp_dev["realm"]) == []


def test_a_state_with_the_wrong_admin_password_is_refused(keycloak: Any, dev_home: Path, mcp_dev: dict,
                                                          tmp_path: Path) -> None:
    """Right URL, right running process, but not that instance's admin password: the login fails first."""
    forge(tmp_path, load_state(dev_home), password="not-" + secrets.token_hex(8))
    done = dev_token("--realm", mcp_dev["realm"], "--user", "alice", home=tmp_path)
    assert done.returncode == 1 and "refused the login" in done.stderr
    assert temporary_clients(keycloak, mcp_dev["realm"]) == []


def forge(home: Path, state: DevState | None, **changes: Any) -> None:
    """A copy of ``state`` in ``home`` with ``changes`` (its server dir stays the real one, for the liveness check)."""
    from dataclasses import replace

    assert state is not None
    save_state(replace(state, home=home, **changes))


def test_missing_user_and_scope_are_named(dev_home: Path, mcp_dev: dict) -> None:
    nobody = dev_token("--realm", mcp_dev["realm"], "--user", "nobody", home=dev_home, stdin="")
    assert nobody.returncode == 1 and "has no user 'nobody'" in nobody.stderr
    typo = dev_token("--realm", mcp_dev["realm"], "--user", "alice", "--scope", "mcp:tool", home=dev_home, stdin="")
    assert typo.returncode == 1 and "has no client scope 'mcp:tool'" in typo.stderr
    closed = dev_token("--realm", mcp_dev["realm"], "--user", "alice", "--client", "mcp-server", home=dev_home)
    assert closed.returncode == 1 and "does not allow the password grant" in closed.stderr


def test_no_password_and_no_terminal_is_an_error(dev_home: Path, mcp_dev: dict) -> None:
    done = dev_token("--realm", mcp_dev["realm"], "--user", "alice", home=dev_home, stdin="")
    assert done.returncode == 1 and "No password given" in done.stderr and "KCPROV_DEV_USER_PASSWORD" in done.stderr


@pytest.mark.parametrize("args", [
    ["--realm", "r"],
    ["--realm", "r", "--client-credentials"],
    ["--realm", "r", "--client-credentials", "--client", "c", "--user", "u"],
    ["--realm", "r", "--user", "u", "--password-stdin", "--client-secret-stdin"],
], ids=["no user", "client credentials without client", "client credentials with user", "two stdin secrets"])
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    done = dev_token(*args, home=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
