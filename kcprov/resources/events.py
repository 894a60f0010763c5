"""Event settings of the realm: user and admin events, listeners, enabled types, expiration.

Every realm has them, so the file's `events:` is always an update (a create only
in a realm this apply makes), and they are never deleted. The live side is the
partial export's realm fields. Writes go through PUT /events/config, which
checks the listeners (400 "Unknown event listener"), but replaces every field:
one it is not sent is reset (eventsExpiration cleared, booleans false), so it
gets the realm's current values with the file's over them. The current values
come from the export, not from GET /events/config, which answers an empty type
list (Keycloak's default selection) as the expanded list of those types.
"""

from __future__ import annotations

from kcprov.errors import KcprovError
from kcprov.resources.base import ApplyContext, Attrs, Kind, drop_none

# flat field -> RealmRepresentation / RealmEventsConfigRepresentation field
FIELDS = {
    "enabled": "eventsEnabled", "expiration": "eventsExpiration", "types": "enabledEventTypes",
    "listeners": "eventsListeners", "admin_events.enabled": "adminEventsEnabled",
    "admin_events.include_representation": "adminEventsDetailsEnabled",
}
BUILTIN_LISTENERS = frozenset({"jboss-logging", "email"})


class EventsKind(Kind):
    name = "events"
    label = "event settings"
    stage = 1
    deletable = False
    reads = frozenset(FIELDS.values())

    def desired(self, spec) -> dict[str, Attrs]:
        events = spec.events
        if events is None:
            return {}
        admin = events.admin_events
        return {spec.realm: drop_none({
            "enabled": events.enabled,
            "expiration": events.expiration,
            "types": sorted(events.types) if events.types is not None else None,
            "listeners": sorted(events.listeners) if events.listeners is not None else None,
            "admin_events.enabled": admin.enabled if admin else None,
            "admin_events.include_representation": admin.include_representation if admin else None,
        })}

    def read(self, client, raw, desired, owned) -> None:
        """A listener the file names that is neither Keycloak's own nor already set here is looked up in the
        server's providers (one request, only then), so a typo fails the plan instead of the apply."""
        wanted = set(desired.get(self.name, {}).get(raw.name, {}).get("listeners") or [])
        unknown = wanted - BUILTIN_LISTENERS - set(raw.export.get("eventsListeners") or [])
        if not unknown:
            return
        providers = ((client.server_info().get("providers") or {}).get("eventsListener") or {}).get("providers") or {}
        missing = sorted(unknown - set(providers))
        if missing:
            raise KcprovError(
                f"events.listeners: this Keycloak has no event listener '{missing[0]}'.",
                hint=f"its listeners are {', '.join(sorted(providers))}; a custom one needs its provider installed",
            )

    def live(self, raw) -> dict[str, Attrs]:
        rep = raw.export
        attrs = {f: rep.get(k) for f, k in FIELDS.items()}
        attrs["types"] = sorted(rep.get("enabledEventTypes") or [])
        attrs["listeners"] = sorted(rep.get("eventsListeners") or [])
        return {raw.name: attrs}

    def create(self, ctx: ApplyContext, change) -> None:
        """Only in a realm this apply made: its settings are read first (one request)."""
        self._write(ctx, change.key, ctx.client.get(ctx.base, f"realm '{ctx.realm}'"))

    def update(self, ctx: ApplyContext, change) -> None:
        self._write(ctx, change.key, ctx.live.raw.export)

    def _write(self, ctx: ApplyContext, key: str, current: dict) -> None:
        body = {k: current.get(k) for k in FIELDS.values()}
        body.update({FIELDS[f]: v for f, v in ctx.desired[self.name][key].items()})
        ctx.client.put(f"{ctx.base}/events/config", body, f"event settings of realm '{ctx.realm}'")

    def export(self, key, fields, ctx) -> None:
        section = ctx.section("events")
        for field, value in fields.items():
            if field.startswith("admin_events."):
                ctx.section("events", "admin_events")[field.removeprefix("admin_events.")] = value
            else:
                section[field] = value
