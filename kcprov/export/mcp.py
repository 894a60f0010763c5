"""`kcprov export --mcp`: MCP server setups among a realm file's primitives, written back as `mcp_servers:` entries.

`recognise_mcp_servers(realm, live=...)` is pure. `realm` is realm-file data
(plain dicts and lists; named entries may also be held as {identity: entry},
as the exporter's document holds them while it is filled). It returns the data
with the recognised primitives removed and `mcp_servers:` entries added, and
notes: why each candidate stays as primitives, and what an entry cannot say.

The contract: the rewritten data and the input manage the same objects with
the same values (`kcprov.workflow.desired_objects`), so a plan of either
against the realm is the same. Nothing is guessed: each candidate entry is
expanded by `kcprov.spec.expand` itself (its preset table, names and
defaults, not a copy of them) and kept only when the expansion gives back
exactly the primitives it replaces; a field the data leaves out (the exporter
writes only what differs from a new realm) counts as equal when `live`, the
realm's flat objects, holds the value the expansion would write. What one
entry is made of, and how it is found:

* the server: a client `<name>-resource` with a `resource_url` attribute, and
  the client scopes whose `mcp-resource-audience` mapper names that client
  (their consent texts are the entry's scopes). `mcp-audience` mappers on them
  make the binding `mapper` (`mcp-audience-2`... give `extra_audiences`),
  else `resource-indicators`. A scope with an audience mapper but no such
  client, or a resource_url client named otherwise, is named in a note;
* the realm's `mcp-pkce` profile and policy and the token settings every
  expansion sets (refresh token rotation, 300 s access tokens) are implied by
  any entry: without them no entry is equivalent, and the note says which one
  differs. A lifespan other than 300 s stays in `settings` (a realm setting
  wins over the expansion's, and says the same more plainly);
* admin_role: non-base scopes with `scope_roles: {realm: [ROLE]}` and the
  `mcp-realm-roles` mapper;
* introspection: a service-account client with
  `allow.token.introspection.without.audience.check` whose default scopes hold
  one of the server's scopes (that scope is the base scope);
* dcr: every server whose scopes (and `offline_access`) the anonymous
  registration policy allows; `mcp-inspector` when it allows the Inspector's
  origin. The policy's other options stay in `client_registration`;
* cimd: each `client-id-metadata-document` profile/policy pair named
  `<server>-<kind>` goes to the servers its resource allow list names, as the
  preset of that name or, for `<server>-cimd`, a `cimd:` entry with its
  executor's settings; `<server>-claude` is the claude-code + claude-desktop
  pair. A pair whose settings are not the preset's stays as primitives.

Where an entry differs from a hand-written one: the base scope comes first,
then the others in the data's order; defaults (`token_validation: jwt`,
`audience_binding: mapper`) are left out; registration options stay in
`client_registration` with an empty `dcr: {}`; a preset shared by two
servers is on both. Keycloak stores neither tool names nor env files: an
admin scope is required by one placeholder tool named after it
(`tool_scopes: {mcp:admin: mcp:admin}`) and `env_file` is missing (both
said in a note). Pre-registered `client:` entries stay plain clients, and a
generated client keeps a stub entry with its `secret:` reference (expansion
writes no secret, and the file managed it).

Each server is tried alone first, then with each of its parts (admin role,
introspection), then the realm-wide parts (DCR, each CIMD pair): a part that
does not fit stays as primitives with its note, the rest is still recognised.
`fold_mcp_servers` is the export pass behind `kcprov export --mcp`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from kcprov.export.check import as_loaded, drop_invalid
from kcprov.export.document import ExportContext
from kcprov.resources import KINDS_BY_NAME
from kcprov.resources.base import text
from kcprov.resources.scopes import AUDIENCE_MAPPER as AUDIENCE_MAPPER_TYPE, mapper_attrs
from kcprov.mcp_clients import CIMD_PRESETS, INSPECTOR_ORIGIN
from kcprov.spec.expand import (
    AUDIENCE_MAPPER,
    CIMD_ACCEPT_PUBLIC_CONFIDENTIAL_GRANTS,
    CIMD_ALLOW_HTTP,
    CIMD_EXECUTOR,
    CIMD_ONLY_CONFIDENTIAL,
    CIMD_REQUIRED_PROPERTIES,
    CIMD_RESOURCE_ALLOW_LIST,
    CIMD_RESTRICT_SAME_DOMAIN,
    CIMD_TRUSTED_DOMAINS,
    INTROSPECTION_WITHOUT_AUDIENCE,
    REALM_ROLES_MAPPER,
    RESOURCE_AUDIENCE_MAPPER,
    RESOURCE_CLIENT_SUFFIX,
    RESOURCE_URL_ATTRIBUTE,
    SDK_EXTRA_SCOPES,
    McpExpansionError,
    expand_mcp_servers,
)
from kcprov.spec.models import ProtocolMapper, RealmSpec
from kcprov.workflow import desired_objects

Objects = dict[str, dict[str, dict[str, Any]]]

CLAUDE_PAIR = "claude"  # the profile both Claude presets share (expand.CLAUDE_COMBINED)
CIMD_ENTRY = "cimd"
# cimd executor key -> McpCimd flag written when true
CIMD_FLAGS = {CIMD_ALLOW_HTTP: "allow_http", CIMD_RESTRICT_SAME_DOMAIN: "restrict_same_domain",
              CIMD_ONLY_CONFIDENTIAL: "only_confidential"}
SHOWN = 60  # characters of a value shown in a note


@dataclass
class Recognised:
    data: dict  # the realm file data: recognised primitives removed, mcp_servers entries added
    notes: list[str] = field(default_factory=list)  # one line each: what stays as primitives and why


def recognise_mcp_servers(realm: dict, live: Objects | None = None) -> Recognised:
    """`realm` with its MCP server setups as `mcp_servers:` entries; see the module docstring.

    Data the realm file's models refuse is handed back as it is, with a note: everything below
    relies on the shapes the models guarantee (entries are mappings, names are strings).
    """
    try:
        RealmSpec.model_validate(as_loaded(realm))
    except (ValidationError, TypeError) as exc:  # TypeError: keys as_loaded cannot order (not names)
        return Recognised(realm, [f"--mcp left the realm as primitives: its data does not load ({_reason(exc)})"])
    data = _normalised(realm)
    notes: list[str] = []
    candidates = list(_candidates(data, notes))
    try:
        check = _Equivalence(data, candidates, live or {}) if candidates else None
    except (ValidationError, McpExpansionError) as exc:
        check, notes = None, [f"--mcp left the realm as primitives: its data does not load ({_reason(exc)})"]
    servers = check.accept(candidates, notes) if check else []
    if servers:
        check.add_registration(servers, notes)
        check.add_cimd(servers, notes)
        data = check.rewrite(servers, data)
        data["mcp_servers"] = [*data.get("mcp_servers", []), *servers]
        notes += [note for c in candidates if any(c.entry is s for s in servers) for note in c.caveats]
    for entry in data.get("mcp_servers", []):
        if not entry.get("clients"):
            entry.pop("clients", None)
    return Recognised(_reshaped({k: v for k, v in data.items() if v != []}, realm), notes)


# ---------------------------------------------------------------- the data


def _normalised(realm: dict) -> dict:
    """A copy with the sections recognition rewrites as lists (sorted by identity when given as a map)."""
    data = dict(realm)
    for section in ("client_scopes", "clients"):
        data[section] = [{**e, "mappers": _entries(e["mappers"])} if "mappers" in e else e
                         for e in _entries(realm.get(section))]
    if realm.get("client_policies") is not None:
        data["client_policies"] = {k: _entries(v) if k in ("profiles", "policies") else v
                                   for k, v in realm["client_policies"].items()}
    return copy.deepcopy(data)


IDENTITY = {"client_scopes": "name", "clients": "client_id", "mappers": "name", "profiles": "name", "policies": "name"}


def _reshaped(data: dict, realm: dict) -> dict:
    """Sections given as {identity: entry} (the exporter's document) handed back in that shape."""
    def keyed(entries: list[dict], section: str) -> dict:
        return {e[IDENTITY[section]]: {**e, "mappers": keyed(e["mappers"], "mappers")} if "mappers" in e else e
                for e in entries}

    for section in ("client_scopes", "clients"):
        if isinstance(realm.get(section), dict) and section in data:
            data[section] = keyed(data[section], section)
    policies = data.get("client_policies")
    if policies and isinstance(realm["client_policies"].get("profiles"), dict):
        data["client_policies"] = {k: keyed(v, k) if k in ("profiles", "policies") else v for k, v in policies.items()}
    return data


def _entries(value: Any) -> list[dict]:
    """Named entries, names as text (the models take a number for a name, as the loader reads `0777`)."""
    entries = [value[k] for k in sorted(value)] if isinstance(value, dict) else list(value or [])
    return [{k: text(v) if k in ("name", "client_id") else v for k, v in e.items()} for e in entries]


def _by(entries: list[dict], identity: str) -> dict[str, dict]:
    return {e.get(identity): e for e in entries}


def _mapper(entry: dict) -> dict | None:
    """A mapper's flat attributes, shortcuts expanded (None if it is not a valid mapper)."""
    try:
        return mapper_attrs(ProtocolMapper.model_validate(entry))
    except ValidationError:
        return None


def _norm(value: Any) -> Any:
    """Values as the flat shape compares them: scalars as Keycloak strings, lists as sets."""
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted(_norm(v) for v in value)
    return value if value is None else text(value)


def _listed(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value] if value else []


def _reason(exc: Exception) -> str:
    if isinstance(exc, TypeError):
        return "a section's keys are not all names"
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
    return "; ".join(p.message for p in getattr(exc, "problems", [])) or type(exc).__name__


def _show(value: Any) -> str:
    shown = repr(value) if not isinstance(value, list) else "[" + ", ".join(map(str, value)) + "]"
    return shown if len(shown) <= SHOWN else shown[:SHOWN - 3] + "..."


# ---------------------------------------------------------------- finding candidates


@dataclass
class _Candidate:
    """One MCP server as the data suggests it: the entry, and the parts tried one at a time."""

    entry: dict  # the mcp_servers entry: server, scopes, audience binding
    scopes: list[str]
    clients: list[str]  # the clients it stands for (resource client, introspection client)
    features: list[tuple[str, dict]] = field(default_factory=list)  # (what, keys added to the entry)
    caveats: list[str] = field(default_factory=list)  # notes that hold once it is accepted


def _candidates(data: dict, notes: list[str]) -> Iterable[_Candidate]:
    scopes = _by(data["client_scopes"], "name")
    clients = _by(data["clients"], "client_id")
    resources: dict[str, str] = {}
    for cid, client in clients.items():
        url = (client.get("attributes") or {}).get(RESOURCE_URL_ATTRIBUTE)
        if not isinstance(url, str):
            continue
        if cid.endswith(RESOURCE_CLIENT_SUFFIX) and cid != RESOURCE_CLIENT_SUFFIX:
            resources[cid] = url
        else:
            notes.append(f"client '{cid}' has resource_url {url} but is not named '<server>{RESOURCE_CLIENT_SUFFIX}', "
                         "as an MCP server's resource client is: kept as primitives")
    owned: dict[str, list[str]] = {cid: [] for cid in resources}
    for name, scope in scopes.items():
        mappers = {m.get("name"): _mapper(m) for m in scope.get("mappers") or []}
        target = (mappers.get(RESOURCE_AUDIENCE_MAPPER) or {}).get("config.included.client.audience")
        if target in owned:
            owned[target].append(name)
            continue
        named = sorted({a.get("config.included.custom.audience") or a.get("config.included.client.audience")
                        for a in mappers.values() if a and a["protocol_mapper"] == AUDIENCE_MAPPER_TYPE} - {None})
        if named:
            notes.append(f"client scope '{name}' has an audience mapper for {', '.join(named)} but no "
                         f"'{RESOURCE_AUDIENCE_MAPPER}' mapper naming an MCP server's resource client "
                         f"('<server>{RESOURCE_CLIENT_SUFFIX}' with resource_url): kept as primitives")
    for cid, names in owned.items():
        if not names:
            notes.append(f"client '{cid}' has resource_url {resources[cid]} but no client scope has the "
                         f"'{RESOURCE_AUDIENCE_MAPPER}' mapper for it: kept as primitives")
            continue
        untexted = [n for n in names if not isinstance(scopes[n].get("consent_screen_text"), str)]
        if untexted:
            notes.append(f"client scope '{untexted[0]}' (audience {resources[cid]}) has no consent screen text, "
                         "which every scope of an mcp_servers entry has: kept as primitives")
            continue
        yield _candidate(cid[:-len(RESOURCE_CLIENT_SUFFIX)], resources[cid], cid, names, scopes, clients)


def _candidate(server: str, url: str, resource: str, names: list[str], scopes: dict[str, dict],
               clients: dict[str, dict]) -> _Candidate:
    admin: dict[str, str] = {}
    for name in names:
        roles = scopes[name].get("scope_roles") or {}
        mapped = any(m.get("name") == REALM_ROLES_MAPPER for m in scopes[name].get("mappers") or [])
        if mapped and list(roles) == ["realm"] and len(roles["realm"]) == 1:
            admin[name] = text(roles["realm"][0])
    introspectors = sorted(
        (cid != f"{server}-introspector", cid) for cid, c in clients.items()
        if text((c.get("attributes") or {}).get(INTROSPECTION_WITHOUT_AUDIENCE)) == "true"
        and set(c.get("default_scopes") or ()) & set(names))
    introspector = introspectors[0][1] if introspectors else None
    preferred = [n for n in names if n in (clients[introspector].get("default_scopes") or ())] if introspector \
        else [n for n in names if n not in admin]
    base = (preferred or names)[0]
    admin.pop(base, None)
    order = [base, *(n for n in names if n != base)]
    entry: dict[str, Any] = {"name": server, "url": url}
    mappers = {m.get("name"): _mapper(m) for m in scopes[base].get("mappers") or []}
    if AUDIENCE_MAPPER in mappers:
        extra = []
        while (found := mappers.get(f"{AUDIENCE_MAPPER}-{len(extra) + 2}")) is not None:
            extra.append(found.get("config.included.custom.audience"))
        if extra:
            entry["extra_audiences"] = extra
    else:
        entry["audience_binding"] = "resource-indicators"
    entry["scopes"] = {n: scopes[n]["consent_screen_text"] for n in order}
    entry["clients"] = []
    candidate = _Candidate(entry, order, [resource])
    if admin:
        roles = sorted(set(admin.values()))
        if len(roles) == 1:
            candidate.features.append((f"admin_role {roles[0]}", {
                "tool_scopes": {n: n for n in admin}, "admin_role": roles[0], "admin_tools": list(admin)}))
            candidate.caveats.append(f"MCP server '{server}': Keycloak does not store tool names; tool_scopes names "
                                     f"one placeholder tool per admin scope ({', '.join(admin)}): write the "
                                     "server's real tools")
        else:
            candidate.caveats.append(f"MCP server '{server}': its admin scopes map different roles "
                                     f"({', '.join(roles)}), not one admin_role: their roles stay as primitives")
    if introspector:
        keys: dict[str, Any] = {"token_validation": "introspection"}
        if introspector != f"{server}-introspector":
            keys["introspection_client"] = introspector
        candidate.features.append((f"introspection client {introspector}", keys))
        candidate.clients.append(introspector)
    candidate.caveats.append(f"MCP server '{server}': Keycloak does not store env_file: add it to the entry for "
                             "`kcprov apply` to write the server's .env")
    return candidate


# ---------------------------------------------------------------- checking a rewrite


class _Equivalence:
    """Rewrites a slice of the data (what the candidates can touch) and compares what it manages."""

    def __init__(self, data: dict, candidates: list[_Candidate], live: Objects):
        scopes = {n for c in candidates for n in c.scopes}
        clients = {cid for c in candidates for cid in c.clients}
        self.slice = {
            "realm": data["realm"],
            **{k: data[k] for k in ("settings", "client_registration", "client_policies", "mcp_servers") if k in data},
            "client_scopes": [s for s in data["client_scopes"] if s.get("name") in scopes],
            "clients": [c for c in data["clients"] if c.get("client_id") in clients],
        }
        self.live = live
        self.before, _ = desired_objects(RealmSpec.model_validate(self.slice))

    # -- deciding -------------------------------------------------------------------
    def accept(self, candidates: list[_Candidate], notes: list[str]) -> list[dict]:
        """The entries of the candidates that rewrite to the same objects, each with the parts that do too."""
        accepted: list[dict] = []
        for candidate in sorted(candidates, key=lambda c: c.entry["name"]):
            server = candidate.entry
            why = self.differences([*accepted, server])
            if why:
                notes.append(f"MCP server '{server['name']}' ({server['url']}) kept as primitives: as an "
                             f"mcp_servers entry, {why}")
                continue
            for what, keys in candidate.features:
                self.try_change(accepted + [server], server, keys, f"{what} of MCP server '{server['name']}'", notes)
            accepted.append(server)
        return accepted

    def try_change(self, servers: list[dict], server: dict, keys: dict, what: str, notes: list[str],
                   clients: Iterable[dict] = ()) -> bool:
        """Add `keys` (and `clients` entries) to `server` if the rewrite stays equivalent; else say why not."""
        trial = [{**s, **keys, "clients": [*s["clients"], *clients]} if s is server else s for s in servers]
        why = self.differences(trial)
        if why:
            notes.append(f"{what} kept as primitives: {why}")
            return False
        server.update(keys)
        server["clients"] += list(clients)
        return True

    def add_registration(self, servers: list[dict], notes: list[str]) -> None:
        anonymous = (self.slice.get("client_registration") or {}).get("anonymous") or {}
        allowed = set(anonymous.get("allowed_client_scopes") or ())
        dcr = [s for s in servers if set(s["scopes"]) <= allowed]
        if not dcr:
            return
        missing = [s for s in SDK_EXTRA_SCOPES if s not in allowed]
        if missing:
            notes.append(f"anonymous client registration allows the scopes of {', '.join(s['name'] for s in dcr)} "
                         f"but not {', '.join(missing)}, which a dcr entry adds: kept as primitives")
            return
        entries = [{"dcr": {}}]
        if INSPECTOR_ORIGIN in (anonymous.get("allowed_web_origins") or ()):
            entries.append({"preset": "mcp-inspector"})
        trial = [{**s, "clients": [*s["clients"], *entries]} if any(s is d for d in dcr) else s for s in servers]
        why = self.differences(trial)
        if why:
            notes.append(f"anonymous client registration kept as primitives: as dcr entries, {why}")
            return
        for s in dcr:
            s["clients"] += copy.deepcopy(entries)

    def add_cimd(self, servers: list[dict], notes: list[str]) -> None:
        policies = self.slice.get("client_policies") or {}
        pairs = _by(policies.get("policies") or [], "name")
        by_url = {s["url"]: s for s in servers}
        for profile in policies.get("profiles") or []:
            name = profile.get("name")
            executors = profile.get("executors") or []
            if [e.get("type") for e in executors] != [CIMD_EXECUTOR] or name not in pairs:
                continue
            config = executors[0].get("config") or {}
            sharers = [by_url[u] for u in _listed(config.get(CIMD_RESOURCE_ALLOW_LIST)) if u in by_url]
            owner, kind = next(((s, name[len(s["name"]) + 1:]) for s in sharers
                                if name.startswith(f"{s['name']}-")), (None, ""))
            entries = _cimd_entries(kind, config)
            if owner is None or entries is None:
                notes.append(f"client profile and policy '{name}' (client ID metadata documents) kept as primitives: "
                             "not named <server>-<cimd|preset> after an MCP server its resource allow list names")
                continue
            first = min(servers.index(s) for s in sharers)
            order = [*servers[:first], owner, *(s for s in servers[first:] if s is not owner)]
            trial = [{**s, "clients": [*s["clients"], *entries]} if s in sharers else s for s in order]
            why = self.differences(trial)
            if why:
                notes.append(f"client profile and policy '{name}' kept as primitives: as "
                             f"{' and '.join(next(iter(e.values())) if 'preset' in e else 'a cimd entry' for e in entries)}"
                             f" of {', '.join(s['name'] for s in sharers)}, {why}")
                continue
            servers[:] = order
            for s in sharers:
                s["clients"] += copy.deepcopy(entries)

    # -- rewriting ------------------------------------------------------------------
    def rewrite(self, servers: list[dict], data: dict | None = None) -> dict:
        """`data` (default: the slice) with what expanding `servers` on an empty realm gives removed."""
        out = copy.deepcopy(self.slice if data is None else data)
        generated, _ = expand_mcp_servers(RealmSpec.model_validate({"realm": out["realm"], "mcp_servers": servers}))
        out["client_scopes"] = _subtract_entries(out["client_scopes"], generated.client_scopes, "name")
        out["clients"] = _subtract_entries(out["clients"], generated.clients, "client_id")
        _subtract_policies(out, generated)
        _subtract_map(out, ("client_registration", "anonymous"), generated.client_registration.anonymous
                      if generated.client_registration else None, keep={"trusted_hosts"})
        _subtract_map(out, ("settings",), generated.settings)
        return out

    def differences(self, servers: list[dict]) -> str:
        """'' when the slice rewritten for `servers` manages what it did; else the first differences, said."""
        trial = self.rewrite_checked(servers)
        if isinstance(trial, str):
            return trial
        found: list[str] = []
        for kind in sorted(set(self.before) | set(trial)):
            label = KINDS_BY_NAME[kind].label
            before, after = self.before.get(kind, {}), trial.get(kind, {})
            for key in sorted(set(before) | set(after)):
                if key not in after:
                    found.append(f"{label} '{key}' would no longer be in the file")
                    continue
                known = self.live.get(kind, {}).get(key)
                if key not in before and known is None:
                    found.append(f"it would add {label} '{key}'")
                    continue
                old = before.get(key, {})
                for f in sorted(set(old) | set(after[key])):
                    was = old[f] if f in old else (known or {}).get(f)
                    if f not in after[key] or after[key][f] != was:
                        now = _show(after[key][f]) if f in after[key] else "unset"
                        found.append(f"{label} '{key}' {f} would be {now}, not {_show(was)}")
        return "; ".join(found[:3]) + (f" (and {len(found) - 3} more)" if len(found) > 3 else "")

    def rewrite_checked(self, servers: list[dict]) -> Objects | str:
        """The objects the rewritten slice manages, or why it cannot be written (invalid entry, conflict)."""
        try:
            rewritten = self.rewrite(servers)
            rewritten["mcp_servers"] = [*self.slice.get("mcp_servers", []), *servers]
            objects, _ = desired_objects(RealmSpec.model_validate(rewritten))
        except (ValidationError, McpExpansionError) as exc:
            return f"it would not load ({_reason(exc)})"
        return objects


def _cimd_entries(kind: str, config: dict) -> list[dict] | None:
    """The clients entries a pair named `<server>-<kind>` comes from (None: no expansion names one so)."""
    if kind == CLAUDE_PAIR:
        return [{"preset": "claude-code"}, {"preset": "claude-desktop"}]
    if kind in CIMD_PRESETS:
        return [{"preset": kind}]
    if kind != CIMD_ENTRY:
        return None
    cimd: dict[str, Any] = {"trusted_domains": _listed(config.get(CIMD_TRUSTED_DOMAINS))}
    cimd.update({name: True for key, name in CIMD_FLAGS.items() if text(config.get(key)) == "true"})
    if CIMD_REQUIRED_PROPERTIES in config:
        cimd["required_properties"] = _listed(config[CIMD_REQUIRED_PROPERTIES])
    if CIMD_ACCEPT_PUBLIC_CONFIDENTIAL_GRANTS in config:
        cimd["accept_public_client_with_confidential_grant_types"] = \
            text(config[CIMD_ACCEPT_PUBLIC_CONFIDENTIAL_GRANTS]) == "true"
    return [{"cimd": cimd}]


def _subtract_entries(entries: list[dict], generated: list, identity: str) -> list[dict]:
    """Entries without the keys the generated objects give the same value; entries left with no key go."""
    made = {getattr(g, identity): g.model_dump(exclude_none=True) for g in generated}
    out = []
    for entry in entries:
        gen = made.get(entry.get(identity))
        for key, value in (gen or {}).items():
            if key == identity or key not in entry:
                continue
            if key == "mappers":
                same = {m["name"]: _mapper(m) for m in value}
                entry[key] = [m for m in entry[key] if m.get("name") not in same or _mapper(m) != same[m["name"]]]
            elif key == "attributes":
                entry[key] = {k: v for k, v in entry[key].items() if k not in value or text(v) != text(value[k])}
            elif _norm(entry[key]) == _norm(value):
                entry[key] = None
            if entry[key] in (None, [], {}):
                del entry[key]
        if set(entry) - {identity}:
            out.append(entry)
    return out


def _subtract_policies(data: dict, generated: RealmSpec) -> None:
    """Client profiles and policies equal to generated ones go (a partial one would conflict, so whole entries)."""
    policies = data.get("client_policies")
    if not policies or not generated.client_policies:
        return
    try:
        mine = _policy_objects(RealmSpec.model_validate({"realm": data["realm"], "client_policies": policies}))
    except ValidationError:
        return
    theirs = _policy_objects(generated)
    for section, kind in (("profiles", "client_profile"), ("policies", "client_policy")):
        policies[section] = [e for e in policies.get(section) or []
                             if theirs[kind].get(e.get("name"), ...) != mine[kind].get(e.get("name"))]
    if not any(policies.values()):
        del data["client_policies"]


def _policy_objects(spec: RealmSpec) -> Objects:
    return {kind: KINDS_BY_NAME[kind].desired(spec) for kind in ("client_profile", "client_policy")}


def _subtract_map(data: dict, path: tuple[str, ...], generated, keep: set[str] = frozenset()) -> None:
    """Options of a mapping (registration policy, settings) the expansion gives anyway: equal values go, and
    list items it adds (it unions lists with the file's), but in `keep` (the Inspector's localhost stays a
    trusted host in the file: expansion adds it only where missing, and a reader looks for it there)."""
    parents = [data]
    for key in path:
        node = parents[-1].get(key)
        if not isinstance(node, dict):
            return
        parents.append(node)
    node = parents[-1]
    for key, value in (generated.model_dump(exclude_none=True) if generated else {}).items():
        if key not in node or key in keep:
            continue
        if isinstance(value, list) and isinstance(node[key], list):
            node[key] = [v for v in node[key] if v not in value]
        if not isinstance(value, list) and _norm(node[key]) == _norm(value) or node[key] == []:
            del node[key]
    for parent, key in zip(reversed(parents[:-1]), reversed(path)):
        if not parent[key]:
            del parent[key]


# ---------------------------------------------------------------- the export pass

NOTES_KEY = "x-kcprov-mcp-notes"
"""Where the notes go in the exported file: a top-level `x-` key, which a realm file may hold and the
loader ignores (RealmSpec). Each note is a `- note: ...` line of its own, its text a value the emitter
quotes and escapes (names in it come from Keycloak); the document has no other place for a block of text."""


def fold_mcp_servers(ctx: ExportContext) -> None:
    """`kcprov export --mcp`: an export pass (`export_realm(passes=...)`) folding the document's MCP setups.

    Entries the realm file's format refuses are dropped (and listed) first, as the exporter does after
    its passes, so one odd name from Keycloak does not keep every MCP server as primitives."""
    drop_invalid(ctx)
    recognised = recognise_mcp_servers(ctx.doc, live=ctx.live.objects)
    ctx.doc = recognised.data
    if recognised.notes:
        ctx.doc[NOTES_KEY] = [{"note": note} for note in recognised.notes]
        ctx.comments[(NOTES_KEY,)] = "kcprov export --mcp: what stays as primitives, and why"
