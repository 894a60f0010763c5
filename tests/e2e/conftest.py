"""Fixtures of the end-to-end suite: a realm applied by kcprov, the reference server, a person, a second client.

Everything runs for real on loopback: the session's Keycloak (``keycloak``
from tests/conftest.py), realms applied with the ``kcprov apply`` CLI in a
subprocess, the reference MCP server (examples/mcp-server/server.py) in a
subprocess reading the env file written for it, Keycloak's own login and
consent pages in headless Chromium (or the browserless fallback), and the MCP
Inspector CLI from npm.

One realm and one server per test module; the few negatives that need other
policies get a realm of their own.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from network import reachable
from e2e_login import BrowserLogin, HttpLogin, login_driver
from e2e_support import (
    ARTIFACTS,
    DEV_REALM_FILE,
    SUMMARY,
    USERS,
    CallbackListener,
    Inspector,
    McpServer,
    MetadataDocuments,
    Realm,
    _node_version,
    delete_realm,
    env_file_values,
    free_port,
    install_inspector,
    kcprov,
    kcprov_env,
    port_is_free,
    provision_realm,
    realm_exists,
    start_server,
    stop_server,
)

# --------------------------------------------------------------------------- kcprov, realms


@pytest.fixture(scope="module")
def server_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def mcp_realm(keycloak: Any, server_port: int) -> Iterator[Realm]:
    """The module's realm: DCR from loopback, CIMD from loopback, PKCE enforced, refresh rotation."""
    realm = provision_realm(
        keycloak, resource=f"http://localhost:{server_port}/mcp", client_uris_must_match=False, label="mcp"
    )
    SUMMARY["kcprov apply (main realm)"] = f"{realm.apply_seconds:.1f}s"
    yield realm
    timed("delete main realm", delete_realm, keycloak, realm.name)


@pytest.fixture(scope="module")
def strict_realm(keycloak: Any) -> Iterator[Realm]:
    """A variant whose DCR Trusted Hosts policy also checks the client's URIs (client_uris_must_match)."""
    realm = provision_realm(
        keycloak, resource=f"http://localhost:{free_port()}/mcp", client_uris_must_match=True, label="strict"
    )
    yield realm
    timed("delete strict realm", delete_realm, keycloak, realm.name)


# --------------------------------------------------------------------------- the reference MCP server


@pytest.fixture(scope="module")
def mcp_server(mcp_realm: Realm, server_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpServer]:
    """examples/mcp-server/server.py on ``server_port``, configured by the env file written for the realm."""
    directory = tmp_path_factory.mktemp("mcp-server")
    env_file = directory / ".env"
    lines = [f"{key}={value}" for key, value in env_file_values(mcp_realm, server_port).items()]
    env_file.write_text("# written by tests/e2e for realm " + mcp_realm.name + "\n" + "\n".join(lines) + "\n")
    env_file.chmod(0o600)
    started = time.monotonic()
    server = start_server(env_file, directory / "server.log", mcp_realm.resource)
    SUMMARY["reference server start"] = f"{time.monotonic() - started:.1f}s"
    yield server
    timed("stop reference server", stop_server, server)


# --------------------------------------------------------------------------- the person, the client's redirect listener


@pytest.fixture(scope="session")
def login(record_testsuite_property: Any) -> Iterator[BrowserLogin | HttpLogin]:
    """Who answers Keycloak's pages: a real headless Chromium, or the browserless fallback.

    Said in the terminal summary and, for CI, as the junit XML suite property ``e2e_login``.
    """
    started = time.monotonic()
    driver, why = login_driver()
    record_testsuite_property("e2e_login", driver.kind)
    SUMMARY["login pages driven by"] = f"{driver.kind} [{why}; ready in {time.monotonic() - started:.1f}s]"
    print(f"\n[e2e] login pages driven by: {driver.kind} [{why}]")
    yield driver
    driver.close()


@pytest.fixture
def login_kind(login: BrowserLogin | HttpLogin) -> str:
    """``browser`` or ``http``: which login path this run uses."""
    return "browser" if isinstance(login, BrowserLogin) else "http"


@pytest.fixture(scope="session")
def callback() -> Iterator[CallbackListener]:
    listener = CallbackListener()
    yield listener
    listener.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """tests/e2e/artifacts (git-ignored): screenshots and pages kept after the run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in [*ARTIFACTS.glob("*-consent-*.png"), *ARTIFACTS.glob("*-consent-*.html")]:
        stale.unlink()  # a screenshot left from an earlier run must not pass for this one's
    return ARTIFACTS


# --------------------------------------------------------------------------- MCP Inspector (a client nobody here wrote)


@pytest.fixture(scope="session")
def inspector() -> Inspector:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the MCP Inspector CLI (an npm package) cannot be run")
    started = time.monotonic()
    try:
        found = install_inspector()
    except RuntimeError as exc:
        registry = subprocess.run(["npm", "config", "get", "registry"], capture_output=True, text=True).stdout.strip()
        if registry and not reachable(registry):
            pytest.skip(f"needs the network: the npm registry is unreachable, so the MCP Inspector cannot be installed ({exc})")
        raise
    node = ".".join(map(str, _node_version(found.node)))
    SUMMARY["MCP Inspector CLI"] = f"{found.version} on Node {node} ({time.monotonic() - started:.1f}s to install/find)"
    return found


# --------------------------------------------------------------------------- report


def timed(label: str, action: Any, *args: Any) -> None:
    started = time.monotonic()
    try:
        action(*args)
    finally:
        SUMMARY[label] = f"{time.monotonic() - started:.1f}s"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARY:
        terminalreporter.section("kcprov end-to-end")
        for key, value in SUMMARY.items():
            terminalreporter.write_line(f"{key}: {value}")


@pytest.fixture(scope="module")
def metadata_documents(callback: CallbackListener) -> Iterator[MetadataDocuments]:
    """Client ID Metadata Documents served on trusted (127.0.0.1) and untrusted (127.0.0.2) loopback hosts."""
    documents = MetadataDocuments(callback.redirect_uri)
    yield documents
    documents.close()


# --------------------------------------------------------------------------- realms/mcp-dev.yaml, as the README says


@pytest.fixture(scope="module")
def dev_realm(keycloak: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realm]:
    """``kcprov apply realms/mcp-dev.yaml`` as written (realm mcp-dev, server http://localhost:3000/mcp).

    Run in a scratch directory, so the env file it names (examples/mcp-server/.env,
    relative to the working directory) lands there and not in the checkout. When
    the server's port is taken on this machine, a copy of the file with only that
    port changed is applied instead, and the summary says so.
    """
    from kcprov.spec import load_realm

    workdir = tmp_path_factory.mktemp("mcp-dev")
    source = DEV_REALM_FILE
    spec = load_realm(source)
    parts = urlsplit(spec.mcp_servers[0].url)
    busy = parts.port or 80
    if not port_is_free(busy):
        authority = f"{parts.hostname}:{busy}"
        moved = f"{parts.hostname}:{free_port()}"
        source = workdir / DEV_REALM_FILE.name
        source.write_text(DEV_REALM_FILE.read_text().replace(authority, moved))
        spec = load_realm(source)
        SUMMARY["realm file"] = f"realms/mcp-dev.yaml with {authority} -> {moved} (port {busy} is busy here)"
    else:
        SUMMARY["realm file"] = "realms/mcp-dev.yaml as written"
    if realm_exists(keycloak, spec.realm):
        pytest.skip(f"realm {spec.realm!r} already exists on {keycloak.url}; not touching it")
    server = spec.mcp_servers[0]
    realm = Realm(
        keycloak=keycloak,
        name=spec.realm,
        resource=server.url,
        workdir=workdir,
        source=source,
        env_file=workdir / (server.env_file or ".env"),
        consent=dict(server.scopes),
    )
    env = {**kcprov_env(keycloak), "ALICE_PASSWORD": USERS["alice"]}
    started = time.monotonic()
    try:
        kcprov("apply", str(source), "--auto-approve", env=env, cwd=workdir)
        realm.apply_seconds = time.monotonic() - started
        SUMMARY["kcprov apply realms/mcp-dev.yaml"] = f"{realm.apply_seconds:.1f}s"
        yield realm
    finally:
        timed("delete realm mcp-dev", delete_realm, keycloak, spec.realm)


@pytest.fixture(scope="module")
def dev_server(dev_realm: Realm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpServer]:
    """The reference server started with the env file kcprov wrote for realms/mcp-dev.yaml."""
    assert dev_realm.env_file is not None and dev_realm.env_file.is_file(), "kcprov apply wrote no env file"
    log = tmp_path_factory.mktemp("mcp-dev-server") / "server.log"
    started = time.monotonic()
    server = start_server(dev_realm.env_file, log, dev_realm.resource)
    SUMMARY["reference server start (mcp-dev)"] = f"{time.monotonic() - started:.1f}s"
    yield server
    timed("stop reference server (mcp-dev)", stop_server, server)
