"""The plan/apply workflow for one realm file, shared by the CLI commands.

spec -> desired objects -> live state -> plan -> (apply). Also the saved-plan
format: a saved plan holds no secret; applying it recomputes the plan from the
same realm file and refuses if the live realm moved (stale) or the file's
changes differ from what was reviewed.

Adoption is explicit (kcprov.plan.adopt says why): a plan adopts the objects
the file names that exist but kcprov did not create only when asked
(`adopt=True`: `apply --adopt`); `kcprov adopt` plans the adoptions alone
(`changes=False`) and leaves every other change for the next apply.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from kcprov.errors import KcprovError
from kcprov.gcpause import collector_paused
from kcprov.keycloak import KeycloakClient
from kcprov.plan import Plan, compute_plan
from kcprov.resources import KINDS
from kcprov.spec.models import RealmSpec
from kcprov.state import LiveState, read_state

PLAN_FORMAT = "kcprov-plan/1"


@dataclass
class RealmRun:
    """Everything known about one realm file during a plan or apply."""

    spec: RealmSpec
    source: str
    desired: dict[str, dict[str, dict[str, Any]]]
    groups: dict[tuple[str, str], str]
    live: LiveState
    plan: Plan


def desired_objects(spec: RealmSpec) -> tuple[dict[str, dict[str, dict]], dict[tuple[str, str], str]]:
    """Flat desired objects per kind, and which MCP server each expanded object came from."""
    from kcprov.spec.expand import expand_mcp_servers

    expanded, groups = expand_mcp_servers(spec)
    return {kind.name: kind.desired(expanded) for kind in KINDS}, groups


def plan_realm(client: KeycloakClient, spec: RealmSpec, source: str, prune: bool = False,
               allow_admin_realm_changes: bool = False, adopt: bool = False, changes: bool = True,
               server_info: dict | None = None) -> RealmRun:
    """Plan one realm; refuses (SetupError) an MCP setup this Keycloak cannot serve, and
    (AdminRealmChange) a plan that could lock kcprov's own login out, unless allowed.

    `adopt` plans adoptions too; `changes=False` plans nothing else (`kcprov adopt`).
    `server_info`: Keycloak's server info when the caller already read it (many
    realms share one read, `kcprov.realms.plan_realms`); else read if the MCP setup needs it.
    """
    from kcprov.checks import raise_for_errors, warnings
    from kcprov.plan.adopt import adoptable, adoptions_only, with_adoptions
    from kcprov.plan.admin_realm import refuse_admin_realm_lockout
    from kcprov.plan.dcr import dcr_clients

    if spec.mcp_servers:
        server_info = server_info or client.server_info()
        raise_for_errors(spec, server_info, client.settings.url)
        notes = warnings(spec, server_info, client.settings.url)
    else:
        notes = warnings(spec, None, client.settings.url)  # the ones that need no server info (user attributes)
    with collector_paused():  # builds tens of thousands of dicts for a large realm (kcprov.gcpause says why)
        desired, groups = desired_objects(spec)
        live = read_state(client, spec.realm, desired, KINDS)
        live.warnings.extend(notes)
        plan = compute_plan(spec.realm, desired, live, KINDS, prune=prune, groups=groups, source=source)
    plan = with_adoptions(plan, adoptable(spec.realm, desired, live, KINDS), KINDS, groups, adopt)
    if not changes:
        plan = adoptions_only(plan)
    plan.dcr_clients = dcr_clients(live.raw.export, plan.unmanaged)
    login = client.settings
    service = bool(login.client_id and login.client_secret)
    refuse_admin_realm_lockout(plan, login.auth_realm,
                               f"service-account-{login.client_id}" if service else login.user,
                               login.client_id if service else None, KINDS, allow=allow_admin_realm_changes)
    return RealmRun(spec, source, desired, groups, live, plan)


def save_plans(output: str | os.PathLike[str] | TextIO, url: str, runs: list[RealmRun], prune: bool,
               adopt: bool = False) -> None:
    """Write a saved plan: reviewable JSON, no secret values (they show as `(sensitive)`).

    `output` is a text stream, ``"-"`` for standard output, or the operator's
    `-o PATH` (written by the path policy of `kcprov.fileio`: a regular file,
    in a directory that exists, atomically, mode 0600). A file named "-" is
    ``./-``.
    """
    from kcprov.fileio import write_output

    doc = {"format": PLAN_FORMAT, "keycloak_url": url, "prune": prune, "adopt": adopt,
           "plans": [r.plan.to_json() for r in runs]}
    text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    if hasattr(output, "write"):
        stream = output
    elif os.fspath(output) == "-":
        stream = sys.stdout
    else:
        write_output(output, text, origin="command-line", what="plan file")
        return
    stream.write(text)
    stream.flush()


def load_saved_plan(path: str | os.PathLike[str]) -> dict:
    """A saved plan's document, checked for the fields apply reads; KcprovError for anything else.

    The file is read through `read_input` (regular files only, size-capped):
    a saved plan may come from anyone who could write it.
    """
    from kcprov.fileio import read_input

    hint = "create one with `kcprov plan FILE -o plan.json`"
    raw = read_input(path, what="saved plan")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise KcprovError(f"{path}: not a readable saved plan ({exc.__class__.__name__}).", hint=hint) from None
    if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT:
        raise KcprovError(f"{path}: not a kcprov saved plan (format {PLAN_FORMAT} expected).", hint=hint)
    plans = doc.get("plans")
    fields = ("source", "state_fingerprint", "content_digest")
    flags_ok = all(isinstance(doc.get(flag, False), bool) for flag in ("prune", "adopt"))
    if (not flags_ok or not isinstance(plans, list) or not plans
            or not all(isinstance(p, dict) and all(isinstance(p.get(f), str) for f in fields) for p in plans)):
        raise KcprovError(f"{path}: a damaged saved plan (each plan needs {', '.join(fields)}).", hint=hint)
    return doc


def check_saved(saved: dict, run: RealmRun) -> None:
    """Refuse to apply a saved plan that no longer describes what apply would do."""
    plan = run.plan
    if saved["state_fingerprint"] != plan.state_fingerprint:
        raise KcprovError(
            f"saved plan for realm '{plan.realm}' is stale: the realm changed in Keycloak since it was made.",
            hint="run `kcprov plan` again, review it, and apply the new plan",
        )
    summary = saved.get("summary")
    reviewed = summary.get("adopt", 0) if isinstance(summary, dict) else 0
    if reviewed != plan.count("adopt"):
        raise KcprovError(
            f"saved plan for realm '{plan.realm}' adopts {reviewed} objects, this apply would adopt "
            f"{plan.count('adopt')}: adoptions are applied only as reviewed.",
            hint="apply the saved plan without --adopt, then run `kcprov adopt FILE` (it shows its own plan)",
        )
    if saved["content_digest"] != plan.content_digest():
        raise KcprovError(
            f"saved plan for realm '{plan.realm}' no longer matches {run.source}: the file (or its variables) changed since the plan was made.",
            hint="run `kcprov plan` again with the same --var/--var-file options, review it, and apply the new plan",
        )
