"""`kcprov export`: a live realm -> a short kcprov realm file that round-trips.

Read with the plan's bulk reads (`read_state`), compared with the baseline of
this Keycloak (`kcprov.export.baseline`: a new realm, and a bare object of
each kind as kcprov creates it), and written by each resource kind's
`export`. What is written (the contract `--all` changes):

- default: the fields of each object that differ from the baseline; objects a
  new realm has (built-ins) only when changed, and then only the changed
  fields; objects a new realm lacks always, with the fields that differ from a
  bare create of their kind.
- `--all`: every object, built-ins included, with every field its kind can
  write (a full snapshot; secrets are still only references).
- users: all of them with `include_users` (`--include users`), else only the
  ones kcprov owns (created or adopted): a file leaving those out would have
  the next plan delete them.

Round trip (tested against Keycloak): `plan` of the file against the realm is
empty, and applying it to a new realm and exporting that gives the same file
but for the realm name. What no kind can write is listed at the end of the
file and returned in `Export.not_exported`, never dropped silently. Secret
values exist only in `Export.secrets`, read only when asked for.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from kcprov import __version__
from kcprov.errors import KcprovError
from kcprov.export.baseline import baseline
from kcprov.export.check import drop_invalid
from kcprov.export.document import ExportContext
from kcprov.export.emit import emit, jinja_literal
from kcprov.export.unmodelled import not_modelled
from kcprov.keycloak import KeycloakClient
from kcprov.plan.diff import is_builtin
from kcprov.resources import KINDS, KINDS_BY_NAME
from kcprov.resources.base import Attrs, Kind
from kcprov.resources.users import user_record
from kcprov.state import LiveState, read_state


@dataclass
class Export:
    text: str  # the realm file
    not_exported: list[str]  # "kind 'name'" lines, sorted
    secrets: dict[str, str]  # env name -> value, filled only with with_secrets
    secret_names: dict[str, tuple[str, str]]  # env name -> (kind, key) it stands for


def export_realm(client: KeycloakClient, realm: str, *, include_users: bool = False, everything: bool = False,
                 with_secrets: bool = False, passes: Sequence[Callable[[ExportContext], None]] = ()) -> Export:
    """Export `realm`; `with_secrets` reads each referenced secret (one request per confidential client).

    `passes` run on the finished document before it is checked and written: each may fold
    primitives into higher-level keys (the `--mcp` recogniser turns scopes, mappers, clients
    and policies into `mcp_servers:` entries) and say why in `ctx.comments`/`ctx.not_exported`.
    """
    live = read_state(client, realm, {}, KINDS)
    if not live.exists:
        raise KcprovError(f"realm '{realm}' does not exist on {client.settings.url}.",
                          hint="check the name given to --realm (it is case-sensitive)")
    base = baseline(client).rebased(realm)
    if include_users:
        read_users(client, live)  # else only the users kcprov owns (read_state reads them): left out, a plan would delete them
    ctx = ExportContext(realm, live, everything, base.objects, base.export)
    ctx.doc["realm"] = realm
    for kind in KINDS:
        for key in sorted(live.objects.get(kind.name, {})):
            export_object(kind, key, live.objects[kind.name][key], base.templates.get(kind.name, {}), ctx)
        for key in sorted(set(base.objects.get(kind.name, {})) - set(live.objects.get(kind.name, {}))):
            parent = kind.parent(key)
            if kind.deletable and (parent is None or parent[1] in live.objects.get(parent[0], {})):
                ctx.not_exported(kind.label, key, "deleted here; a realm made from this file keeps Keycloak's")
    for kind, name in not_modelled(live.raw.export, base.export):
        ctx.not_exported(kind, name)
    for rewrite in passes:
        rewrite(ctx)
    drop_invalid(ctx)
    ctx.secrets = {n: (k, key) for n, (k, key) in ctx.secrets.items()
                   if k != "client" or key in ctx.doc.get("clients", {})}  # a pass may have folded a client away
    secrets = read_secrets(client, live, ctx) if with_secrets else {}
    skipped = sorted(ctx.skipped)
    text = emit(ctx.doc, ctx.comments, header(client, realm, base.version, ctx), footer(skipped))
    return Export(text, skipped, secrets, dict(ctx.secrets))


def export_object(kind: Kind, key: str, attrs: Attrs, template: Attrs, ctx: ExportContext) -> None:
    """Hand one live object to its kind with the fields worth writing (see the module docstring)."""
    parent = kind.parent(key)
    if parent in ctx.excluded:
        ctx.excluded.add((kind.name, key))  # goes with its parent (the mappers of a SAML client)
        return
    known = ctx.base(kind.name, key)
    builtin = known is not None or is_builtin(kind, key, ctx.realm, KINDS_BY_NAME)
    if builtin and known is None and not ctx.everything and not added_to_builtin(kind, key, ctx):
        return  # built into this realm, not into a new one (master's <realm>-realm clients)
    reference = template if known is None else known
    ctx.changed = {f for f, v in attrs.items() if v != reference.get(f)}
    fields = dict(attrs) if ctx.everything else {f: attrs[f] for f in ctx.changed}
    unset = [f for f, v in fields.items() if v is None]
    written = {f: v for f, v in fields.items() if v is not None}
    kcprov_sets = kind.create_defaults(key, {}, {}, ctx.live)  # fields whose create value is kcprov's choice
    for f in unset:
        del fields[f]
        would_be = kind.create_defaults(key, written, {}, ctx.live).get(f) if f in kcprov_sets else reference.get(f)
        if would_be is not None and would_be != kind.absent_means.get(f) and not ctx.everything:
            ctx.not_exported(kind.label, key, f"{f} is unset here, which a realm file cannot write "
                                              f"(kcprov's create sets {would_be!r})")
    if ctx.changed and refused(kind, key, ctx.realm):
        ctx.exclude(kind.name, key, kind.label,
                    f"changed ({', '.join(sorted(ctx.changed))}), but Keycloak refuses changes to it")
    elif fields or not builtin:
        kind.export(key, fields, ctx)


def added_to_builtin(kind: Kind, key: str, ctx: ExportContext) -> bool:
    """A child a new realm's built-in parent lacks (an audience mapper added to `basic`): the realm's own."""
    parent = kind.parent(key)
    return parent is not None and not kind.is_builtin(key, ctx.realm) and ctx.base(*parent) is not None


def refused(kind: Kind, key: str, realm: str) -> bool:
    """Keycloak refuses changes to the object or to what it belongs to (the roles of realm-management)."""
    return any(k.refuses_changes(k_key, realm) for k, k_key in lineage(kind, key))


def lineage(kind: Kind, key: str):
    """The object, its parent, the parent's parent, ... as (kind, key)."""
    while True:
        yield kind, key
        parent = kind.parent(key)
        if parent is None or parent[0] not in KINDS_BY_NAME:
            return
        kind, key = KINDS_BY_NAME[parent[0]], parent[1]


def read_users(client: KeycloakClient, live: LiveState) -> None:
    """Every user but service accounts (their clients export them), with role mappings and groups: two requests
    per user."""
    for rep in client.users(live.realm):
        if rep.get("serviceAccountClientId"):
            continue
        live.raw.users[rep["username"]] = user_record(client, live.realm, rep, with_groups=True)
    live.objects["user"] = KINDS_BY_NAME["user"].live(live.raw)


def read_secrets(client: KeycloakClient, live: LiveState, ctx: ExportContext) -> dict[str, str]:
    clients = {c["clientId"]: c for c in live.raw.export.get("clients", [])}
    out = {}
    for name, (kind, key) in sorted(ctx.secrets.items()):
        if kind == "client" and key in clients:
            value = client.client_secret(live.realm, clients[key]["id"], key)
            if value:
                out[name] = value
    return out


def export_date() -> str:
    """The day of the export (UTC); SOURCE_DATE_EPOCH, when set, pins it (reproducible builds' convention)."""
    stamp = os.environ.get("SOURCE_DATE_EPOCH", "")
    seconds = int(stamp) if stamp.isdigit() else time.time()
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def header(client: KeycloakClient, realm: str, version: str, ctx: ExportContext) -> list[str]:
    lines = [
        f"Realm '{realm}' exported by kcprov {__version__} from {without_userinfo(client.settings.url)} "
        f"(Keycloak {version}) on {export_date()}.",
        "Only what differs from a new realm is written; built-in objects only where changed.",
        "Check it matches the realm:  kcprov plan --detailed-exitcode FILE  (exit 0: in sync)",
    ]
    if ctx.secrets:
        lines.append("Secrets are read from environment variables (kcprov export --secrets-env FILE writes them):")
        lines += [f"  {name}: secret of {kind} '{key}'" for name, (kind, key) in sorted(ctx.secrets.items())]
    return [comment_text(line) for line in lines]


def footer(skipped: list[str]) -> list[str]:
    if not skipped:
        return []
    return ["Not exported: kcprov cannot model these yet (they stay as they are in Keycloak):",
            *(f"  {comment_text(line)}" for line in skipped)]


def without_userinfo(url: str) -> str:
    """The URL without a `user:password@` part, which must not end up in a file."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


def comment_text(text: str) -> str:
    """One YAML comment line that renders to itself: no line breaks or control characters, no Jinja openings."""
    shown = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
    return jinja_literal(shown)
