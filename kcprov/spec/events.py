"""User and admin event settings: whether Keycloak records them, which types, for how long, who listens.

The realm file's part of this kind (its resource kind is `kcprov.resources.events`).
Event types are checked offline against Keycloak 26.7.3's EventType names (the
server's `/admin/serverinfo` enums.eventType), so a typo is a file:line error,
not a type Keycloak silently never records (its Admin API stores any string).
Listeners are provider ids; custom ones come from extensions, so they are
checked against the server at plan time (`kcprov.resources.events`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from kcprov.spec.fields import Duration, Flag, Spec, _name_rule
from kcprov.spec.findings import Finding, unique, unknown

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec

# Keycloak 26.7.3's EventType: every one of these also has a NAME_ERROR type
_EVENTS = """
AUTHREQID_TO_TOKEN CLIENT_DELETE CLIENT_INFO CLIENT_INITIATED_ACCOUNT_LINKING CLIENT_LOGIN CLIENT_REGISTER
CLIENT_UPDATE CODE_TO_TOKEN CUSTOM_REQUIRED_ACTION DELETE_ACCOUNT EXECUTE_ACTIONS EXECUTE_ACTION_TOKEN
FEDERATED_IDENTITY_LINK FEDERATED_IDENTITY_OVERRIDE_LINK GRANT_CONSENT IDENTITY_PROVIDER_FIRST_LOGIN
IDENTITY_PROVIDER_LINK_ACCOUNT IDENTITY_PROVIDER_LOGIN IDENTITY_PROVIDER_POST_LOGIN IDENTITY_PROVIDER_RESPONSE
IDENTITY_PROVIDER_RETRIEVE_TOKEN IMPERSONATE INTROSPECT_TOKEN INVALID_SIGNATURE INVITE_ORG
JWT_AUTHORIZATION_GRANT LOGIN LOGOUT OAUTH2_DEVICE_AUTH OAUTH2_DEVICE_CODE_TO_TOKEN
OAUTH2_DEVICE_VERIFY_USER_CODE OAUTH2_EXTENSION_GRANT PERMISSION_TOKEN PUSHED_AUTHORIZATION_REQUEST
REFRESH_TOKEN REGISTER REGISTER_NODE REMOVE_CREDENTIAL REMOVE_FEDERATED_IDENTITY REMOVE_TOTP RESET_PASSWORD
RESTART_AUTHENTICATION REVOKE_GRANT SEND_IDENTITY_PROVIDER_LINK SEND_RESET_PASSWORD SEND_VERIFY_EMAIL
TOKEN_EXCHANGE UNREGISTER_NODE UPDATE_CONSENT UPDATE_CREDENTIAL UPDATE_EMAIL UPDATE_PASSWORD UPDATE_PROFILE
UPDATE_TOTP USER_DISABLED_BY_PERMANENT_LOCKOUT USER_DISABLED_BY_TEMPORARY_LOCKOUT USER_INFO_REQUEST
USER_SESSION_DELETED VALIDATE_ACCESS_TOKEN VERIFIABLE_CREDENTIAL_CREATE_OFFER
VERIFIABLE_CREDENTIAL_NONCE_REQUEST VERIFIABLE_CREDENTIAL_OFFER_REQUEST
VERIFIABLE_CREDENTIAL_PRE_AUTHORIZED_GRANT VERIFIABLE_CREDENTIAL_REQUEST VERIFY_EMAIL VERIFY_PROFILE
""".split()
EVENT_TYPES = frozenset(_EVENTS) | frozenset(f"{name}_ERROR" for name in _EVENTS)

Listener = Annotated[str, Field(min_length=1), _name_rule(
    "event listener", r"[A-Za-z0-9._-]", "write an event listener provider id, e.g. jboss-logging or email",
)]


class AdminEvents(Spec):
    """Admin events: changes made through the Admin API and console."""

    enabled: Flag | None = Field(None, description="Record admin events (who changed what).")
    include_representation: Flag | None = Field(None, description="Keep the JSON of each change with its admin event.")


class Events(Spec):
    """The realm's event settings; keys left out keep what Keycloak has."""

    enabled: Flag | None = Field(None, description="Record user events (logins, logouts, errors...) in the database.")
    expiration: Duration | None = Field(None, description="How long user events are kept: seconds or 7d, 12h, 30m (left out: Keycloak's default, kept forever).")
    types: list[str] | None = Field(None, description="The user event types recorded, e.g. [LOGIN, LOGIN_ERROR]; [] is Keycloak's default selection (the types it saves by default, not every type).")
    listeners: list[Listener] | None = Field(None, description="Event listener providers, exactly these: jboss-logging (Keycloak's default, logs events), email, or an extension's.")
    admin_events: AdminEvents | None = Field(None, description="Whether admin events are recorded, and with their representation.")


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Event types Keycloak knows, each once; each listener once."""
    events = spec.events
    if events is None:
        return
    for i, name in enumerate(events.types or []):
        if name not in EVENT_TYPES:
            yield unknown(("events", "types", i), "event type", name, EVENT_TYPES,
                          "write one of Keycloak's event types (Realm settings -> Events -> User events settings)")
    yield from unique(((("events", "types", i), t) for i, t in enumerate(events.types or [])), "event type")
    yield from unique(((("events", "listeners", i), n) for i, n in enumerate(events.listeners or [])), "event listener")
