"""Env files of MCP servers without Keycloak: values, quoting, files (the live secret is tested
against the real Keycloak in test_mcp_realm_keycloak.py)."""

from __future__ import annotations

import copy
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from dotenv import dotenv_values

from kcprov.envgen import ENV_KEYS, HEADER, MAX_ENV_BYTES, dotenv_value, env_values, render_env, write_env_files
from kcprov.errors import KcprovError
from kcprov.spec.models import RealmSpec

ROOT = Path(__file__).resolve().parents[1]
SERVER = {
    "name": "calculator",
    "url": "http://localhost:3000/mcp",
    "extra_audiences": ["http://localhost:3000"],
    "scopes": {"mcp:tools": "Call the calculator tools", "mcp:admin": "Administer the calculator"},
    "tool_scopes": {"add": "mcp:tools", "multiply": "mcp:tools", "reset": "mcp:admin"},
    "admin_role": "mcp-admin",
}


class FakeKeycloak:
    """Just what render_env reads: the URL, the client list and a secret."""

    def __init__(self, secret: str = "s3cret-A", url: str = "http://localhost:8080"):
        self.settings = SimpleNamespace(url=url)
        self.secret = secret
        self.calls: list[str] = []

    def get(self, path, what, **params):
        self.calls.append(path)
        return [{"id": "uuid-1", "clientId": params["clientId"]}] if params.get("clientId") else []

    def client_secret(self, realm, uuid, client_id):
        assert uuid == "uuid-1"
        return self.secret


def realm(env_file: str | None = None, **changes) -> RealmSpec:
    server = {**copy.deepcopy(SERVER), "env_file": env_file, **changes}
    return RealmSpec.model_validate({"realm": "mcp-dev", "roles": [{"name": "mcp-admin"}], "mcp_servers": [server]})


def test_values_of_a_jwt_server():
    spec = realm()
    values = env_values(spec, spec.mcp_servers[0], "http://localhost:8080")
    assert tuple(values) == ENV_KEYS
    assert values == {
        "HOST": "localhost", "PORT": "3000", "AUTH_HOST": "localhost", "AUTH_PORT": "8080",
        "AUTH_REALM": "mcp-dev", "OAUTH_CLIENT_ID": "", "OAUTH_CLIENT_SECRET": "", "MCP_SCOPE": "mcp:tools",
        "OAUTH_STRICT": "true", "TRANSPORT": "streamable-http", "MCP_SERVER_NAME": "calculator",
        "MCP_RESOURCE_URL": "http://localhost:3000/mcp",
        "MCP_AUDIENCES": "http://localhost:3000/mcp,http://localhost:3000",
        "MCP_SCOPES": "mcp:tools mcp:admin",
        "MCP_TOOL_SCOPES": "add=mcp:tools,multiply=mcp:tools,reset=mcp:admin",
        "MCP_ADMIN_ROLE": "mcp-admin", "MCP_ADMIN_TOOLS": "reset", "MCP_TOKEN_VALIDATION": "jwt",
        "MCP_SENDER_CONSTRAINT": "none", "OAUTH_ISSUER": "http://localhost:8080/realms/mcp-dev",
        "OAUTH_JWKS_URL": "http://localhost:8080/realms/mcp-dev/protocol/openid-connect/certs",
        "OAUTH_INTROSPECTION_URL": "http://localhost:8080/realms/mcp-dev/protocol/openid-connect/token/introspect",
        "OAUTH_TOKEN_URL": "", "MCP_EXCHANGE_CLIENT_ID": "", "MCP_EXCHANGE_CLIENT_SECRET": "",
        "MCP_DOWNSTREAM_AUDIENCES": "", "MCP_DOWNSTREAM_SCOPES": "", "MCP_DOWNSTREAM_URLS": "",
    }


def test_values_of_an_introspection_server_on_https():
    spec = realm(url="https://mcp.example.com/mcp", token_validation="introspection", admin_role=None)
    values = env_values(spec, spec.mcp_servers[0], "https://sso.example.com/", "abc")
    assert (values["HOST"], values["PORT"], values["AUTH_HOST"], values["AUTH_PORT"]) == (
        "mcp.example.com", "443", "sso.example.com", "443")
    assert (values["OAUTH_CLIENT_ID"], values["OAUTH_CLIENT_SECRET"]) == ("calculator-introspector", "abc")
    assert values["OAUTH_ISSUER"] == "https://sso.example.com/realms/mcp-dev"
    assert (values["MCP_ADMIN_ROLE"], values["MCP_ADMIN_TOOLS"]) == ("", "")


TRICKY = ["plain", "mcp:tools mcp:admin", "it's $HOME", 'a "b" \\ c', "", "x=y,z", "#not a comment", "a #b",
          "'", '"', "$", "${unclosed", "\\", "ends with \\", "\\'", " leading", "trailing ", "two\nlines",
          "cr\rlf", "tab\tx", "München", "KEY2=injected\nKEY3=x"]


@pytest.mark.parametrize("interpolate", [False, True])
@pytest.mark.parametrize("value", TRICKY)
def test_dotenv_quoting_round_trips(tmp_path, value, interpolate):
    """Read back as written, with interpolation on too (the reference server reads with it on)."""
    path = tmp_path / ".env"
    path.write_text(f"KEY={dotenv_value(value)}\nNEXT=1\n")
    assert dotenv_values(path, interpolate=interpolate) == {"KEY": value, "NEXT": "1"}
    assert "\n" not in dotenv_value(value) and "\r" not in dotenv_value(value)


SHELL_ACTIVE = ["$(touch pwned)", "`touch pwned`", "a $HOME b", "x; touch pwned", "a|b&c>d<e", '"quoted"', "#x", "~"]


@pytest.mark.parametrize("value", SHELL_ACTIVE + [v for v in TRICKY if not set(v) & set("'\\\n\r\t")])
def test_a_shell_that_sources_the_file_reads_the_same_and_runs_nothing(tmp_path, value):
    """Values without ', \\ or line breaks are bare or single-quoted: literal for `set -a; . ./.env` too."""
    (tmp_path / ".env").write_text(f"KEY={dotenv_value(value)}\n")
    done = subprocess.run(["sh", "-c", 'set -a; . ./.env; printf %s "$KEY"'], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, value)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("value", ["${HOME}", "a${X:-y}b", "esc\x1b[2J", "nul\0", "bidi\u202e", "line\u2028sep",
                                   "it's $(id)", "a\\`id`", "two\nlines $(id)"])
def test_values_no_quoting_keeps_are_refused_without_echo(value):
    with pytest.raises(ValueError) as refused:
        dotenv_value(value)
    assert value not in str(refused.value)


def test_a_secret_that_cannot_be_written_is_refused_without_echo():
    client = FakeKeycloak(secret="abc${HOME}def")
    with pytest.raises(KcprovError) as refused:
        render_env(client, realm(token_validation="introspection"), "calculator")
    assert "OAUTH_CLIENT_SECRET" in refused.value.message
    assert "abc" not in str(refused.value)


def test_names_in_the_header_cannot_break_out_of_the_comment(tmp_path):
    """The loader refuses such names; envgen does not rely on it (model_copy skips validation)."""
    spec = realm()
    spec = spec.model_copy(update={"mcp_servers": [spec.mcp_servers[0].model_copy(
        update={"name": "calc\nOAUTH_ISSUER=http://evil"})]})
    text = render_env(FakeKeycloak(), spec, spec.mcp_servers[0], source="realms/x.yaml\rHOST=evil\x1b[2J")
    header = text.splitlines()[0]
    assert header == ("# Generated by kcprov from realms/x.yaml\\x0dHOST=evil\\x1b[2J (realm 'mcp-dev', "
                      "MCP server 'calc\\x0aOAUTH_ISSUER=http://evil').")
    assert "\x1b" not in text and "\r" not in text
    path = tmp_path / ".env"
    path.write_text(text)
    values = dotenv_values(path)
    assert values["OAUTH_ISSUER"] == "http://localhost:8080/realms/mcp-dev"
    assert values["HOST"] == "localhost"
    assert values["MCP_SERVER_NAME"] == "calc\nOAUTH_ISSUER=http://evil"


def test_rendered_file_reads_back_with_every_key(tmp_path):
    client = FakeKeycloak()
    text = render_env(client, realm(token_validation="introspection"), "calculator", source="realms/mcp-dev.yaml")
    assert text.startswith(f"{HEADER}realms/mcp-dev.yaml")
    assert "secret" in text.splitlines()[2]
    path = tmp_path / ".env"
    path.write_text(text)
    values = dotenv_values(path)
    assert set(values) == set(ENV_KEYS)
    assert values["OAUTH_CLIENT_SECRET"] == "s3cret-A"
    assert values["MCP_SCOPES"] == "mcp:tools mcp:admin"


def test_jwt_mode_asks_keycloak_nothing():
    client = FakeKeycloak()
    render_env(client, realm(), "calculator")
    assert client.calls == []


def test_unknown_server_and_missing_introspection_client():
    with pytest.raises(KcprovError, match="no MCP server 'nope'"):
        render_env(FakeKeycloak(), realm(), "nope")
    client = FakeKeycloak()
    client.get = lambda path, what, **params: []
    with pytest.raises(KcprovError, match="does not exist") as err:
        render_env(client, realm(token_validation="introspection"), "calculator")
    assert "kcprov apply" in err.value.hint


def test_write_is_private_and_byte_identical_on_rerun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = realm(env_file="srv/.env", token_validation="introspection")
    client = FakeKeycloak()
    assert write_env_files(client, spec) == [(Path("srv/.env"), True)]
    first = (tmp_path / "srv/.env").read_bytes()
    assert stat.S_IMODE((tmp_path / "srv/.env").stat().st_mode) == 0o600
    assert write_env_files(client, spec) == [(Path("srv/.env"), False)]
    assert (tmp_path / "srv/.env").read_bytes() == first
    client.secret = "rotated-B"
    assert write_env_files(client, spec) == [(Path("srv/.env"), True)]
    assert dotenv_values(tmp_path / "srv/.env")["OAUTH_CLIENT_SECRET"] == "rotated-B"


def test_a_file_kcprov_did_not_write_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = realm(env_file=".git/config")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git/config").write_text("[core]\n")
    with pytest.raises(KcprovError, match="exists and was not written by kcprov") as refused:
        write_env_files(FakeKeycloak(), spec)
    assert "move that file away" in refused.value.hint
    assert (tmp_path / ".git/config").read_text() == "[core]\n"
    (tmp_path / ".git/config").write_bytes(HEADER.encode() + b"x" * MAX_ENV_BYTES)  # ours by its start, but too big
    with pytest.raises(KcprovError, match="not written by kcprov"):
        write_env_files(FakeKeycloak(), spec)
    (tmp_path / ".git/config").unlink()
    assert write_env_files(FakeKeycloak(), spec) == [(Path(".git/config"), True)]
    assert (tmp_path / ".git/config").read_text().startswith(HEADER)
    client = FakeKeycloak()
    client.secret = "rotated"
    assert write_env_files(client, realm(env_file=".git/config", token_validation="introspection"))[0][1] is True


def test_only_and_servers_without_env_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert write_env_files(FakeKeycloak(), realm()) == []
    assert write_env_files(FakeKeycloak(), realm(env_file="a.env"), only=[]) == []
    assert write_env_files(FakeKeycloak(), realm(env_file="a.env"), only="calculator") == [(Path("a.env"), True)]
    with pytest.raises(KcprovError):
        write_env_files(FakeKeycloak(), realm(env_file="a.env"), only=["other"])


def test_the_reference_server_accepts_the_file(tmp_path, monkeypatch):
    pytest.importorskip("mcp")
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "mcp-server"))
    sys.modules.pop("config", None)
    config = pytest.importorskip("config")
    path = tmp_path / ".env"
    path.write_text(render_env(FakeKeycloak(), realm(token_validation="introspection"), "calculator"))
    loaded = config.load_config(path, environ={})
    assert loaded.resource_url == "http://localhost:3000/mcp"
    assert loaded.audiences == ("http://localhost:3000/mcp", "http://localhost:3000")
    assert loaded.client_secret == "s3cret-A"
    assert dict(loaded.tool_scopes) == {"add": ("mcp:tools",), "multiply": ("mcp:tools",), "reset": ("mcp:admin",)}
    sys.modules.pop("config", None)
