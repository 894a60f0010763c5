"""Dynamic Client Registration policies (components of the realm), per kind.

Each spec option maps to one config entry of one policy component; only the
options the file names are compared, and the other default policies stay as
Keycloak has them. Components are never deleted: the realm needs them.
"""

from __future__ import annotations

from kcprov.resources.base import ApplyContext, Attrs, Kind, text

PROVIDER_TYPE = "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy"
# spec option -> (policy provider id, config key)
OPTIONS = {
    "trusted_hosts": ("trusted-hosts", "trusted-hosts"),
    "host_sending_request_must_match": ("trusted-hosts", "host-sending-registration-request-must-match"),
    "client_uris_must_match": ("trusted-hosts", "client-uris-must-match"),
    "allowed_client_scopes": ("allowed-client-templates", "allowed-client-scopes"),
    "allow_default_scopes": ("allowed-client-templates", "allow-default-scopes"),
    "max_clients": ("max-clients", "max-clients"),
    "allowed_web_origins": ("registration-web-origins", "web-origins"),
}
LIST_KEYS = {"trusted-hosts", "allowed-client-scopes", "web-origins", "allowed-protocol-mapper-types"}
POLICY_NAMES = {
    "trusted-hosts": "Trusted Hosts",
    "allowed-client-templates": "Allowed Client Scopes",
    "max-clients": "Max Clients Limit",
    "registration-web-origins": "Allowed Registration Web Origins",
}


def config_value(key: str, values: list[str]):
    """Component config values are lists of strings; single-valued keys compare as one string."""
    return sorted(values) if key in LIST_KEYS else (values[0] if values else None)


class RegistrationPolicyKind(Kind):
    name = "registration_policy"
    label = "client registration policy"
    stage = 3
    deletable = False

    def desired(self, spec) -> dict[str, Attrs]:
        out: dict[str, Attrs] = {}
        registration = spec.client_registration
        for sub_type in ("anonymous", "authenticated"):
            policy = getattr(registration, sub_type, None) if registration else None
            if policy is None:
                continue
            for option, value in policy.model_dump(exclude_none=True).items():
                provider, key = OPTIONS[option]
                flat = sorted(value) if key in LIST_KEYS else text(value)
                out.setdefault(f"{sub_type}/{provider}", {})[f"config.{key}"] = flat
        return out

    def live(self, raw) -> dict[str, Attrs]:
        out: dict[str, Attrs] = {}
        for comp in (raw.export.get("components") or {}).get(PROVIDER_TYPE, []):
            key = f"{comp.get('subType')}/{comp['providerId']}"
            if key in out:
                continue  # several components of one kind: the first one is the one kcprov manages
            config = comp.get("config") or {}
            attrs = {f"config.{k}": config_value(k, v) for k, v in config.items()}
            for provider, cfg in OPTIONS.values():  # empty lists are dropped on read
                if provider == comp["providerId"] and cfg in LIST_KEYS:
                    attrs.setdefault(f"config.{cfg}", [])
            out[key] = attrs
        return out

    def export(self, key, fields, ctx) -> None:
        """Options of the policies kcprov names; other configuration keys are listed as not exported."""
        sub_type, provider = key.split("/", 1)
        options = {cfg: option for option, (p, cfg) in OPTIONS.items() if p == provider}
        for field, value in sorted(fields.items()):
            config_key = field.removeprefix("config.")
            if config_key in options and sub_type in ("anonymous", "authenticated"):
                ctx.section("client_registration", sub_type)[options[config_key]] = option_value(value)
            else:
                ctx.cannot_write(self.label, key, field, config_key)

    def _component(self, ctx: ApplyContext, key: str) -> dict | None:
        sub_type, provider = key.split("/", 1)
        for comp in (ctx.live.raw.export.get("components") or {}).get(PROVIDER_TYPE, []):
            if comp.get("subType") == sub_type and comp["providerId"] == provider:
                return comp
        return None

    def create(self, ctx: ApplyContext, change) -> None:
        # A new realm comes with its default policies: a "create" usually finds one to update.
        self._update_fresh(ctx, change)

    def update(self, ctx: ApplyContext, change) -> None:
        comp = self._component(ctx, change.key)
        if comp is None:
            return self._update_fresh(ctx, change)
        body = {k: v for k, v in comp.items() if k != "subComponents"}
        body.update(providerType=PROVIDER_TYPE, parentId=ctx.live.raw.export["id"])
        self._put(ctx, change, body)

    def _update_fresh(self, ctx: ApplyContext, change) -> None:
        sub_type, provider = change.key.split("/", 1)
        found = ctx.client.get(f"{ctx.base}/components", f"registration policy '{change.key}'", type=PROVIDER_TYPE)
        comp = next((c for c in found if c.get("subType") == sub_type and c["providerId"] == provider), None)
        if comp is not None:
            return self._put(ctx, change, comp)
        body = {
            "name": POLICY_NAMES.get(provider, provider),
            "providerId": provider,
            "providerType": PROVIDER_TYPE,
            "parentId": ctx.client.get(ctx.base, f"realm '{ctx.realm}'")["id"],
            "subType": sub_type,
            "config": {d.field.removeprefix("config."): as_list(d.after) for d in change.diffs},
        }
        ctx.client.post(f"{ctx.base}/components", body, f"registration policy '{change.key}'")

    def _put(self, ctx: ApplyContext, change, comp: dict) -> None:
        config = dict(comp.get("config") or {})
        for d in change.diffs:
            config[d.field.removeprefix("config.")] = as_list(d.after)
        ctx.client.put(f"{ctx.base}/components/{comp['id']}", {**comp, "config": config},
                       f"registration policy '{change.key}'")


def option_value(value):
    """A config value as the file writes it: "true"/"false" -> boolean, digits -> number, lists as they are."""
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def as_list(value) -> list[str]:
    return list(value) if isinstance(value, list) else [value]
