"""The realm itself: name, display name, enabled, and the friendly `settings`.

Settings use snake_case names of RealmRepresentation fields (access_token_lifespan
-> accessTokenLifespan); `settings.attributes` passes raw realm attributes through.
The realm is never deleted by kcprov: a missing file must not erase a realm.
A realm kcprov creates is enabled, requires HTTPS for non-private addresses and
has self-registration off unless the file says otherwise: Keycloak's own values,
written on create so the plan shows them.
"""

from __future__ import annotations

from kcprov.errors import KcprovError
from kcprov.resources.base import ApplyContext, Attrs, Kind, drop_none, prefixed, text

RAW_ATTRIBUTES = "attributes"
# kcprov's record of the objects it created or adopted (kcprov.state): a file that wrote it could make
# kcprov delete objects it never made, without --prune
OWNERSHIP_ATTRIBUTE = "kcprov.managed"
CREATE_DEFAULTS = {"enabled": True, "settings.ssl_required": "external", "settings.registration_allowed": False}
TOP_LEVEL = ("display_name", "enabled")
# RealmRepresentation scalars that are the realm's identity or written as top-level keys, not settings
NOT_SETTINGS = {"id", "realm", *TOP_LEVEL}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class RealmKind(Kind):
    name = "realm"
    label = "realm"
    stage = 0
    deletable = False

    def desired(self, spec) -> dict[str, Attrs]:
        attrs = drop_none({"display_name": spec.display_name, "enabled": spec.enabled})
        settings = spec.settings.model_dump(exclude_none=True) if spec.settings else {}
        raw_attributes = settings.pop(RAW_ATTRIBUTES, None)
        if OWNERSHIP_ATTRIBUTE in (raw_attributes or {}):
            raise KcprovError(
                f"realm '{spec.realm}': settings.attributes sets '{OWNERSHIP_ATTRIBUTE}', kcprov's own record of the "
                "objects it manages; a realm file cannot write it.",
                hint=f"remove '{OWNERSHIP_ATTRIBUTE}' from settings.attributes (kcprov keeps it up to date itself)",
            )
        attrs.update({f"settings.{k}": v for k, v in settings.items()})
        attrs.update(prefixed("attributes", raw_attributes))
        return {spec.realm: attrs}

    def live(self, raw) -> dict[str, Attrs]:
        rep = raw.export
        attrs = {"display_name": rep.get("displayName"), "enabled": rep.get("enabled")}
        for key, value in rep.items():
            if not isinstance(value, (dict, list)):
                attrs[f"settings.{snake(key)}"] = value
        attrs.update(prefixed("attributes", rep.get("attributes")))
        return {raw.name: attrs}

    def create_defaults(self, key, attrs, desired, live) -> Attrs:
        return dict(CREATE_DEFAULTS)

    def create(self, ctx: ApplyContext, change) -> None:
        body = {"realm": ctx.realm, **representation(change)}
        ctx.client.post("/admin/realms", body, f"realm '{ctx.realm}'")

    def update(self, ctx: ApplyContext, change) -> None:
        ctx.client.put(ctx.base, representation(change), f"realm '{ctx.realm}'")

    def export(self, key, fields, ctx) -> None:
        """Top-level keys, then `settings` (a comment gives the new-realm value it replaces); a
        RealmRepresentation field without a setting is listed as not exported. An attribute that
        mirrors a written setting (Keycloak keeps oauth2DeviceCodeLifespan twice) is left out."""
        from kcprov.resources import KINDS
        from kcprov.spec.models import RealmSettings

        other_kinds = {snake(f) for kind in KINDS for f in kind.reads}
        base = ctx.base(self.name, key) or {}
        ctx.doc.update({f: fields[f] for f in TOP_LEVEL if f in fields})
        settings: dict = {}
        for field, value in fields.items():
            name = field.removeprefix("settings.")
            if not field.startswith("settings.") or name in NOT_SETTINGS or name in other_kinds:
                continue
            if name in RealmSettings.model_fields and name != RAW_ATTRIBUTES:
                settings[name] = value
                if base.get(field) is not None:
                    ctx.comments[("settings", name)] = f"Keycloak default is {text(base[field])}"
            else:
                ctx.cannot_write("realm setting", camel(name), field)
        attributes = {f.removeprefix("attributes."): v for f, v in fields.items() if f.startswith("attributes.")}
        attributes = {k: v for k, v in attributes.items() if k != OWNERSHIP_ATTRIBUTE and snake(k) not in settings}
        if attributes:
            settings[RAW_ATTRIBUTES] = attributes
        if settings:
            ctx.doc["settings"] = settings


def snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def representation(change) -> dict:
    """The RealmRepresentation fragment for the fields a change sets (Keycloak merges it)."""
    body: dict = {}
    for d in change.diffs:
        if d.field == "display_name":
            body["displayName"] = d.after
        elif d.field == "enabled":
            body["enabled"] = d.after
        elif d.field.startswith("settings."):
            body[camel(d.field.removeprefix("settings."))] = d.after
        elif d.field.startswith("attributes."):
            body.setdefault("attributes", {})[d.field.removeprefix("attributes.")] = text(d.after)
    return body
