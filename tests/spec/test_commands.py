"""`validate` and `schema` as the user runs them: exit codes, output, no tracebacks, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from corpus import BAD, SECRET_VALUE

from kcprov.spec import load_realms, parse_var_options
from kcprov.spec.commands import validate_command

ROOT = Path(__file__).parents[2]
MANY = ROOT / "tests/spec/bad/many_errors.yaml"


def test_validate_ok(capsys):
    assert validate_command([ROOT / "realms/mcp-dev.yaml"], lambda files: load_realms(files, strict_secrets=True)) == 0
    assert "ok (realm mcp-dev)" in capsys.readouterr().out


def test_validate_reports_every_problem_in_file_line_column_form(capsys):
    assert validate_command([MANY, ROOT / "tests/spec/bad/bad_pkce.yaml"], load_realms) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 6
    assert any(line.endswith("many_errors.yaml:10:3: error: unknown key 'verify_emails'") for line in lines)
    assert "  hint: did you mean 'verify_email'?" in err
    assert "6 problems found." in err


def test_validate_with_vars(tmp_path, capsys):
    realm = tmp_path / "r.yaml"
    realm.write_text('realm: "{{ vars.name }}"\n', encoding="utf-8")
    assert validate_command([realm], lambda files: load_realms(files, parse_var_options(["name=from-cli"]))) == 0
    assert "realm from-cli" in capsys.readouterr().out


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCPROV_TEST_")}
    return subprocess.run(
        [sys.executable, "-c", "from kcprov.cli import main; main()", *args],
        cwd=ROOT, env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=60,
    )


def test_cli_validate_whole_bad_corpus_no_traceback_no_secret():
    result = run_cli("validate", "--strict-secrets", *map(str, BAD))
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output and SECRET_VALUE not in output
    assert "tests/spec/bad/unknown_client_key.yaml:6:5: error: unknown key 'clint_id'" in output


def test_cli_schema_is_json():
    result = run_cli("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "kcprov realm file"
