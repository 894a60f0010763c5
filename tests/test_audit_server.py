"""`kcprov audit --server`: probes of running MCP servers, against the real Keycloak and real servers.

One realm per module, applied by `kcprov apply` from realms/mcp-dev.yaml
(renamed, its server moved to a free port); the reference server and the
deliberately weak ones of tests/audit_servers run in-process on that realm.
The reference server must give no finding above low; each weak one its
weakness under the right rule id; the temporary client and realm must be gone
after every audit, an interrupted one too.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit_servers.stub import Stub
from audit_servers.stub import start as start_stub
from audit_servers.weak import config_mod, config_for, serve
from kcprov.audit.rules import RULES, Severity
from kcprov.audit.server import (
    TEMPORARY_PREFIX,
    Answer,
    as_metadata_urls,
    audit_server,
    forge_hs256,
    forge_unsigned,
    prm_url,
    token_parts,
)
from kcprov.connection import ConnectionSettings
from kcprov.keycloak import KeycloakClient

REPO = Path(__file__).resolve().parents[1]
DEV_REALM = REPO / "realms" / "mcp-dev.yaml"


# --------------------------------------------------------------------------- pure parts


def test_well_known_urls_follow_rfc_9728_and_8414() -> None:
    assert prm_url("https://mcp.example.com/mcp") == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    assert prm_url("http://localhost:3000") == "http://localhost:3000/.well-known/oauth-protected-resource"
    assert as_metadata_urls("https://id.example.com/realms/a") == [
        "https://id.example.com/.well-known/oauth-authorization-server/realms/a",
        "https://id.example.com/.well-known/openid-configuration/realms/a",
        "https://id.example.com/realms/a/.well-known/openid-configuration",
    ]


def test_challenge_parameters_are_parsed_quoted_or_not() -> None:
    import httpx

    headers = httpx.Headers([("www-authenticate", 'Basic realm="x"'),
                             ("www-authenticate", 'Bearer error="invalid_token", scope="a b", '
                                                  'error_description="say \\"hi\\"", resource_metadata=http://h/x')])
    assert Answer(401, headers, b"").challenge() == {
        "error": "invalid_token", "scope": "a b", "error_description": 'say "hi"', "resource_metadata": "http://h/x"}
    assert Answer(401, httpx.Headers(), b"").challenge() is None


def test_forged_tokens_keep_the_payload_and_change_the_algorithm() -> None:
    import jwt

    token = jwt.encode({"sub": "x", "aud": "u"}, "k" * 32, algorithm="HS256", headers={"kid": "k1"})
    unsigned = forge_unsigned(token)
    assert token_parts(unsigned) == ({"alg": "none", "typ": "JWT", "kid": "k1"}, {"sub": "x", "aud": "u"})
    assert unsigned.endswith(".")
    forged = forge_hs256(token, b"public key pem " * 3)
    assert jwt.decode(forged, b"public key pem " * 3, algorithms=["HS256"], audience="u") == {"sub": "x", "aud": "u"}


def test_server_rules_are_registered_with_what_they_rest_on() -> None:
    server_rules = [r for r in RULES.values() if r.scope == "server"]
    assert len(server_rules) >= 20
    for rule in server_rules:
        assert rule.id.startswith("server-") and rule.rests_on and rule.fix and rule.title


# --------------------------------------------------------------------------- without credentials, on a scripted server


@pytest.fixture(scope="module")
def stub() -> Iterator[Stub]:
    server, httpd = start_stub()
    yield server
    httpd.shutdown()
    httpd.server_close()


PRM_PATH = ("GET", "/.well-known/oauth-protected-resource/mcp")
AS_PATH = ("GET", "/.well-known/oauth-authorization-server/realms/r")


def _challenge(stub: Stub, value: str | None, status: int = 401) -> None:
    stub.replies[("POST", "/mcp")] = (status, {"www-authenticate": value} if value else {}, {"error": "x"})


def _prm(stub: Stub, **changes: Any) -> None:
    status, headers, doc = stub.replies[PRM_PATH]
    stub.replies[PRM_PATH] = (status, headers, {k: v for k, v in {**doc, **changes}.items() if v is not None})


def _as(stub: Stub, **changes: Any) -> None:
    status, headers, doc = stub.replies[AS_PATH]
    stub.replies[AS_PATH] = (status, headers, {k: v for k, v in {**doc, **changes}.items() if v is not None})


def _prm_elsewhere(stub: Stub) -> None:
    stub.replies[("GET", "/prm")] = stub.replies.pop(PRM_PATH)
    _challenge(stub, f'Bearer resource_metadata="{stub.base}/prm", scope="mcp:tools"')


def _as_at_oidc_url_only(stub: Stub) -> None:
    stub.replies[("GET", "/realms/r/.well-known/openid-configuration")] = stub.replies.pop(AS_PATH)


def _issuer_not_loopback(stub: Stub) -> None:
    _prm(stub, authorization_servers=["http://kcprov-audit.invalid/realms/r"])


STUB_CASES = {
    "correct": (lambda stub: None, set()),
    "as metadata at the OIDC URL only (A13 order)": (_as_at_oidc_url_only, set()),
    "200 without a token": (lambda stub: _challenge(stub, None, 200), {"server-unauthenticated-access"}),
    "401 without a challenge": (lambda stub: _challenge(stub, None), {"server-no-bearer-challenge"}),
    "403 instead of 401": (lambda stub: _challenge(stub, 'Bearer scope="mcp:tools", resource_metadata="x"', 403),
                           {"server-no-bearer-challenge"}),
    "no resource_metadata": (lambda stub: _challenge(stub, 'Bearer scope="mcp:tools"'),
                             {"server-challenge-without-resource-metadata"}),
    "no scope in the challenge": (lambda stub: _challenge(stub, f'Bearer resource_metadata="{stub.base}/'
                                                                '.well-known/oauth-protected-resource/mcp"'),
                                  {"server-challenge-without-scope"}),
    "offline_access in the challenge": (
        lambda stub: _challenge(stub, f'Bearer resource_metadata="{stub.base}/.well-known/oauth-protected-resource/'
                                      'mcp", scope="mcp:tools offline_access"'), {"server-offline-access-advertised"}),
    "no metadata": (lambda stub: stub.replies.pop(PRM_PATH), {"server-prm-missing"}),
    "metadata only at the challenge's URL": (_prm_elsewhere, {"server-prm-not-at-well-known"}),
    "resource with a trailing slash": (lambda stub: _prm(stub, resource=stub.url + "/"),
                                       {"server-prm-resource-mismatch"}),
    "no authorization server": (lambda stub: _prm(stub, authorization_servers=[]),
                                {"server-prm-without-authorization-server"}),
    "offline_access in scopes_supported": (lambda stub: _prm(stub, scopes_supported=["mcp:tools", "offline_access"]),
                                           {"server-offline-access-advertised"}),
    "no authorization server metadata": (lambda stub: stub.replies.pop(AS_PATH), {"server-as-metadata-missing"}),
    "plain http issuer off loopback": (_issuer_not_loopback, {"server-plain-http", "server-as-metadata-missing"}),
    "issuer with a trailing slash": (lambda stub: _as(stub, issuer=stub.issuer + "/"), {"server-as-issuer-mismatch"}),
    "no S256": (lambda stub: _as(stub, code_challenge_methods_supported=["plain"]),
                {"server-pkce-s256-not-advertised"}),
    "no iss parameter": (lambda stub: _as(stub, authorization_response_iss_parameter_supported=None),
                         {"server-iss-parameter-not-advertised"}),
}


@pytest.mark.parametrize("case", STUB_CASES)
def test_credential_free_probes_find_each_weakness(stub: Stub, case: str) -> None:
    change, expected = STUB_CASES[case]
    stub.good()
    change(stub)
    findings = audit_server(stub.url)
    assert {f.rule.id for f in findings} == expected, [f.message for f in findings]
    assert all(f.location.url for f in findings)


def test_a_server_off_loopback_over_plain_http_is_found() -> None:
    from kcprov.audit.server import _Probe

    probe = _Probe("http://mcp.example.com/mcp", None)  # type: ignore[arg-type]
    probe._check_https("http://mcp.example.com/mcp", "the MCP server")
    probe._check_https("https://mcp.example.com/mcp", "the MCP server")
    probe._check_https("http://[::1]:3000/mcp", "the MCP server")
    assert [f.rule.id for f in probe.findings] == ["server-plain-http"]


def test_an_unreachable_server_is_an_error_naming_it() -> None:
    from kcprov.errors import KcprovError

    with pytest.raises(KcprovError, match="POST http://127.0.0.1:9/mcp failed"):
        audit_server("http://127.0.0.1:9/mcp", timeout=5)


# --------------------------------------------------------------------------- against Keycloak and servers


def _client(keycloak: Any) -> KeycloakClient:
    return KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user, password=keycloak.password))


@pytest.fixture(scope="module")
def dev_realm(keycloak: Any, tmp_path_factory: pytest.TempPathFactory, free_ports: Any) -> Iterator[dict[str, str]]:
    """realms/mcp-dev.yaml applied under a fresh name, its server on a free port; yields the env file kcprov wrote.

    The reference server runs on that port (its URL is the one the realm's audience mappers name, as in real
    use); the weak servers on other ports.
    """
    workdir = tmp_path_factory.mktemp("audit-server")
    name = f"t-audit-server-{secrets.token_hex(3)}"
    source = workdir / "mcp-dev.yaml"
    port = free_ports(1)[0]
    source.write_text(DEV_REALM.read_text().replace("realm: mcp-dev", f"realm: {name}")
                      .replace("localhost:3000", f"localhost:{port}"))
    env = {**os.environ, "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user,
           "KCPROV_PASSWORD": keycloak.password, "ALICE_PASSWORD": secrets.token_urlsafe(12)}
    try:
        done = subprocess.run([sys.executable, "-m", "kcprov.cli", "apply", str(source), "--auto-approve"], env=env,
                              cwd=workdir, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        yield config_mod.read_settings(workdir / "examples" / "mcp-server" / ".env", environ={})
    finally:
        try:
            keycloak.admin().delete_realm(name)
        except Exception:
            pass


@pytest.fixture
def server_config(dev_realm: dict[str, str], free_ports: Any) -> Any:
    """A weak server's settings: the realm's, on a port of its own."""
    return config_for(dev_realm, free_ports(1)[0])


@pytest.fixture
def reference_config(dev_realm: dict[str, str]) -> Any:
    """The reference server's settings: as kcprov wrote them, at the URL the realm was applied for."""
    config = config_for(dev_realm, int(dev_realm["PORT"]))
    assert config.resource_url == dev_realm["MCP_RESOURCE_URL"]
    return config


def _leftovers(keycloak: Any, realm: str) -> list[str]:
    admin = keycloak.admin()
    realms = [r["realm"] for r in admin.get_realms() if r["realm"].startswith(TEMPORARY_PREFIX)]
    clients = [c["clientId"] for c in keycloak.admin(realm).get_clients() if c["clientId"].startswith(TEMPORARY_PREFIX)]
    return realms + clients


def _realm(config: Any) -> str:
    return config.issuer.rsplit("/", 1)[1]


def _above_low(findings: list) -> list[str]:
    return [f"{f.rule.id}: {f.message}" for f in findings if f.rule.severity > Severity.LOW]


def test_reference_server_without_credentials_has_no_finding(reference_config: Any) -> None:
    with serve(reference_config) as url:
        assert audit_server(url) == []


def test_reference_server_with_tokens_has_no_finding_above_low(keycloak: Any, reference_config: Any) -> None:
    with serve(reference_config) as url:
        findings = audit_server(url, client=_client(keycloak))
    assert _above_low(findings) == []
    assert findings == []  # not even a low one
    assert _leftovers(keycloak, _realm(reference_config)) == []


@pytest.mark.parametrize(("weakness", "rule"), [
    ("no-audience", "server-accepts-wrong-audience"),
    ("alg-none", "server-accepts-unsigned-token"),
    ("hs256-public-key", "server-accepts-hs256-public-key"),
    ("no-expiry", "server-accepts-expired-token"),
    ("trusts-token-issuer", "server-accepts-other-realm-token"),
    ("echoes-token", "server-echoes-credentials"),
    ("refuses-everything", "server-rejects-valid-token"),
    ("grants-base-scope", "server-base-scope-unenforced"),
    ("session-authenticates", "server-session-id-authenticates"),
    ("bare-403", "server-insufficient-scope-challenge"),
    ("400-for-bad-tokens", "server-refusal-status"),
])
def test_a_weak_server_is_found_under_the_rule(keycloak: Any, server_config: Any, weakness: str, rule: str) -> None:
    with serve(server_config, weakness) as url:
        findings = audit_server(url, client=_client(keycloak))
    assert {f.rule.id for f in findings} == {rule}, [f.message for f in findings]
    assert all(f.location.url == url for f in findings)
    assert _leftovers(keycloak, _realm(server_config)) == []


def test_no_audience_check_is_found_where_the_realm_binds_the_audience_to_the_scopes(
        keycloak: Any, reference_config: Any) -> None:
    """At the URL the realm's scopes carry as audience, the wrong-audience token has no scopes: a server that
    skips the audience check answers it 403 insufficient_scope (it read the scopes) instead of 401."""
    with serve(reference_config, "no-audience") as url:
        findings = audit_server(url, client=_client(keycloak))
    assert [(f.rule.id, "403 insufficient_scope" in f.message) for f in findings] == [
        ("server-accepts-wrong-audience", True)]


def test_tool_scopes_nobody_checks_are_found(keycloak: Any, dev_realm: dict[str, str], free_ports: Any) -> None:
    """The reference server told that no tool needs more than the base scope, while it advertises mcp:admin."""
    config = config_for(dev_realm, free_ports(1)[0], MCP_TOOL_SCOPES="")
    with serve(config) as url:
        findings = audit_server(url, client=_client(keycloak))
    assert {f.rule.id for f in findings} == {"server-tool-scopes-unenforced"}, [f.message for f in findings]


def test_token_probes_that_cannot_run_are_a_note(keycloak: Any, server_config: Any) -> None:
    """A realm kcprov cannot administer (here: named wrongly): the credential-free findings and a note."""
    notes: list[str] = []
    with serve(server_config) as url:
        findings = audit_server(url, client=_client(keycloak), realm="kcprov-audit-no-such-realm", note=notes.append)
    assert findings == []
    assert len(notes) == 1 and "no admin rights on realm 'kcprov-audit-no-such-realm'" in notes[0]


def _temporary(keycloak: Any, realm: str, what: str) -> bool:
    if what == "client":
        return any(c["clientId"].startswith(TEMPORARY_PREFIX) for c in keycloak.admin(realm).get_clients())
    return any(r["realm"].startswith(TEMPORARY_PREFIX) for r in keycloak.admin().get_realms())


@pytest.mark.parametrize(("sig", "when"), [(signal.SIGINT, "client"), (signal.SIGTERM, "realm")])
def test_an_interrupted_audit_leaves_no_temporary_objects(keycloak: Any, server_config: Any, sig: int,
                                                          when: str) -> None:
    """`kcprov audit --server` gets Ctrl-C (or SIGTERM) once its temporary client (or realm) exists: it exits 130
    and neither is left."""
    realm = _realm(server_config)
    assert _leftovers(keycloak, realm) == []
    env = {**os.environ, "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user,
           "KCPROV_PASSWORD": keycloak.password}
    with serve(server_config) as url:
        # SIGINT as a terminal gives it: a shell's background job (a CI runner, `cmd &`) starts its children with
        # SIGINT ignored, and Python keeps that, so the Ctrl-C would then be ignored outside the held blocks
        process = subprocess.Popen([sys.executable, "-m", "kcprov.cli", "audit", "--server", url], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            while not _temporary(keycloak, realm, when):
                assert process.poll() is None, f"the audit ended before its {when} was seen: {process.stdout.read()}"
                time.sleep(0.05)
            process.send_signal(sig)
            output, _ = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, output
    assert "Traceback" not in output and keycloak.password not in output
    assert _leftovers(keycloak, realm) == []
