"""The HTTP layer against the real Keycloak, through a local proxy that misbehaves on purpose.

The proxy forwards to the test Keycloak but answers the first N Admin API
requests with 503 (a restarting Keycloak behind a load balancer), so retries
are exercised against real answers, not a mock.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from kcprov.connection import ConnectionSettings
from kcprov.errors import ConnectionError_, KeycloakApiError
from kcprov.keycloak import KeycloakClient

pytestmark = pytest.mark.keycloak


class FlakyProxy:
    """Forwards to `upstream`; fails the next `failures` /admin requests with 503."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.failures = 0
        self.refused = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/admin") and proxy.failures > 0:
                    proxy.failures -= 1
                    proxy.refused += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                resp = httpx.request(self.command, proxy.upstream + self.path, headers=headers, content=body)
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
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def proxy(keycloak):
    p = FlakyProxy(keycloak.url)
    yield p
    p.close()


def client_via(proxy: FlakyProxy, keycloak) -> KeycloakClient:
    return KeycloakClient(ConnectionSettings(url=proxy.url, user=keycloak.user, password=keycloak.password), attempts=4)


def test_transient_errors_are_retried_and_counted(proxy, keycloak, realm):
    client = client_via(proxy, keycloak)
    before = client.requests
    proxy.failures = 2
    export = client.realm_export(realm)
    assert export["realm"] == realm
    assert proxy.refused == 2
    assert client.requests - before == 3  # every try is counted


def test_persistent_errors_become_one_clear_error(proxy, keycloak, realm):
    client = client_via(proxy, keycloak)
    proxy.failures = 100
    with pytest.raises(KeycloakApiError) as raised:
        client.realm_export(realm)
    message = str(raised.value)
    assert f"realm '{realm}'" in message and "did not answer after 4 tries" in message
    assert keycloak.password not in message


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
