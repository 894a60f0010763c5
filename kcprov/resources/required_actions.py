"""Required actions of the realm: enabled, default action, priority, config.

Read from the partial export's `requiredActions` (config included). A file entry
naming a provider the realm has not registered (an extension's, or one removed by
hand) is a create: the provider is registered (POST register-required-action,
which Keycloak answers with it enabled, last in priority), then set. Every write
is a PUT of the whole representation, since Keycloak resets what it is not sent
(a PUT without alias or name breaks the action; without config, clears it): the
realm's representation with the file's fields over it. Priority is set there too,
no raise/lower-priority steps needed (verified on 26.7.3).

Never deleted: an action left out of the file stays as it is, and kcprov does not
unregister one it registered, because users' pending actions and flows may name it
(unregistering is a console/Admin API step of its own).
"""

from __future__ import annotations

from kcprov.errors import KcprovError, KeycloakApiError
from kcprov.keycloak import seg
from kcprov.resources.base import ApplyContext, Attrs, Kind, drop_none, prefixed

FIELDS = {"enabled": "enabled", "default_action": "defaultAction", "priority": "priority"}
CONFIG = "config."


def alias_of(rep: dict) -> str:
    return rep.get("alias") or rep["providerId"]


class RequiredActionKind(Kind):
    name = "required_action"
    label = "required action"
    stage = 1
    deletable = False
    reads = frozenset({"requiredActions"})

    def desired(self, spec) -> dict[str, Attrs]:
        return {
            a.alias: {**drop_none({f: getattr(a, f) for f in FIELDS}), **prefixed("config", a.config)}
            for a in spec.required_actions
        }

    def read(self, client, raw, desired, owned) -> None:
        """Aliases the file names that the realm has not registered are looked up among the providers it
        could register (one request, only then): an unknown one fails the plan, not the apply."""
        registered = {alias_of(r) for r in raw.export.get("requiredActions") or []}
        missing = sorted(set(desired.get(self.name, {})) - registered)
        if not missing:
            return
        offered = {p["providerId"] for p in client.get(_auth(raw.name) + "/unregistered-required-actions",
                                                        f"required actions of realm '{raw.name}'")}
        unknown = [a for a in missing if a not in offered]
        if unknown:
            raise KcprovError(
                f"required action '{unknown[0]}': this Keycloak has no such provider.",
                hint=f"registered in realm '{raw.name}': {', '.join(sorted(registered))}"
                     + (f"; can be registered: {', '.join(sorted(offered))}" if offered else ""),
            )

    def live(self, raw) -> dict[str, Attrs]:
        return {
            alias_of(r): {**{f: r.get(k) for f, k in FIELDS.items()}, **prefixed("config", r.get("config"))}
            for r in raw.export.get("requiredActions") or []
        }

    def create(self, ctx: ApplyContext, change) -> None:
        """Register the provider unless the realm has it (a realm made by this apply has Keycloak's own)."""
        what = f"required action '{change.key}'"
        auth = _auth(ctx.realm)
        path = f"{auth}/required-actions/{seg(change.key)}"
        rep = ctx.client.get_optional(path, what)
        if rep is None:
            offered = {p["providerId"]: p for p in ctx.client.get(f"{auth}/unregistered-required-actions", what)}
            if change.key not in offered:
                raise KeycloakApiError(f"{what}: Keycloak has no such provider to register in realm '{ctx.realm}'.",
                                       hint="check the alias (Authentication -> Required actions lists them)")
            ctx.client.post(f"{auth}/register-required-action", offered[change.key], what)
            rep = ctx.client.get(path, what)
        self._put(ctx, change.key, rep)

    def update(self, ctx: ApplyContext, change) -> None:
        rep = next(r for r in ctx.live.raw.export.get("requiredActions") or [] if alias_of(r) == change.key)
        self._put(ctx, change.key, rep)

    def _put(self, ctx: ApplyContext, key: str, rep: dict) -> None:
        body = {**rep, "config": dict(rep.get("config") or {})}
        for field, value in ctx.desired[self.name][key].items():
            if field.startswith(CONFIG):
                body["config"][field.removeprefix(CONFIG)] = value
            else:
                body[FIELDS[field]] = value
        ctx.client.put(f"{_auth(ctx.realm)}/required-actions/{seg(key)}", body, f"required action '{key}'")

    def export(self, key, fields, ctx) -> None:
        entry = ctx.entry(ctx.doc, "required_actions", "alias", key)
        entry.update({f: fields[f] for f in FIELDS if f in fields})
        config = {f.removeprefix(CONFIG): v for f, v in fields.items() if f.startswith(CONFIG)}
        if config:
            entry["config"] = config


def _auth(realm: str) -> str:
    return f"/admin/realms/{seg(realm)}/authentication"
