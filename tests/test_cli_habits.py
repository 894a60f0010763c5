"""What a command line is expected to do: --version, python -m, shell completion, NO_COLOR, -q and -v.

Each runs kcprov as a separate process (`python -m kcprov`, the way a user
or a shell's completion calls it), so nothing in-process hides a problem.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kcprov import KEYCLOAK_VERSION, __version__
from kcprov.spec.quiet import WARNINGS

ROOT = Path(__file__).resolve().parents[1]
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return subprocess.run([sys.executable, "-m", "kcprov", *args], env={**environment, **(env or {})},
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def colours(text: str) -> set[int]:
    """The colour codes of the SGR sequences in `text` (bold, dim, reset are not colour)."""
    found = set()
    for params in SGR.findall(text):
        codes = [int(p) for p in params.split(";") if p]
        found |= {c for c in codes if 30 <= c <= 49 or 90 <= c <= 107}
    return found


def test_version_names_kcprov_python_and_the_pinned_keycloak():
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"kcprov {__version__} (Python {platform.python_version()}, dev Keycloak {KEYCLOAK_VERSION})\n"


def test_python_m_kcprov_is_the_command_line():
    result = run("--help", env={"COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    assert "python -m kcprov" in result.stdout and "validate" in result.stdout
    result = run("no-such-command")
    assert result.returncode == 2 and "No such command" in result.stderr


def complete(**env: str) -> str:
    """What the installed completion function gets from `kcprov` on <TAB> (the script name matters: _KCPROV_COMPLETE)."""
    script = "import sys; sys.argv[0] = 'kcprov'; from kcprov.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_shell_completion():
    shown = run("--show-completion", "bash", env={"COLUMNS": "120"})
    assert shown.returncode == 0 and "complete" in shown.stdout
    assert "--install-completion" in run("--help", env={"COLUMNS": "120"}).stdout
    bash = {"_KCPROV_COMPLETE": "complete_bash"}
    assert complete(**bash, COMP_WORDS="kcprov pl", COMP_CWORD="1").split() == ["plan"]
    assert complete(**bash, COMP_WORDS="kcprov plan --quiet-warning dcr-def", COMP_CWORD="3").split() == [
        "dcr-default-scopes", "dcr-default-scope-audience"]
    # zsh shows what each id is about, one line per id
    zsh = complete(_KCPROV_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS="kcprov plan --quiet-warning ")
    assert len(zsh.strip().splitlines()) == len(WARNINGS)
    assert '"pkce-plain":"a client with pkce\\\\: plain"' in zsh


def test_no_color_is_honoured(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("realm: r\nclients:\n  - client_id: c\n    enabled: maybe\n")
    coloured = run("validate", str(bad), env={"FORCE_COLOR": "1"}, cwd=tmp_path)
    assert coloured.returncode == 1 and colours(coloured.stderr)  # the check can see colour
    for args in (["validate", str(bad)], ["--help"], ["plan", "--help"], ["plan", "--no-such-option"]):
        result = run(*args, env={"FORCE_COLOR": "1", "NO_COLOR": "1", "COLUMNS": "120"}, cwd=tmp_path)
        assert not colours(result.stdout + result.stderr), args


@pytest.mark.keycloak
def test_quiet_prints_only_the_summary_and_verbose_logs_requests(realm, keycloak, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(f"realm: {realm}\nroles:\n  - name: r1\nclients:\n  - client_id: c1\n    redirect_uris: ['https://app.example.com/*']\n")
    env = {"KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user, "KCPROV_PASSWORD": keycloak.password,
           "COLUMNS": "200"}
    full = run("plan", str(path), env=env, cwd=tmp_path)
    assert full.returncode == 0 and "warning:" in full.stdout and "+ role.r1" in full.stdout, full.stderr

    quiet = run("-q", "plan", str(path), env=env, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == f"Plan (realm '{realm}'): 2 to create, 0 to update, 0 to delete.\n"
    assert quiet.stderr == ""

    verbose = run("-v", "plan", str(path), env=env, cwd=tmp_path)
    assert verbose.returncode == 0 and verbose.stdout == full.stdout
    lines = verbose.stderr.splitlines()
    assert lines[0].startswith("POST /realms/master/protocol/openid-connect/token 200 ")  # the login
    assert all(re.fullmatch(r"(GET|POST|PUT|DELETE) /admin/\S+ \d{3} \d+ ms", line) for line in lines[1:]), lines
    assert f"POST /admin/realms/{realm}/partial-export 200" in verbose.stderr
    assert keycloak.password not in verbose.stderr and "Bearer" not in verbose.stderr and "eyJ" not in verbose.stderr

    silenced = run("plan", str(path), "--quiet-warning", "redirect-uri-wildcard", env=env, cwd=tmp_path)
    assert silenced.returncode == 0 and "warning:" not in silenced.stdout
