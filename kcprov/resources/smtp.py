"""The realm's SMTP server (RealmRepresentation.smtpServer); the password is a secret.

Keycloak keeps the SMTP settings as one string map and a write replaces the whole
map, so every write sends what Keycloak holds with the file's keys laid over it:
keys the file leaves out keep their value. Keycloak never returns the password
(or the XOAUTH2 client secret): it answers `**********`, and a map holding
`**********` keeps the stored value (verified on 26.7.3). So a secret is
write-only: never read back, never compared, never shown, and sent whenever kcprov
writes the SMTP server (when the realm has none yet, shown as a create, and with
every update of another key); a secret changed alone in the file plans nothing.
The SMTP server is never deleted: left out of the file, it stays as it is.
"""

from __future__ import annotations

from kcprov.resources.base import ApplyContext, Attrs, Kind, flag, text
from kcprov.secret import Secret

# file key -> smtpServer key
FIELDS = {
    "host": "host", "port": "port", "from": "from", "from_display_name": "fromDisplayName",
    "reply_to": "replyTo", "reply_to_display_name": "replyToDisplayName", "envelope_from": "envelopeFrom",
    "ssl": "ssl", "starttls": "starttls", "auth": "auth", "auth_type": "authType", "user": "user",
    "auth_token_url": "authTokenUrl", "auth_token_scope": "authTokenScope",
    "auth_token_client_id": "authTokenClientId", "allow_utf8": "allowutf8",
}
SECRETS = {"password": "password", "auth_token_client_secret": "authTokenClientSecret"}
FLAGS = {"ssl", "starttls", "auth", "allow_utf8"}


def value(field: str, stored: str | None):
    """A stored string as the file writes it: booleans and the port as such."""
    if stored is None:
        return None
    if field in FLAGS:
        return flag(stored)
    if field == "port":
        return int(stored) if stored.isdigit() else stored
    return stored


class SmtpKind(Kind):
    name = "smtp"
    label = "SMTP server"
    stage = 1
    deletable = False
    write_only = frozenset(SECRETS)
    reads = frozenset({"smtpServer"})

    def desired(self, spec) -> dict[str, Attrs]:
        if spec.smtp is None:
            return {}
        attrs: Attrs = {}
        for field, given in spec.smtp.model_dump(by_alias=True, exclude_none=True).items():
            attrs[field] = Secret(given.get_secret_value()) if field in SECRETS else given
        return {spec.realm: attrs}

    def live(self, raw) -> dict[str, Attrs]:
        """The SMTP server if the realm has one (an empty map is none: the file's is then a create)."""
        stored = raw.export.get("smtpServer") or {}
        if not stored:
            return {}
        return {raw.name: {f: value(f, stored.get(k)) for f, k in FIELDS.items()}}

    def create(self, ctx: ApplyContext, change) -> None:
        self._write(ctx, change.key, {})

    def update(self, ctx: ApplyContext, change) -> None:
        self._write(ctx, change.key, (ctx.live.raw.export or {}).get("smtpServer") or {})

    def _write(self, ctx: ApplyContext, key: str, stored: dict) -> None:
        """Keycloak's map (secrets as `**********`, which keeps them) with every key of the file over it."""
        body = dict(stored)
        for field, given in ctx.desired[self.name][key].items():
            body[{**FIELDS, **SECRETS}[field]] = given.reveal() if isinstance(given, Secret) else text(given)
        ctx.client.put(ctx.base, {"smtpServer": body}, f"SMTP server of realm '{ctx.realm}'")

    def export(self, key, fields, ctx) -> None:
        """The keys that differ from a new realm's (which has none); a stored secret becomes a
        `{{ env.NAME }}` reference, listed as not exported: Keycloak never returns its value."""
        stored = (ctx.live.raw.export or {}).get("smtpServer") or {}
        section = ctx.section("smtp")
        section.update({f: fields[f] for f in FIELDS if f in fields})
        for field, stored_key in SECRETS.items():
            if stored.get(stored_key):
                section[field] = reference = ctx.secret_ref("smtp", field)
                variable = reference[len("{{ env."):-len(" }}")]
                ctx.not_exported(self.label, key, f"{field}: Keycloak does not return it, set {variable} to it")
        for stored_key in sorted(set(stored) - set(FIELDS.values()) - set(SECRETS.values())):
            ctx.not_exported(self.label, key, stored_key)
