"""What Keycloak gives a new realm, and what kcprov's create gives a bare object: the export's baseline.

Computed, never hard-coded, because it moves with every Keycloak release
(new built-in scopes, flows, attributes): a throwaway realm
`kcprov-baseline-<hex>` is created with kcprov's own apply, holding one bare
object of each kind that has a create (a realm role, a client scope, a
client with a role, a user, all named `kcprov-template`), read with the same
bulk reads as a plan, and deleted again, always. Objects of the new realm
are the built-ins an export leaves out unless changed; the templates are what
a realm file entry naming only the object would create, so an export writes
exactly the fields that differ from them. The result is cached per Keycloak
server and version for the run.

Names embedding the realm (`default-roles-<realm>`, `/realms/<realm>/account/`)
are rebased onto the exported realm's name before comparing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from kcprov.errors import KeycloakApiError
from kcprov.keycloak import KeycloakClient, seg
from kcprov.resources.base import Attrs
from kcprov.spec.models import RealmSpec

TEMPLATE = "kcprov-template"  # also kcprov.resources.clients.TEMPLATE, which compares with its representation
# kind -> key of its template object in the baseline realm
TEMPLATE_KEYS = {"role": TEMPLATE, "client_scope": TEMPLATE, "client": TEMPLATE,
                 "client_role": f"{TEMPLATE}/{TEMPLATE}", "user": TEMPLATE, "scope_roles": TEMPLATE}


@dataclass(frozen=True)
class Baseline:
    realm: str  # the throwaway realm's name, which its values embed
    version: str
    objects: dict[str, dict[str, Attrs]]  # kind -> key -> attrs, templates left out
    templates: dict[str, Attrs]  # kind -> attrs of its bare created object
    export: dict  # the raw partial export, for what no kind models

    def rebased(self, realm: str) -> Baseline:
        """The baseline with the throwaway realm's name replaced by `realm` in keys and values."""
        return Baseline(realm, self.version, rename(self.objects, self.realm, realm),
                        rename(self.templates, self.realm, realm), rename(self.export, self.realm, realm))


def rename(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {rename(k, old, new): rename(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [rename(v, old, new) for v in value]
    return value


_CACHE: dict[tuple[str, str], Baseline] = {}


def template_spec(realm: str) -> RealmSpec:
    return RealmSpec.model_validate({
        "realm": realm,
        "roles": [{"name": TEMPLATE}],
        "client_scopes": [{"name": TEMPLATE}],
        "clients": [{"client_id": TEMPLATE, "roles": [TEMPLATE]}],
        "users": [{"username": TEMPLATE}],
        "user_profile": {},  # names the profile, so the baseline reads a new realm's (kcprov.resources.user_profile)
    })


def baseline(client: KeycloakClient) -> Baseline:
    """The baseline of this Keycloak (cached per server URL and version)."""
    version = str((client.server_info().get("systemInfo") or {}).get("version", "unknown"))
    cached = _CACHE.get((client.settings.url, version))
    if cached is None:
        cached = _CACHE[(client.settings.url, version)] = _compute(client, version)
    return cached


def _compute(client: KeycloakClient, version: str) -> Baseline:
    from kcprov.apply import apply_plan
    from kcprov.errors import KcprovError
    from kcprov.resources import KINDS
    from kcprov.state import read_state
    from kcprov.workflow import plan_realm

    name = f"kcprov-baseline-{secrets.token_hex(6)}"
    try:
        run = plan_realm(client, template_spec(name), "<baseline>")
        result = apply_plan(client, run.plan, run.live, run.desired, KINDS)
        if not result.ok:
            first = result.errors[0] if result.errors else None
            raise KcprovError(f"could not create the baseline realm '{name}' to compare the export with"
                              + (f": {first.message}" if first else "."),
                              hint="the admin account needs the create-realm role (kcprov deletes the realm again)")
        live = read_state(client, name, run.desired, KINDS)
    finally:
        try:
            client.delete(f"/admin/realms/{seg(name)}", f"baseline realm '{name}'")
        except KeycloakApiError as exc:
            if exc.status != 404:  # 404: the run failed before the realm was made
                raise
    objects = {kind: dict(found) for kind, found in live.objects.items()}
    templates = {kind: objects.get(kind, {}).pop(key, {}) for kind, key in TEMPLATE_KEYS.items()}
    return Baseline(name, version, objects, templates, live.raw.export or {})
