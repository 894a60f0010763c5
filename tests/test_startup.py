"""Start-up: a command imports only what it needs.

`kcprov validate` and `kcprov --help` run in pre-commit hooks and CI loops
hundreds of times a day, so their cost is mostly Python importing modules.
These tests pin which heavy libraries stay out of those commands (no timing:
the list of imported modules is what decides the start-up time, and it does
not depend on the machine's load).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Run `kcprov ARGS` in a fresh interpreter, then write the names of the imported modules.
_PROBE = """
import json, sys
out, args = sys.argv[1], sys.argv[2:]
sys.argv = ["kcprov", *args]
from kcprov.cli import main
try:
    main()
except SystemExit:
    pass
with open(out, "w") as fh:
    json.dump(sorted(sys.modules), fh)
"""

HTTP = {"keycloak", "requests", "httpx", "urllib3"}  # talking to Keycloak (or downloading it)

PLAIN_REALM = """\
realm: startup-probe
roles:
  - name: mcp-user
clients:
  - client_id: app
    redirect_uris: [http://localhost:3000/callback]
"""


def imported(tmp_path: Path, *args: str) -> set[str]:
    """The modules `kcprov ARGS` imported: packages by their top-level name, kcprov's modules in full."""
    out = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", _PROBE, str(out), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert out.exists(), done.stderr
    names = json.loads(out.read_text())
    return {name if name.startswith("kcprov") else name.partition(".")[0] for name in names}


@pytest.mark.parametrize("args", [["--help"], ["--version"]], ids=" ".join)
def test_top_level_help_imports_no_http_templating_or_validation(tmp_path: Path, args: list[str]) -> None:
    modules = imported(tmp_path, *args)
    assert not modules & (HTTP | {"jinja2", "pydantic", "ruamel", "yaml"})
    assert "kcprov.cli" in modules  # the probe ran the command line


@pytest.mark.parametrize("args", [["plan", "--help"], ["apply", "--help"], ["dev", "--help"], ["init", "--help"]],
                         ids=" ".join)
def test_command_help_builds_no_realm_models(tmp_path: Path, args: list[str]) -> None:
    """Typer checks the top-level options with pydantic before a command's --help; kcprov's models stay unbuilt."""
    modules = imported(tmp_path, *args)
    assert not modules & (HTTP | {"jinja2", "ruamel", "yaml", "kcprov.spec.models", "kcprov.plan"})


def test_validate_of_a_plain_file_imports_no_http_or_templating(tmp_path: Path) -> None:
    (tmp_path / "realm.yaml").write_text(PLAIN_REALM)
    modules = imported(tmp_path, "validate", "realm.yaml")
    assert not modules & (HTTP | {"jinja2"})
    assert "pydantic" in modules  # it did validate


def test_validate_of_a_template_loads_jinja(tmp_path: Path) -> None:
    (tmp_path / "realm.yaml").write_text(PLAIN_REALM.replace("startup-probe", "{{ vars.name }}"))
    modules = imported(tmp_path, "validate", "realm.yaml", "--var", "name=startup-probe")
    assert "jinja2" in modules
    assert not modules & HTTP
