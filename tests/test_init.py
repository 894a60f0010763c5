"""`kcprov init`: the starter realm file validates, plans and applies as written; it never overwrites.

Offline: every combination of --client choices and --validation, for a URL
on this machine (with a dev user whose password has a default) and one that
is not (no user, no default secret), loads through the realm file loader.
Against the real Keycloak: init → validate → apply → the next plan is empty.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kcprov.init import CLIENT_CHOICES, PRESETS, starter_realm
from kcprov.spec import load_realm
from kcprov.spec.models import McpClientEntry

# Every choice alone, every pair (the presets that interact: claude-code + claude-desktop, codex + chatgpt) and all at once.
COMBINATIONS = [[], *(list(c) for n in (1, 2) for c in itertools.combinations(CLIENT_CHOICES, n)), list(CLIENT_CHOICES)]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "import sys; sys.argv[0] = 'kcprov'; from kcprov.cli import main; main()", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, cwd=cwd, env={**os.environ, **(env or {})})


def test_the_presets_are_the_models():
    """--client offers exactly the presets the realm file accepts, plus dcr."""
    literal = McpClientEntry.model_fields["preset"].annotation
    assert set(PRESETS) == set(literal.__args__[0].__args__)
    assert set(CLIENT_CHOICES) == {"dcr", *PRESETS}


@pytest.mark.parametrize("validation", ["jwt", "introspection"])
@pytest.mark.parametrize("url", ["http://localhost:3000/mcp", "https://mcp.example.com/mcp"], ids=["loopback", "remote"])
def test_every_client_combination_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str,
                                            validation: str) -> None:
    monkeypatch.delenv("ALICE_PASSWORD", raising=False)
    for clients in COMBINATIONS:
        path = tmp_path / f"{'-'.join(clients) or 'default'}.yaml"
        path.write_text(starter_realm("calc", url, clients, validation))  # type: ignore[arg-type]
        spec = load_realm(path)
        [server] = spec.mcp_servers
        assert server.url == url and server.token_validation == validation
        wanted = clients or ["dcr"]
        assert [e.preset or "dcr" for e in server.clients] == wanted
        if validation == "introspection":
            assert server.introspection_client == "calc-introspector"


def test_a_dev_password_default_only_for_a_server_on_this_machine() -> None:
    local = starter_realm("calc", "http://127.0.0.1:3000/mcp")
    remote = starter_realm("calc", "https://mcp.example.com/mcp")
    assert "{{ env.ALICE_PASSWORD | default('alice') }}" in local
    assert "{{" not in remote and "users:" not in remote.replace("# users:", "")


def test_init_writes_the_default_path_and_never_overwrites(tmp_path: Path) -> None:
    done = run("init", "--name", "calc", "--url", "http://localhost:3000/mcp", "--client", "vscode",
               "--client", "claude-code", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "realms" / "calc.yaml"
    text = written.read_text()
    assert "Wrote realms/calc.yaml" in done.stderr and done.stdout == ""
    assert "kcprov validate realms/calc.yaml" in text and "- preset: vscode" in text and "- preset: claude-code" in text
    assert run("validate", "realms/calc.yaml", cwd=tmp_path).returncode == 0
    again = run("init", "--name", "calc", "--url", "http://localhost:4000/mcp", cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert written.read_text() == text
    (tmp_path / "mine.yaml").write_text("hand-written\n")
    other = run("init", "--name", "calc", "--url", "http://localhost:3000/mcp", "-o", "mine.yaml", cwd=tmp_path)
    assert other.returncode == 1 and (tmp_path / "mine.yaml").read_text() == "hand-written\n"


def test_init_to_stdout(tmp_path: Path) -> None:
    done = run("init", "--name", "calc", "--url", "http://localhost:3000/mcp", "-o", "-", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == starter_realm("calc", "http://localhost:3000/mcp", path="FILE")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, code, message", [
    (["--name", "a b", "--url", "http://localhost:3000/mcp"], 1, "contains a space"),
    (["--name", "calc", "--url", "http://localhost:3000/mcp#frag"], 1, "has a fragment"),
    (["--name", "calc", "--url", "ftp://example.com/mcp"], 1, "not an absolute http(s) URL"),
    (["--name", "calc", "--url", "http://localhost/{{ env.HOME }}"], 1, "braces"),
    (["--name", "calc", "--url", "http://localhost/mcp\nrealm: x"], 1, "control characters"),
    (["--name", "a:b", "--url", "http://localhost/mcp"], 1, "--name (the realm's name too"),
    (["--name", "calc", "--url", "http://localhost/mcp", "--client", "windsurf"], 2, "choose from dcr"),
    (["--name", "calc", "--url", "http://localhost/mcp", "--validation", "opaque"], 2, "not jwt or introspection"),
], ids=["space in name", "fragment", "not http", "template in url", "newline in url", "realm name rules",
        "unknown client", "unknown validation"])
def test_bad_values_are_one_message(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    done = run("init", *args, "-o", "-", cwd=tmp_path)
    assert done.returncode == code and message in " ".join(done.stderr.split())
    assert done.stdout == "" and "Traceback" not in done.stderr


@pytest.mark.parametrize("url, validation", [
    ("http://localhost:3000/mcp", "jwt"),
    ("http://localhost:3000/mcp", "introspection"),
    ("https://mcp.example.com/mcp", "jwt"),
], ids=["loopback-jwt", "loopback-introspection", "remote-jwt"])
def test_init_validate_apply_then_the_plan_is_empty(kc_env: Any, realm_name: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, url: str, validation: str) -> None:
    monkeypatch.delenv("ALICE_PASSWORD", raising=False)
    clients = [arg for choice in CLIENT_CHOICES for arg in ("--client", choice)]
    steps = [
        ("init", "--name", "calc", "--realm", realm_name, "--url", url, *clients,
         "--validation", validation),
        ("validate", "realms/calc.yaml"),
        ("apply", "realms/calc.yaml", "--auto-approve"),
    ]
    for step in steps:
        done = run(*step, cwd=tmp_path)
        assert done.returncode == 0, f"kcprov {' '.join(step)}\n{done.stdout}\n{done.stderr}"
    again = run("plan", "realms/calc.yaml", "--detailed-exitcode", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr


def test_the_help_names_every_client_choice(tmp_path: Path) -> None:
    done = run("init", "--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert done.returncode == 0
    assert all(choice in done.stdout for choice in CLIENT_CHOICES)
