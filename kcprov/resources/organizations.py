"""Organizations with their domains, members and identity providers.

Key: the alias (Keycloak defaults it to the name and refuses to change it; name
and alias are each unique). Not in the partial export: `read` makes one GET of
every organization (`briefRepresentation=false&max=-1`: Keycloak pages 10 by
default) and, per organization the file or the ownership record names, one
GET of its members and one of its linked identity providers; nothing when the
realm has Organizations off (Keycloak answers 404) or nothing names one.

Fields: `domains` {name: verified} and `attributes.<k>` go in the
representation, which PUT replaces whole (so an update sends the live one with
the changes); `members` are the members an admin added (membershipType
UNMANAGED), added and removed one by one (POST .../members with the user id as a
JSON string); members Keycloak made by brokering (MANAGED) are left alone: a file listing one
finds it a member, and leaving it out never removes it.
`identity_providers` are linked (POST .../identity-providers with the alias as a
JSON string) and unlinked; the domain a linked provider serves and whether it
redirects matching emails live in the provider's config (`kc.org.domain`,
`kc.org.broker.redirect.mode.email-matches`), written with a GET-modify-PUT of
the provider, whose link and masked secret a PUT keeps (checked on 26.7.3).
"""

from __future__ import annotations

from kcprov.errors import KeycloakApiError
from kcprov.keycloak import seg
from kcprov.resources.base import ApplyContext, Attrs, Kind, drop_none, flag, text

FIELDS = {"name": "name", "description": "description", "enabled": "enabled", "redirect_url": "redirectUrl"}
IDP_CONFIG = {"domain": "kc.org.domain", "redirect_when_email_matches": "kc.org.broker.redirect.mode.email-matches"}
LINKS = "identity_providers"


def _link_field(alias: str, setting: str) -> str:
    return f"identity_provider.{alias}.{setting}"


class OrganizationKind(Kind):
    name = "organization"
    label = "organization"
    stage = 6

    def desired(self, spec) -> dict[str, Attrs]:
        out = {}
        for org in spec.organizations:
            attrs = drop_none({f: getattr(org, f) for f in FIELDS})
            for key, value in (org.attributes or {}).items():
                attrs[f"attributes.{key}"] = sorted(value) if isinstance(value, list) else [value]
            if org.domains is not None:
                attrs["domains"] = {d.name: d.verified for d in org.domain_list()}
            if org.members is not None:
                attrs["members"] = sorted(org.members)
            if org.identity_providers is not None:
                links = org.idp_list()
                attrs[LINKS] = sorted(p.alias for p in links)
                for link in links:
                    attrs.update(drop_none({_link_field(link.alias, s): getattr(link, s) for s in IDP_CONFIG}))
            out[org.key] = attrs
        return out

    def read(self, client, raw, desired, owned) -> None:
        """Every organization (one request), with members and providers of those named (two each); an
        export's read (no desired objects) reads them all."""
        named = set(desired.get(self.name, {})) | owned.get(self.name, set())
        if not raw.export.get("organizationsEnabled") or not (named or not desired):
            return
        base = f"/admin/realms/{seg(raw.name)}/organizations"
        found = {}
        for rep in client.get(base, f"organizations of realm '{raw.name}'", briefRepresentation="false",
                              first=0, max=-1):
            alias = rep.get("alias") or rep.get("name")
            if alias in named or not desired:
                what = f"organization '{alias}'"
                found[alias] = {
                    "rep": rep,
                    "listed": desired.get(self.name, {}).get(alias, {}).get("members") or [],
                    "members": client.get(f"{base}/{rep['id']}/members", f"members of {what}", first=0, max=-1,
                                          briefRepresentation="true"),
                    "providers": client.get(f"{base}/{rep['id']}/identity-providers", f"providers of {what}"),
                }
        raw.extra[self.name] = found

    def live(self, raw) -> dict[str, Attrs]:
        out = {}
        for alias, found in (raw.extra.get(self.name) or {}).items():
            rep = found["rep"]
            attrs: Attrs = {f: rep.get(k) for f, k in FIELDS.items()}
            for key, value in (rep.get("attributes") or {}).items():
                attrs[f"attributes.{key}"] = sorted(value)
            attrs["domains"] = {d["name"]: bool(d.get("verified")) for d in rep.get("domains") or []}
            # a member by brokering (MANAGED) counts where the file lists it, and is never removed by kcprov
            attrs["members"] = sorted(m["username"] for m in found["members"]
                                      if m.get("membershipType") != "MANAGED" or m["username"] in found["listed"])
            attrs[LINKS] = sorted(p["alias"] for p in found["providers"])
            for provider in found["providers"]:
                config = provider.get("config") or {}
                attrs[_link_field(provider["alias"], "domain")] = config.get(IDP_CONFIG["domain"])
                attrs[_link_field(provider["alias"], "redirect_when_email_matches")] = bool(
                    flag(config.get(IDP_CONFIG["redirect_when_email_matches"])))
            out[alias] = attrs
        return out

    def create_defaults(self, key, attrs, desired, live) -> Attrs:
        return {"enabled": True}  # Keycloak's own default, shown

    def _path(self, ctx: ApplyContext, key: str) -> str:
        org_id = ctx.known_id(self.name, key) or ctx.live.raw.extra[self.name][key]["rep"]["id"]
        return f"{ctx.base}/organizations/{org_id}"

    def create(self, ctx: ApplyContext, change) -> None:
        after = {d.field: d.after for d in change.diffs}
        body = {"alias": change.key, **representation({}, after)}
        org_id = ctx.client.post(f"{ctx.base}/organizations", body, f"organization '{change.key}'")
        ctx.remember(self.name, change.key, org_id)
        self._links(ctx, change.key, {}, after)

    def update(self, ctx: ApplyContext, change) -> None:
        before = {d.field: d.before for d in change.diffs}
        after = {d.field: d.after for d in change.diffs}
        if any(_in_representation(f) for f in after):
            rep = ctx.live.raw.extra[self.name][change.key]["rep"]
            ctx.client.put(self._path(ctx, change.key), representation(rep, after), f"organization '{change.key}'")
        self._links(ctx, change.key, before, after)

    def delete(self, ctx: ApplyContext, change) -> None:
        ctx.client.delete(self._path(ctx, change.key), f"organization '{change.key}'")

    def _links(self, ctx: ApplyContext, key: str, before: Attrs, after: Attrs) -> None:
        """Members, then linked providers, then the providers' organization settings."""
        path, what = self._path(ctx, key), f"organization '{key}'"
        if "members" in after:
            found = ctx.live.raw.extra.get(self.name, {}).get(key, {}).get("members", [])
            ids = {m["username"]: m["id"] for m in found}
            old, new = set(before.get("members") or []), set(after["members"])
            for username in sorted(old - new):
                ctx.client.delete(f"{path}/members/{ids[username]}", f"member '{username}' of {what}")
            for username in sorted(new - old):
                try:
                    ctx.client.post(f"{path}/members", user_id(ctx, username), f"member '{username}' of {what}")
                except KeycloakApiError as exc:
                    if exc.status != 409:  # 409: a member already (a retry whose first answer was lost)
                        raise
        if LINKS in after:
            old, new = set(before.get(LINKS) or []), set(after[LINKS])
            for alias in sorted(old - new):
                ctx.client.delete(f"{path}/identity-providers/{seg(alias)}", f"identity provider '{alias}' of {what}")
            for alias in sorted(new - old):
                ctx.client.post(f"{path}/identity-providers", alias, f"identity provider '{alias}' of {what}")
        settings: dict[str, dict[str, object]] = {}
        for field, value in after.items():
            if field.startswith("identity_provider."):
                alias, setting = field.removeprefix("identity_provider.").rsplit(".", 1)
                settings.setdefault(alias, {})[IDP_CONFIG[setting]] = value
        for alias, config in sorted(settings.items()):
            provider = f"{ctx.base}/identity-provider/instances/{seg(alias)}"
            rep = ctx.client.get(provider, f"identity provider '{alias}'")
            rep["config"] = {**(rep.get("config") or {}), **{k: text(v) for k, v in config.items()}}
            ctx.client.put(provider, rep, f"organization settings of identity provider '{alias}'")

    def export(self, key, fields, ctx) -> None:
        rep = ctx.live.raw.extra[self.name][key]["rep"]
        entry: dict = {"name": rep.get("name")}
        if key != rep.get("name"):
            entry["alias"] = key
        entry.update({f: fields[f] for f in FIELDS if f in fields and f != "name"})
        if entry.get("enabled") is True and not ctx.everything:
            del entry["enabled"]  # what kcprov's create sets
        attributes = {f.removeprefix("attributes."): v[0] if len(v) == 1 else v
                      for f, v in fields.items() if f.startswith("attributes.")}
        if attributes:
            entry["attributes"] = attributes
        if fields.get("domains"):
            entry["domains"] = [n if not v else {"name": n, "verified": True} for n, v in sorted(fields["domains"].items())]
        if fields.get("members"):
            entry["members"] = fields["members"]
            missing = [m for m in fields["members"] if m not in ctx.live.objects.get("user", {})]
            if missing:  # kept: a file without them would have the next plan remove them from the organization
                ctx.not_exported(self.label, key, f"members {', '.join(missing)} are not exported users "
                                                  "(--include users writes them; a new realm needs them first)")
        if fields.get(LINKS):
            links = []
            for alias in fields[LINKS]:
                link = {s: fields.get(_link_field(alias, s)) for s in IDP_CONFIG}
                link = {s: v for s, v in link.items() if v not in (None, False)}
                links.append({"alias": alias, **link} if link else alias)
            entry[LINKS] = links
        entries = ctx.doc.setdefault("organizations", [])
        entries.append(entry)
        entries.sort(key=lambda e: e.get("alias") or e["name"])


def _in_representation(field: str) -> bool:
    return field in FIELDS or field == "domains" or field.startswith("attributes.")


def representation(rep: dict, after: Attrs) -> dict:
    """`rep` with the changed fields of the representation (PUT replaces domains and attributes whole)."""
    body = {k: v for k, v in rep.items() if k not in ("members", "identityProviders")}
    body.update({FIELDS[f]: v for f, v in after.items() if f in FIELDS})
    if "domains" in after:
        body["domains"] = [{"name": n, "verified": v} for n, v in sorted(after["domains"].items())]
    changed = {f.removeprefix("attributes."): v for f, v in after.items() if f.startswith("attributes.")}
    if changed:
        body["attributes"] = {**(rep.get("attributes") or {}), **changed}
    return body


def user_id(ctx: ApplyContext, username: str) -> str:
    """The id of a realm user: made in this apply, read by the plan, or looked up (one request)."""
    known = ctx.known_id("user", username) or (ctx.live.raw.users.get(username) or {}).get("rep", {}).get("id")
    if known:
        return known
    found = ctx.client.get(f"{ctx.base}/users", f"user '{username}'", username=username, exact="true")
    for rep in found or []:
        if rep.get("username") == username:
            return rep["id"]
    raise KeycloakApiError(f"user '{username}' does not exist in realm '{ctx.realm}'.",
                           hint="add the user under users (or create it), or remove it from the organization's members")
