"""Round trip of `kcprov export` on realm files kcprov did not write.

Not a test (tests/test_export_roundtrip.py runs a sample of the same steps):
it prints a table and writes ``bench/results/export_roundtrip.json``.

For each public realm representation in the corpus folder (env
KCPROV_REALM_CORPUS, default /work/realm-corpus; the files are not part of this
repository, see that folder's MANIFEST.md for where each came from):

1. rename the realm to a fresh name (`prepare`), ``POST /admin/realms`` it;
   a file Keycloak refuses is counted as refused, with Keycloak's reason;
2. ``kcprov export`` it (secrets to a ``--secrets-env`` file);
3. ``kcprov apply`` that export, renamed, to a second fresh realm, with the
   secrets file's variables in the environment;
4. export the second realm and compare the two exports with the realm names
   normalised (`compare`).

A file round-trips fully when the exports are identical and the first export
lists nothing as not modelled. Every realm made is deleted at the end, even
when a step fails. kcprov runs as a subprocess in a private working directory,
as a user runs it, so a crash shows as a traceback in its output (counted as
failed), never as a crash of this script.

Needs a running Keycloak: KCPROV_URL / KCPROV_USER / KCPROV_PASSWORD.

    python bench/export_roundtrip.py [--corpus DIR] [--only 07,38] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from keycloak.exceptions import KeycloakError
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
CORPUS_ENV = "KCPROV_REALM_CORPUS"
DEFAULT_CORPUS = Path("/work/realm-corpus")
RESULTS = ROOT / "bench" / "results" / "export_roundtrip.json"
KCPROV_TIMEOUT_S = 600  # a large realm's apply on a loaded 2-core machine takes minutes

# Keys of a realm representation that Keycloak 26.7.3's POST /admin/realms cannot
# take, each with why. Everything else in a file is sent as it is.
NOT_POSTABLE = {
    "userProfile": "a keycloak-config-cli extension, not a field of RealmRepresentation",
    "certificate": "the realm certificate of a 2016 test file expired on 2026-01-14; Keycloak"
                   " refuses an expired one (ComponentValidationException) and makes a new one"
                   " from privateKey without it",
}
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def corpus_folder() -> Path:
    return Path(os.environ.get(CORPUS_ENV) or DEFAULT_CORPUS)


def corpus_files(folder: Path) -> list[Path]:
    """The corpus's realm files, in name order (manifest.json is the corpus's index, not a realm)."""
    return sorted(p for p in folder.glob("*.json") if p.name != "manifest.json")


def fresh_name(stem: str) -> str:
    """A realm name of a fixed shape (so no name is a prefix of another one)."""
    return f"rt-{stem[:2]}-{secrets.token_hex(4)}"


def prepare(representation: dict[str, Any], name: str) -> tuple[dict[str, Any], list[str]]:
    """The representation as a POST for a realm called ``name``, and what was dropped (and why).

    The realm name is changed where Keycloak derives it or a built-in object
    names it: the ``realm`` key, the default roles ``default-roles-<old>``, and
    the ``/realms/<old>/`` and ``/admin/<old>/`` paths of the built-in clients'
    URLs; the rest keeps the old name. Every UUID is replaced by a fresh one,
    consistently across the file (ids are global in Keycloak's database, so the
    same file could not be posted twice, and a realm id is referenced by its
    components' ``parentId``); a realm id that is not a UUID becomes the new name.
    """
    old = representation["realm"]
    dropped = [f"{key}: {why}" for key, why in NOT_POSTABLE.items() if key in representation]
    kept = {key: value for key, value in representation.items() if key not in NOT_POSTABLE}
    fresh_ids: dict[str, str] = {}
    text = UUID.sub(lambda m: fresh_ids.setdefault(m.group(0), str(uuid.uuid4())), json.dumps(kept))
    old_json = json.dumps(old)[1:-1]
    for before, after in ((f"default-roles-{old_json}", f"default-roles-{name}"),
                          (f"/realms/{old_json}/", f"/realms/{name}/"),
                          (f"/admin/{old_json}/", f"/admin/{name}/")):
        text = text.replace(before, after)
    prepared = json.loads(text)
    prepared["realm"] = name
    if prepared.get("id") == old:
        prepared["id"] = name
        _replace_parent_id(prepared, old, name)
    return prepared, dropped


def _replace_parent_id(node: Any, old: str, new: str) -> None:
    """Components name their realm by its id in ``parentId``: follow a renamed non-UUID realm id."""
    if isinstance(node, dict):
        if node.get("parentId") == old:
            node["parentId"] = new
        for value in node.values():
            _replace_parent_id(value, old, new)
    elif isinstance(node, list):
        for value in node:
            _replace_parent_id(value, old, new)


def load_representation(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class Outcome:
    """What happened to one corpus file. ``status``: full (identical exports, nothing not modelled),
    partial (identical exports, but the export lists objects it cannot model), differs (the exports
    differ), refused (by Keycloak's POST) or failed (a kcprov step exited non-zero or crashed:
    ``detail`` says which and its last output lines)."""

    file: str
    source_realm: str
    status: str = "failed"
    detail: str = ""
    dropped: list[str] = field(default_factory=list)
    not_modelled: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    differences: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    secrets_match: bool | None = None  # every secret of the first export comes back, same value, from the second
    leaked_secrets: list[str] = field(default_factory=list)  # where a known secret showed up (never the value)
    export_lines: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def not_modelled_kinds(self) -> list[str]:
        return sorted({kind for kind, _ in self.not_modelled})


SECRET_KEYS = {"secret", "clientSecret", "password", "bindCredential"}
SHORTEST_SECRET = 10  # shorter test secrets ("password", "secret") are words an export holds anyway


def known_secrets(representation: dict[str, Any]) -> set[str]:
    """The secret values a realm representation holds (client secrets, IdP and SMTP passwords, LDAP bind
    credentials), to check that no export and no output carries one. A value the representation also
    holds as something else (a public client whose "secret" is its own client id) is no secret."""
    secret_values: set[str] = set()
    other_values: set[str] = set()

    def walk(node: Any, under_secret: bool) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, key in SECRET_KEYS)
        elif isinstance(node, list):
            for value in node:
                walk(value, under_secret)
        elif isinstance(node, str):
            (secret_values if under_secret else other_values).add(node)

    walk(representation, False)
    return {v for v in secret_values - other_values if len(v) >= SHORTEST_SECRET and set(v) != {"*"}}


def admin_from_environment() -> KeycloakAdmin:
    """The master realm's admin, from KCPROV_URL / KCPROV_USER / KCPROV_PASSWORD (as kcprov reads them)."""
    connection = KeycloakOpenIDConnection(
        server_url=os.environ["KCPROV_URL"], username=os.environ.get("KCPROV_USER", "admin"),
        password=os.environ["KCPROV_PASSWORD"], realm_name="master", client_id="admin-cli",
        timeout=KCPROV_TIMEOUT_S,
    )
    return KeycloakAdmin(connection=connection)


def kcprov(args: Iterable[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """kcprov as a user runs it: a process of its own, in ``cwd`` (its working tree)."""
    return subprocess.run([sys.executable, "-m", "kcprov.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=KCPROV_TIMEOUT_S)


FAILURE_LINE = re.compile(r"\berror\b|^\s*failed |Traceback|Error:")


class StepFailed(Exception):
    """A kcprov step exited non-zero; the message names the step and ends with its output."""


def run_step(step: str, args: list[str], env: dict[str, str], cwd: Path,
             outputs: list[subprocess.CompletedProcess[str]]) -> subprocess.CompletedProcess[str]:
    try:
        result = kcprov(args, env, cwd)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"{step} did not finish in {KCPROV_TIMEOUT_S} s") from None
    outputs.append(result)
    output = result.stdout + result.stderr
    if result.returncode != 0 or "Traceback" in output:
        lines = output.strip().splitlines()
        reasons = [line.strip() for line in lines if FAILURE_LINE.search(line)][:4] or lines[-6:]
        raise StepFailed(f"{step} exited {result.returncode}: " + " | ".join(reasons))
    return result


def export_realm(realm: str, workdir: Path, env: dict[str, str], label: str,
                 outputs: list[subprocess.CompletedProcess[str]]) -> tuple[str, dict[str, str]]:
    """``kcprov export`` of ``realm``: the file's text and the secrets it wrote to its env file."""
    target, secrets_file = f"{label}.yaml", f"{label}.secrets.env"
    run_step(f"export {label}", ["export", "--realm", realm, "-o", target, "--secrets-env", secrets_file],
             env, workdir, outputs)
    found = workdir / secrets_file
    values = dotenv_values(found) if found.exists() else {}
    return (workdir / target).read_text(encoding="utf-8"), {k: v for k, v in values.items() if v is not None}


def renamed(export_text: str, old: str, new: str) -> str:
    """The export for realm ``new``: every mention of the (fresh, random) old name changed."""
    return export_text.replace(old, new)


def normalised(export_text: str, realm: str) -> str:
    """The export with its realm name, and the name as it appears in a variable name, made neutral."""
    variable_form = re.sub(r"[^A-Za-z0-9]", "_", realm).upper()
    return export_text.replace(realm, "<realm>").replace(variable_form, "<REALM>")


NOT_MODELLED_ENTRY = re.compile(r"^#\s*(?P<kind>[A-Za-z][\w -]*?) '(?P<name>.*?)'(?::\s.*)?$")


def not_modelled(export_text: str) -> list[tuple[str, str]]:
    """The (kind, name) entries of the comment block that ends an export: what kcprov cannot model yet
    (written by the exporter as ``#   <kind> '<name>'[: why]``)."""
    block: list[str] = []
    for line in reversed(export_text.rstrip().splitlines()):
        if not line.startswith("#"):
            break
        block.append(line)
    return [(m["kind"], m["name"]) for m in map(NOT_MODELLED_ENTRY.match, reversed(block)) if m]


IDENTITY_KEYS = ("name", "client_id", "alias", "username", "type")


def differences(first: Any, second: Any, path: str = "") -> list[str]:
    """Paths at which two parsed exports differ; list items with a name (client_id, alias...) are
    matched by it, so one changed client is one path, not a shifted list."""
    if isinstance(first, dict) and isinstance(second, dict):
        found = []
        for key in sorted(set(first) | set(second), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in first or key not in second:
                found.append(f"{where} ({'only second' if key not in first else 'only first'})")
            else:
                found.extend(differences(first[key], second[key], where))
        return found
    if isinstance(first, list) and isinstance(second, list):
        first_items, second_items = _by_identity(first), _by_identity(second)
        if first_items is not None and second_items is not None:
            return differences(first_items, second_items, path)
    return [] if first == second else [path or "<whole file>"]


def _by_identity(items: list[Any]) -> dict[str, Any] | None:
    for key in IDENTITY_KEYS:
        if items and all(isinstance(i, dict) and key in i for i in items):
            names = [str(i[key]) for i in items]
            if len(set(names)) == len(names):
                return {f"[{name}]": item for name, item in zip(names, items)}
    return None


def unexplained(found: list[str], entries: list[tuple[str, str]]) -> list[str]:
    """The differences at no object the export lists as not modelled (a difference inside
    ``clients[x]`` is explained when an entry names ``x``)."""
    names = {name for _, name in entries}
    return [where for where in found
            if not any(f"[{name}]" in where for name in names)]


def round_trip(admin: KeycloakAdmin, path: Path, workdir: Path, env: dict[str, str]) -> Outcome:
    """One corpus file through POST, export, apply, export; every realm made is deleted (finally)."""
    representation = load_representation(path)
    outcome = Outcome(file=path.name, source_realm=representation["realm"])
    first, second = fresh_name(path.stem), fresh_name(path.stem)
    prepared, outcome.dropped = prepare(representation, first)
    outputs: list[subprocess.CompletedProcess[str]] = []
    made: list[str] = []
    try:
        start = time.perf_counter()
        try:
            admin.create_realm(prepared)
        except KeycloakError as exc:
            outcome.status = "refused"
            outcome.detail = f"{exc.response_code}: {_error_text(exc)}"
            return outcome
        made.append(first)
        outcome.seconds["post"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        first_text, first_secrets = export_realm(first, workdir, env, "first", outputs)
        outcome.seconds["export"] = round(time.perf_counter() - start, 2)
        outcome.export_lines = len(first_text.splitlines())
        outcome.not_modelled = not_modelled(first_text)
        (workdir / "second.yaml").write_text(renamed(first_text, first, second), encoding="utf-8")
        start = time.perf_counter()
        made.append(second)
        run_step("apply of the export", ["apply", "second.yaml", "--auto-approve"],
                 {**env, **first_secrets}, workdir, outputs)
        outcome.seconds["apply"] = round(time.perf_counter() - start, 2)
        second_text, second_secrets = export_realm(second, workdir, env, "again", outputs)
        outcome.secrets_match = _named_for(first_secrets, first).items() <= _named_for(second_secrets, second).items()
        yaml = YAML(typ="safe", pure=True)
        outcome.differences = differences(yaml.load(normalised(first_text, first)),
                                          yaml.load(normalised(second_text, second)))
        outcome.unexplained = unexplained(outcome.differences, outcome.not_modelled)
        outcome.status = "differs" if outcome.differences else "partial" if outcome.not_modelled else "full"
    except StepFailed as exc:
        outcome.detail = str(exc)
    finally:
        for realm in made:
            delete_realm(admin, realm)
        outcome.leaked_secrets = leaks(known_secrets(prepared), workdir, outputs)
    return outcome


def leaks(values: set[str], workdir: Path, outputs: list[subprocess.CompletedProcess[str]]) -> list[str]:
    """Where one of ``values`` shows up: a file the run left in ``workdir`` other than the secrets env
    files (whose job is to hold them), or the output of a step (numbered from 1)."""
    texts = {p.name: p.read_text(encoding="utf-8", errors="replace")
             for p in workdir.iterdir() if p.is_file() and not p.name.endswith(".secrets.env")}
    texts.update({f"output of step {n}": r.stdout + r.stderr for n, r in enumerate(outputs, 1)})
    return sorted({where for where, text in texts.items() for value in values if value in text})


def _named_for(values: dict[str, str], realm: str) -> dict[str, str]:
    """Secrets by variable name with the realm's part normalised (the exporter puts the realm in the name)."""
    return {normalised(name, realm): value for name, value in values.items()}


def _error_text(exc: KeycloakError) -> str:
    message = exc.error_message
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return text[:300]


def delete_realm(admin: KeycloakAdmin, realm: str) -> None:
    """Delete ``realm``; one already gone is fine."""
    try:
        admin.delete_realm(realm)
    except KeycloakError as exc:
        if exc.response_code != 404:
            raise


def run_corpus(admin: KeycloakAdmin, files: Iterable[Path], env: dict[str, str]) -> list[Outcome]:
    outcomes = []
    for path in files:
        with tempfile.TemporaryDirectory(prefix="kcprov-roundtrip-") as workdir:
            outcome = round_trip(admin, path, Path(workdir), env)
        outcomes.append(outcome)
        print(f"{outcome.file:45} {outcome.status:8} {outcome.detail[:100]}", file=sys.stderr, flush=True)
    return outcomes


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """The figures for the README: counts by status, and the not-modelled kinds that keep the
    other files from a full round trip (each kind counted once per file)."""
    by_status = Counter(o.status for o in outcomes)
    blocking = Counter(kind for o in outcomes if o.status in ("partial", "differs") for kind in o.not_modelled_kinds)
    return {
        "files": len(outcomes),
        "full": by_status["full"],
        "partial": by_status["partial"],
        "differs": by_status["differs"],
        "refused": by_status["refused"],
        "failed": by_status["failed"],
        "differs_unexplained": sum(1 for o in outcomes if o.unexplained),
        "secret_leaks": sum(1 for o in outcomes if o.leaked_secrets),
        "blocking_kinds": dict(blocking.most_common()),
    }


def print_table(outcomes: list[Outcome], figures: dict[str, Any]) -> None:
    print(f"{'file':45} {'status':8} {'lines':>5} {'diffs':>5} {'unexpl':>6}  not modelled / reason")
    for o in outcomes:
        why = o.detail if o.status in ("refused", "failed") else ", ".join(o.not_modelled_kinds)
        print(f"{o.file:45} {o.status:8} {o.export_lines:5} {len(o.differences):5} {len(o.unexplained):6}  {why[:110]}")
    print()
    print(f"{figures['files']} files: {figures['full']} round-trip fully, {figures['partial']} give identical"
          f" exports that list objects as not modelled, {figures['differs']} give differing exports"
          f" ({figures['differs_unexplained']} with a difference not listed as not modelled),"
          f" {figures['refused']} refused by Keycloak, {figures['failed']} failed in kcprov;"
          f" {figures['secret_leaks']} with a secret in an export or an output")
    print("not-modelled kinds that keep files from a full round trip (files):")
    for kind, count in figures["blocking_kinds"].items():
        print(f"  {count:3}  {kind}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=corpus_folder())
    parser.add_argument("--only", default="", help="comma-separated file-name prefixes, e.g. 07,38")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    files = corpus_files(args.corpus)
    if args.only:
        files = [p for p in files if p.name.startswith(tuple(args.only.split(",")))]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    start = time.perf_counter()
    outcomes = run_corpus(admin_from_environment(), files, env)
    figures = {**summary(outcomes), "seconds": round(time.perf_counter() - start, 1)}
    print_table(outcomes, figures)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"summary": figures, "files": [asdict(o) for o in outcomes]}, indent=2) + "\n")
    print(f"\nwritten: {args.json} ({figures['seconds']} s)")


if __name__ == "__main__":
    main()
