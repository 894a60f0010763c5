"""The HTTP layer against the real Keycloak, through a local proxy that misbehaves on purpose.

The proxy forwards to the test Keycloak but can answer Admin API requests
with 503 (a restarting Keycloak behind a load balancer), close the connection
without an answer (before or after forwarding the request), or answer late,
so retries, the per-run retry budget, timeouts and lost create answers are
exercised against real answers, not a mock.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from kcprov.connection import ConnectionSettings
from kcprov.errors import ConnectionError_, KeycloakApiError
from kcprov.keycloak import KeycloakClient, KeycloakUnreachable

pytestmark = pytest.mark.keycloak


class FlakyProxy:
    """Forwards to `upstream`; the next /admin requests can fail in the ways set below.

    failures: answer 503 without forwarding; drops: close without forwarding;
    lost_answers: forward, then close without answering; delay: seconds to
    wait before answering (after forwarding). With `prefix`, it serves Keycloak
    under that path (as a reverse proxy or KC_HTTP_RELATIVE_PATH would) and
    answers 404 to anything outside it.
    """

    def __init__(self, upstream: str, prefix: str = ""):
        self.upstream = upstream
        self.prefix = prefix
        self.failures = self.drops = self.lost_answers = 0
        self.delay = 0.0
        self.refused = 0
        self.admin_requests = 0
        self.token_requests = 0
        self.forwarded = 0  # requests sent to it as a forward proxy (HTTP_PROXY)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _take(self, name: str) -> bool:
                with proxy._lock:
                    if getattr(proxy, name) > 0:
                        setattr(proxy, name, getattr(proxy, name) - 1)
                        return True
                    return False

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("http://"):  # absolute form: a client that has it as its HTTP_PROXY
                    with proxy._lock:
                        proxy.forwarded += 1
                    self.path = "/" + self.path.split("/", 3)[3]
                if not self.path.startswith(proxy.prefix + "/"):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.path = self.path[len(proxy.prefix):]
                admin = self.path.startswith("/admin")
                with proxy._lock:
                    proxy.admin_requests += admin
                    proxy.token_requests += self.path.endswith("/protocol/openid-connect/token")
                if admin and self._take("failures"):
                    proxy.refused += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if admin and self._take("drops"):
                    self.close_connection = True
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                resp = httpx.request(self.command, proxy.upstream + self.path, headers=headers, content=body,
                                     timeout=120, trust_env=False)  # not through itself when it is HTTP_PROXY
                if admin and self._take("lost_answers"):
                    self.close_connection = True
                    return
                if admin and proxy.delay:
                    time.sleep(proxy.delay)
                self.send_response(resp.status_code)
                for key, value in resp.headers.items():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def proxy(keycloak):
    p = FlakyProxy(keycloak.url)
    yield p
    p.close()


def client_via(proxy: FlakyProxy, keycloak, **options) -> KeycloakClient:
    return KeycloakClient(ConnectionSettings(url=proxy.url, user=keycloak.user, password=keycloak.password),
                          **{"attempts": 4, **options})


def test_transient_errors_are_retried_and_counted(proxy, keycloak, realm):
    client = client_via(proxy, keycloak)
    before = client.requests
    proxy.failures = 2
    export = client.realm_export(realm)
    assert export["realm"] == realm
    assert proxy.refused == 2
    assert client.requests - before == 3  # every try is counted
    assert client.budget.used == 2


def test_persistent_errors_become_one_clear_error_and_end_the_run(proxy, keycloak, realm):
    client = client_via(proxy, keycloak)
    proxy.failures = 100
    with pytest.raises(KeycloakUnreachable) as raised:
        client.realm_export(realm)
    message = str(raised.value)
    assert f"realm '{realm}'" in message and "kept answering HTTP 503 (4 tries)" in message
    assert keycloak.password not in message
    # the run has failed: the next request fails at once with the same reason, without a request
    sent = proxy.admin_requests
    with pytest.raises(KeycloakUnreachable, match="kept answering HTTP 503") as again:
        client.get(f"/admin/realms/{realm}/roles", "realm roles")
    assert again.value.message.startswith("realm roles: ")
    assert proxy.admin_requests == sent


def test_the_retry_budget_is_shared_by_all_requests_of_a_run(proxy, keycloak, realm):
    client = client_via(proxy, keycloak, retries=5)
    proxy.failures = 3
    client.realm_export(realm)  # 3 retries spent
    proxy.failures = 100
    with pytest.raises(KeycloakUnreachable, match=r"\(3 tries\)"):  # 2 retries left: 3 tries
        client.realm_export(realm)
    assert client.budget.used == 5 and proxy.refused == 6


def test_a_request_without_an_answer_says_it_timed_out_and_is_not_retried(proxy, keycloak, realm):
    client = client_via(proxy, keycloak, timeout=1)
    proxy.delay = 3
    sent = proxy.admin_requests
    started = time.monotonic()
    with pytest.raises(KeycloakUnreachable) as raised:
        client.get(f"/admin/realms/{realm}", f"realm '{realm}'")
    assert time.monotonic() - started < 5  # loosely: one timeout, no retries
    assert raised.value.message == f"realm '{realm}': Keycloak at {proxy.url} gave no answer within 1 s."
    assert "--timeout" in raised.value.hint
    assert proxy.admin_requests - sent == 1


def test_a_connection_closed_without_an_answer_is_retried(proxy, keycloak, realm):
    client = client_via(proxy, keycloak)
    proxy.drops = 2
    assert client.get(f"/admin/realms/{realm}", "realm")["realm"] == realm
    assert client.budget.used == 2


def test_a_create_whose_answer_was_lost_is_found_not_repeated(proxy, keycloak, realm):
    """The role is made, the answer lost: the retry finds kcprov's own role instead of a 409."""
    client = client_via(proxy, keycloak)
    proxy.lost_answers = 1
    role_id = client.post(f"/admin/realms/{realm}/roles", {"name": "made-once"}, "realm role 'made-once'")
    role = keycloak.admin(realm).get_realm_role("made-once")
    assert role_id == role["id"]
    proxy.lost_answers = 1
    client_uuid = client.post(f"/admin/realms/{realm}/clients", {"clientId": "made-once", "protocol": "openid-connect"},
                              "client 'made-once'")
    assert [c["id"] for c in keycloak.admin(realm).get_clients() if c["clientId"] == "made-once"] == [client_uuid]


def test_lost_creates_of_the_realm_kinds_are_found_not_repeated(proxy, keycloak, realm):
    """Groups, subgroups, flows, sub-flows, identity providers and their mappers: a natural key finds each."""
    client = client_via(proxy, keycloak)
    base = f"/admin/realms/{realm}"

    def made_once(path: str, body: dict) -> str | None:
        proxy.lost_answers = 1
        return client.post(f"{base}{path}", body, "a create")

    top = made_once("/groups", {"name": "staff"})
    kid = made_once(f"/groups/{top}/children", {"name": "admins"})
    admin = keycloak.admin(realm)
    assert [(g["id"], [s["id"] for s in g["subGroups"]]) for g in admin.get_groups(full_hierarchy=True)] == [(top, [kid])]
    flow = made_once("/authentication/flows", {"alias": "once", "providerId": "basic-flow", "topLevel": True})
    made_once("/authentication/flows/once/executions/flow", {"alias": "once forms", "type": "basic-flow"})
    assert [f["id"] for f in admin.get_authentication_flows() if f["alias"] == "once"] == [flow]
    assert [e["displayName"] for e in admin.get_authentication_flow_executions("once")] == ["once forms"]
    assert made_once("/identity-provider/instances", {"alias": "sso", "providerId": "github",
                                                      "config": {"clientId": "x"}}) == "sso"
    mapper = made_once("/identity-provider/instances/sso/mappers",
                       {"name": "m", "identityProviderAlias": "sso", "identityProviderMapper": "hardcoded-user-session-attribute-idp-mapper",
                        "config": {"attribute": "a", "attribute.value": "b"}})
    assert [m["id"] for m in admin.get_idp_mappers("sso")] == [mapper]


def test_a_create_sent_once_fails_the_run_when_its_answer_is_lost(proxy, keycloak, realm):
    """An authenticator execution has no key to find it by: a lost answer ends the run, it is never sent twice."""
    client = client_via(proxy, keycloak)
    client.post(f"/admin/realms/{realm}/authentication/flows", {"alias": "f", "providerId": "basic-flow",
                                                                "topLevel": True}, "flow")
    proxy.lost_answers = 1
    with pytest.raises(KeycloakUnreachable):
        client.post(f"/admin/realms/{realm}/authentication/flows/f/executions/execution", {"provider": "auth-cookie"},
                    "execution", once=True)
    assert len(keycloak.admin(realm).get_authentication_flow_executions("f")) == 1


def test_an_expired_admin_token_is_renewed_mid_run(proxy, keycloak, realm):
    """A service account of a realm whose tokens live 3 s: requests after expiry log in again and succeed."""
    admin = keycloak.admin(realm)
    admin.update_realm(realm, {"accessTokenLifespan": 3})
    uuid = admin.create_client({"clientId": "provisioner", "publicClient": False, "serviceAccountsEnabled": True,
                                "standardFlowEnabled": False, "secret": "provisioner-secret-123"})
    management = admin.get_client_id("realm-management")
    roles = [admin.get_client_role(management, r) for r in ("manage-realm", "manage-clients", "view-realm")]
    admin.assign_client_role(admin.get_client_service_account_user(uuid)["id"], management, roles)
    client = KeycloakClient(ConnectionSettings(url=proxy.url, auth_realm=realm, client_id="provisioner",
                                               client_secret="provisioner-secret-123"))
    assert proxy.token_requests == 1
    client.post(f"/admin/realms/{realm}/roles", {"name": "before-expiry"}, "realm role 'before-expiry'")
    time.sleep(4)
    client.post(f"/admin/realms/{realm}/roles", {"name": "after-expiry"}, "realm role 'after-expiry'")
    assert client.get(f"/admin/realms/{realm}/roles/after-expiry", "realm role 'after-expiry'")["name"] == "after-expiry"
    assert proxy.token_requests == 2


@pytest.mark.parametrize("bypassed", [False, True], ids=["HTTP_PROXY", "NO_PROXY"])
def test_the_environments_proxy_settings_hold_for_every_request(proxy, keycloak, realm, monkeypatch, bypassed):
    """Read once when the client is made (not by requests per request), they still decide every request."""
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    if bypassed:
        monkeypatch.setenv("NO_PROXY", httpx.URL(keycloak.url).host)
    client = KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user, password=keycloak.password))
    for _ in range(3):
        assert client.get(f"/admin/realms/{realm}", "realm")["realm"] == realm
    assert proxy.forwarded == (0 if bypassed else 1 + 3)  # the login, then the admin requests
    assert proxy.admin_requests == (0 if bypassed else 3)


def test_http_errors_name_the_resource_and_what_to_do(keycloak, realm):
    client = KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user, password=keycloak.password))
    client.post(f"/admin/realms/{realm}/roles", {"name": "twice"}, "realm role 'twice'")
    with pytest.raises(KeycloakApiError) as raised:
        client.post(f"/admin/realms/{realm}/roles", {"name": "twice"}, "realm role 'twice'")
    assert raised.value.status == 409
    assert "realm role 'twice': Keycloak answered 409" in raised.value.message
    assert "already exists" in raised.value.hint
    with pytest.raises(KeycloakApiError) as missing:
        client.get(f"/admin/realms/{realm}/roles/nope", "realm role 'nope'")
    assert missing.value.status == 404 and "kcprov plan" in missing.value.hint


def test_unreachable_keycloak_and_wrong_password(keycloak):
    with pytest.raises(ConnectionError_, match="Cannot reach Keycloak at http://127.0.0.1:9"):
        KeycloakClient(ConnectionSettings(url="http://127.0.0.1:9", user="admin", password="x"), attempts=1)
    with pytest.raises(ConnectionError_, match="wrong credentials") as raised:
        KeycloakClient(ConnectionSettings(url=keycloak.url, user=keycloak.user, password="not-the-password"))
    assert "not-the-password" not in str(raised.value)


def test_keycloak_under_a_path_prefix_is_reached_under_it(keycloak, realm):
    prefixed = FlakyProxy(keycloak.url, prefix="/kc")
    try:
        client = KeycloakClient(ConnectionSettings(url=prefixed.url + "/kc", user=keycloak.user,
                                                   password=keycloak.password))
        assert client.realm_export(realm)["realm"] == realm
        assert prefixed.token_requests == 1 and prefixed.admin_requests == 1
        with pytest.raises(ConnectionError_, match="HTTP 404") as raised:  # the prefix left out
            KeycloakClient(ConnectionSettings(url=prefixed.url, user=keycloak.user, password=keycloak.password))
        assert "/realms/master" in raised.value.message
    finally:
        prefixed.close()


def test_the_pre_17_auth_path_is_a_clear_404_not_a_silent_fallback(keycloak):
    """urljoin used to drop a path without a trailing slash, so /auth 'worked' and env files got a dead issuer."""
    with pytest.raises(ConnectionError_) as raised:
        KeycloakClient(ConnectionSettings(url=keycloak.url + "/auth", user=keycloak.user, password=keycloak.password))
    assert f"{keycloak.url}/auth/realms/master" in raised.value.message and "without /auth" in raised.value.hint
