"""Required actions: what users must do before they log in (verify email, configure OTP...).

The realm file's part of this kind (its resource kind is `kcprov.resources.required_actions`).
An entry names a required-action provider by its alias, which is its provider id in
Keycloak (every new realm registers Keycloak's own; a provider from an extension is
registered when the file names it). Only the fields written are managed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, Strict

from kcprov.spec.fields import Flag, Spec, StrMap, _name_rule
from kcprov.spec.findings import Finding, unique

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec

# the alias is a path segment of the Admin API (/authentication/required-actions/{alias})
Alias = Annotated[str, Field(min_length=1), _name_rule(
    "required action alias", r"[A-Za-z0-9._-]",
    "write the provider id Keycloak lists (Authentication -> Required actions), e.g. CONFIGURE_TOTP or webauthn-register",
)]


class RequiredAction(Spec):
    """One required action, by alias; fields left out keep what Keycloak has."""

    alias: Alias = Field(description="The provider id: VERIFY_EMAIL, CONFIGURE_TOTP, UPDATE_PASSWORD, TERMS_AND_CONDITIONS, UPDATE_PROFILE, webauthn-register, ...; a provider the realm has not registered yet is registered.")
    enabled: Flag | None = Field(None, description="Whether the action can be required of users (a disabled one is never asked).")
    default_action: Flag | None = Field(None, description="Whether every new user gets this action (e.g. CONFIGURE_TOTP to make new users set up OTP).")
    priority: Annotated[int, Strict()] | None = Field(None, ge=0, le=2**31 - 1, description="Order in which pending actions are asked, lowest first (Keycloak's own are 10-1000).")
    config: StrMap | None = Field(None, description="Per-action configuration, e.g. {max_auth_age: 300} for UPDATE_PASSWORD (seconds since login before re-authentication); only the keys given are managed.")


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Each alias once: two entries for one action would fight over its fields."""
    named = ((("required_actions", i, "alias"), a.alias) for i, a in enumerate(spec.required_actions))
    return unique(named, "required action")
