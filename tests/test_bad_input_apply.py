"""Bad realm files given to `plan` and `apply` change nothing in Keycloak.

Every file of the bad-input corpus (tests/spec/bad) goes to one `kcprov apply
--auto-approve` and one `kcprov plan` against the real Keycloak: both exit 1
with file:line problems and no traceback; an existing realm the files are
aimed at is exactly as before (partial export compared), and no realm any
file names was created.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.keycloak

BAD = Path(__file__).parent / "spec" / "bad"


def snapshot(keycloak, realm: str) -> tuple[list[str], dict]:
    admin = keycloak.admin()
    names = sorted(r["realm"] for r in admin.get_realms())
    export = keycloak.admin(realm).connection.raw_post(
        f"/admin/realms/{realm}/partial-export?exportClients=true&exportGroupsAndRoles=true", data="{}").json()
    return names, export


def test_plan_and_apply_of_the_whole_bad_corpus_change_nothing(tmp_path, keycloak, realm):
    files = sorted(p for p in BAD.iterdir() if p.suffix == ".yaml")
    work = tmp_path / "work"
    work.mkdir()
    for path in files:  # aim every file at an existing realm, so a slip would land somewhere visible
        data = path.read_bytes().replace(b"realm: x\n", f"realm: {realm}\n".encode())
        (work / path.name).write_bytes(data)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KCPROV_TEST_")},
           "KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user, "KCPROV_PASSWORD": keycloak.password,
           "NO_COLOR": "1", "COLUMNS": "200"}
    before = snapshot(keycloak, realm)
    for command in (["apply", "--auto-approve"], ["plan"]):
        done = subprocess.run([sys.executable, "-m", "kcprov.cli", *command, *(p.name for p in files)], cwd=work,
                              env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
        assert "Traceback" not in done.stdout + done.stderr
        assert ": error: " in done.stderr
    names_after, export_after = snapshot(keycloak, realm)
    assert export_after == before[1]
    named = {line.split(b":", 1)[1].strip().decode(errors="replace")
             for p in files for line in p.read_bytes().splitlines() if line.startswith(b"realm:")}
    assert not (set(names_after) - set(before[0])) & named  # (other tests may make realms meanwhile)
