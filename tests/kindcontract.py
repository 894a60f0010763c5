"""The contract every resource kind keeps against the real Keycloak, as one reusable check.

Issue 12's list for each kind: it applies from an empty realm, a second plan is
empty, a single edit of the file gives exactly one change, removing it from the
file deletes only what kcprov owns, and `kcprov export` round-trips it. The CLI
runs as a subprocess, as a user runs it; no output may carry a secret.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[1]

Change = tuple[str, str, str]  # (action, kind, key)


def kcprov(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kcprov.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def cli_env(keycloak, **extra: str) -> dict:
    return {**os.environ, "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user,
            "KCPROV_PASSWORD": keycloak.password, "NO_COLOR": "1", "COLUMNS": "200", **extra}


def ok(result: subprocess.CompletedProcess, *secrets: str) -> subprocess.CompletedProcess:
    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    assert "Traceback" not in text, text
    for secret in secrets:
        assert secret not in text, "a secret leaked into the output"
    return result


def planned(path: Path, env: dict, *secrets: str, extra=()) -> list[Change]:
    """The plan's changes as (action, kind, key), from `kcprov plan --json`."""
    result = ok(kcprov("plan", str(path), "--json", *extra, env=env, cwd=path.parent), *secrets)
    doc = json.loads(result.stdout)
    return [(c["action"], c["kind"], c["key"]) for plan in doc["plans"] for c in plan["changes"]]


def without_realm(text: str, realm: str) -> str:
    """The file with the realm's name (and its upper-case form in secret names) replaced."""
    upper = re.sub(r"[^A-Za-z0-9]+", "_", realm).upper()
    return text.replace(realm, "<realm>").replace(upper, "<REALM>")


def modelled(text: str) -> str:
    return text.split("\n# Not exported:")[0]


def round_trip(tmp_path: Path, env: dict, realm: str, copy_realm: str, *secrets: str, extra=()) -> str:
    """Export, plan (exit 0), apply to a new realm, export that: the same file. Returns the first export."""
    ok(kcprov("export", "--realm", realm, "-o", "first.yaml", "--secrets-env", "first.env", *extra,
              env=env, cwd=tmp_path), *secrets)
    text = (tmp_path / "first.yaml").read_text()
    env_file = tmp_path / "first.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    with_secrets = {**env, **{k: v for k, v in dotenv_values(env_file).items() if v is not None}}
    ok(kcprov("plan", "first.yaml", "--detailed-exitcode", env=with_secrets, cwd=tmp_path), *secrets)
    (tmp_path / "copy.yaml").write_text(re.sub(r"(?m)^realm: .*$", f"realm: {copy_realm}", text, count=1))
    ok(kcprov("apply", "copy.yaml", "--auto-approve", "--no-env", env=with_secrets, cwd=tmp_path), *secrets)
    ok(kcprov("export", "--realm", copy_realm, "-o", "second.yaml", *extra, env=env, cwd=tmp_path), *secrets)
    # what kcprov cannot model is not in the copy: the files differ by the list of it at their end only
    assert without_realm(modelled((tmp_path / "second.yaml").read_text()), copy_realm) == \
        without_realm(modelled(text), realm)
    for secret in secrets:
        assert secret not in text
    return text


def check_kind(tmp_path: Path, env: dict, realm: str, copy_realm: str, text: str, *,
               edit: Callable[[str], str], edited: Change,
               remove: Callable[[str], str], removed: list[Change], secrets: tuple[str, ...] = ()) -> str:
    """Issue 12's contract for one kind; `text` is a realm file whose `realm:` line is `realm: REALM`.

    `edit` makes one edit, which must plan as exactly `edited`; `remove` takes the kind's
    entries out of the edited file, which must plan as exactly the deletes `removed` (what
    kcprov owns, nothing it does not). The round trip runs on the realm before the removal.
    Returns the export.
    """
    work = tmp_path / "contract"
    work.mkdir()
    path = work / "realm.yaml"
    path.write_text(text.replace("realm: REALM", f"realm: {realm}", 1))
    ok(kcprov("apply", str(path), "--auto-approve", "--no-env", env=env, cwd=work), *secrets)
    assert planned(path, env, *secrets) == [], "the second plan is not empty"

    path.write_text(edit(path.read_text()))
    assert planned(path, env, *secrets) == [edited]
    ok(kcprov("apply", str(path), "--auto-approve", "--no-env", env=env, cwd=work), *secrets)
    assert planned(path, env, *secrets) == []

    exported = round_trip(work, env, realm, copy_realm, *secrets)

    path.write_text(remove(path.read_text()))
    assert sorted(planned(path, env, *secrets)) == sorted(removed)
    ok(kcprov("apply", str(path), "--auto-approve", "--no-env", env=env, cwd=work), *secrets)
    assert planned(path, env, *secrets) == []
    return exported
