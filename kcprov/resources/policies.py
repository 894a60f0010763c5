"""Client profiles and client policies (Realm settings -> Client policies).

Keycloak stores all profiles as one realm-wide document and all policies as
another. kcprov changes only the entries the file names and keeps the others,
with a read-modify-write per change under a lock. Executors and conditions
flatten to their ordered types plus one field per configuration key, so
defaults Keycloak adds to a configuration never show as changes. A policy the
file does not say is disabled is created enabled (it enforces something),
shown as `enabled = true (default)`.
"""

from __future__ import annotations

import threading

from kcprov.resources.base import ApplyContext, Attrs, Kind, drop_none, text


def config_text(value):
    return [text(v) for v in value] if isinstance(value, list) else text(value)


def flatten_steps(field: str, steps: list[tuple[str, dict]]) -> Attrs:
    """[(type, configuration)] -> {field: [types], "field[i].key": value}."""
    attrs: Attrs = {field: [t for t, _ in steps]}
    for i, (_, config) in enumerate(steps):
        for key, value in (config or {}).items():
            attrs[f"{field}[{i}].{key}"] = config_text(value)
    return attrs


def unflatten_steps(field: str, attrs: Attrs, type_key: str) -> list[dict]:
    steps = [{type_key: t, "configuration": {}} for t in attrs.get(field, [])]
    for name, value in attrs.items():
        if name.startswith(f"{field}["):
            index, key = name[len(field) + 1:].split("].", 1)
            steps[int(index)]["configuration"][key] = value
    return steps


def file_steps(steps: list[dict], type_key: str) -> list[dict]:
    """Keycloak's [{executor|condition, configuration}] -> the file's [{type, config}], in order
    (a whole entry is exported: the document is rewritten per entry, so a partial one would not round-trip)."""
    return [{"type": s[type_key], **({"config": s["configuration"]} if s["configuration"] else {})} for s in steps]


class _DocumentKind(Kind):
    """One entry of a realm-wide client-policies document."""

    document = ""  # "profiles" or "policies"
    _lock = threading.Lock()

    def entry(self, key: str, attrs: Attrs) -> dict:
        raise NotImplementedError

    def _write(self, ctx: ApplyContext, key: str, attrs: Attrs | None) -> None:
        path = f"{ctx.base}/client-policies/{self.document}"
        what = f"client {self.document[:-1]} '{key}'"
        with self._lock:
            doc = ctx.client.get(path, what) or {}
            current = doc.get(self.document) or []
            entries = [e for e in current if e.get("name") != key]
            if attrs is not None:
                old = [e.get("name") for e in current]
                previous = next((e for e in current if e.get("name") == key), {})
                # fields the file does not write keep their value (a create writes them all)
                kept = {f: previous[f] for f in ("description", "enabled") if f in previous}
                new = {**kept, **self.entry(key, attrs)}
                position = old.index(key) if key in old else len(entries)
                entries.insert(position, new)
            ctx.client.put(path, {**doc, self.document: entries}, what)

    def create(self, ctx: ApplyContext, change) -> None:
        self._write(ctx, change.key, {d.field: d.after for d in change.diffs})

    def update(self, ctx: ApplyContext, change) -> None:
        self._write(ctx, change.key, ctx.desired[self.name][change.key])

    def delete(self, ctx: ApplyContext, change) -> None:
        self._write(ctx, change.key, None)


class ClientProfileKind(_DocumentKind):
    name = "client_profile"
    label = "client profile"
    stage = 3
    document = "profiles"

    def desired(self, spec) -> dict[str, Attrs]:
        profiles = spec.client_policies.profiles if spec.client_policies else []
        return {
            p.name: {**drop_none({"description": p.description}),
                     **flatten_steps("executors", [(e.type, e.config) for e in p.executors])}
            for p in profiles
        }

    def live(self, raw) -> dict[str, Attrs]:
        profiles = (raw.export.get("clientProfiles") or {}).get("profiles") or []
        return {
            p["name"]: {"description": p.get("description"),
                        **flatten_steps("executors", [(e["executor"], e.get("configuration")) for e in p.get("executors") or []])}
            for p in profiles
        }

    def entry(self, key: str, attrs: Attrs) -> dict:
        return {"name": key, **drop_none({"description": attrs.get("description")}),
                "executors": unflatten_steps("executors", attrs, "executor")}

    def export(self, key, fields, ctx) -> None:
        attrs = ctx.live.objects[self.name][key]
        entry = ctx.entry(ctx.section("client_policies"), "profiles", "name", key)
        entry.update(drop_none({"description": attrs.get("description")}))
        entry["executors"] = file_steps(unflatten_steps("executors", attrs, "executor"), "executor")


class ClientPolicyKind(_DocumentKind):
    name = "client_policy"
    label = "client policy"
    stage = 4
    document = "policies"

    def desired(self, spec) -> dict[str, Attrs]:
        policies = spec.client_policies.policies if spec.client_policies else []
        return {
            p.name: {**drop_none({"description": p.description, "enabled": p.enabled}),
                     "profiles": list(p.profiles),
                     **flatten_steps("conditions", [(c.type, c.config) for c in p.conditions])}
            for p in policies
        }

    def live(self, raw) -> dict[str, Attrs]:
        policies = (raw.export.get("clientPolicies") or {}).get("policies") or []
        return {
            p["name"]: {"description": p.get("description"), "enabled": p.get("enabled"),
                        "profiles": list(p.get("profiles") or []),
                        **flatten_steps("conditions", [(c["condition"], c.get("configuration")) for c in p.get("conditions") or []])}
            for p in policies
        }

    def create_defaults(self, key, attrs, desired, live) -> Attrs:
        return {"enabled": True}

    def entry(self, key: str, attrs: Attrs) -> dict:
        return {"name": key, **drop_none({"description": attrs.get("description"), "enabled": attrs.get("enabled")}),
                "conditions": unflatten_steps("conditions", attrs, "condition"),
                "profiles": attrs.get("profiles", [])}

    def export(self, key, fields, ctx) -> None:
        attrs = ctx.live.objects[self.name][key]
        entry = ctx.entry(ctx.section("client_policies"), "policies", "name", key)
        entry.update(drop_none({"description": attrs.get("description"), "enabled": attrs.get("enabled")}))
        entry["conditions"] = file_steps(unflatten_steps("conditions", attrs, "condition"), "condition")
        entry["profiles"] = list(attrs.get("profiles", []))
