"""Where kcprov connects and how: checked before any request, no secret in any message (pure tests)."""

from __future__ import annotations

import pytest

from kcprov.connection import check_url, resolve_connection
from kcprov.errors import ConnectionError_, KcprovError
from kcprov.urls import is_loopback


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "kc.localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["localhost.example.com", "10.0.0.1", "keycloak", "0.0.0.0", "::ffff:10.0.0.1", None, ""])
def test_other_hosts_are_not_loopback(host):
    assert not is_loopback(host)


def test_plain_http_to_a_remote_host_is_refused_unless_allowed():
    with pytest.raises(ConnectionError_, match="unencrypted") as caught:
        check_url("http://keycloak.example.com")
    assert "--allow-http" in caught.value.hint
    assert check_url("http://keycloak.example.com", allow_http=True) == "http://keycloak.example.com"
    assert check_url("https://keycloak.example.com/") == "https://keycloak.example.com"
    assert check_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"


@pytest.mark.parametrize("url", ["ftp://kc", "keycloak:8080", "https://", "http://kc:notaport", "https://kc/?a=1", "https://kc/#x"])
def test_urls_that_are_not_a_keycloak_base_url(url):
    with pytest.raises(ConnectionError_):
        check_url(url)


def test_credentials_in_the_url_are_refused_without_repeating_them():
    with pytest.raises(ConnectionError_) as caught:
        check_url("https://admin:hunter2@kc.example.com")
    assert "hunter2" not in str(caught.value)


def test_a_missing_or_non_pem_ca_bundle_is_one_clear_error(tmp_path):
    args = dict(url="https://kc.example.com", user="admin", password="pw")
    with pytest.raises(KcprovError, match="cannot read the CA bundle"):
        resolve_connection(**args, ca_cert=str(tmp_path / "missing.pem"))
    with pytest.raises(KcprovError, match="is a directory"):
        resolve_connection(**args, ca_cert=str(tmp_path))
    (tmp_path / "not.pem").write_text("hello")
    with pytest.raises(ConnectionError_, match="no PEM certificate"):
        resolve_connection(**args, ca_cert=str(tmp_path / "not.pem"))


def test_the_password_is_never_in_the_settings_repr():
    settings = resolve_connection(url="http://localhost:8080", user="admin", password="hunter2")
    assert "hunter2" not in repr(settings)


def test_the_ca_bundle_comes_from_the_environment_as_requests_would_take_it(monkeypatch):
    """kcprov.keycloak reads it once per client (its session then ignores the environment): the same rules."""
    from kcprov.keycloak import environment_settings

    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert environment_settings("https://kc.example", True) == ({}, True)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/curl.pem")
    assert environment_settings("https://kc.example", True)[1] == "/etc/curl.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/requests.pem")
    assert environment_settings("https://kc.example", True)[1] == "/etc/requests.pem"
    assert environment_settings("https://kc.example", "/mine.pem")[1] == "/mine.pem"  # --ca-cert wins
    assert environment_settings("https://kc.example", False)[1] is False  # --insecure wins
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert environment_settings("https://kc.example", True)[0]["https"] == "http://proxy.example:3128"
    monkeypatch.setenv("NO_PROXY", "kc.example")
    assert environment_settings("https://kc.example", True)[0] == {}
