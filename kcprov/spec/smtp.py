"""The realm's SMTP server, its password a secret.

The realm file's part of this kind (its resource kind is `kcprov.resources.smtp`).
Keys are Keycloak's smtpServer settings in snake_case (`from_display_name` is
fromDisplayName); addresses are checked to be email addresses and ports to be
ports, because Keycloak refuses a bad sender only when it first sends a mail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, Strict, model_validator

from kcprov.spec.fields import Flag, Label, Name, Spec, spec_error
from kcprov.spec.findings import Finding

if TYPE_CHECKING:
    from kcprov.spec.models import RealmSpec

_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")


def _address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        shown = repr(value if len(value) <= 40 else value[:37] + "...")
        raise spec_error(f"{shown} is not an email address", hint="write an address such as noreply@example.com")
    return value


Address = Annotated[str, AfterValidator(_address)]


class Smtp(Spec):
    """The SMTP server the realm sends email through; keys left out keep what Keycloak has."""

    host: Name | None = Field(None, description="SMTP server host name.")
    port: Annotated[int, Strict()] | None = Field(None, ge=1, le=65535, description="SMTP port: 25, 465 (ssl) or 587 (starttls).")
    from_: Address | None = Field(None, alias="from", description="Sender address of every email (required by Keycloak to send).")
    from_display_name: Label | None = Field(None, description="Sender name shown with the from address.")
    reply_to: Address | None = Field(None, description="Reply-To address.")
    reply_to_display_name: Label | None = Field(None, description="Name shown with the reply-to address.")
    envelope_from: Address | None = Field(None, description="Envelope sender (bounce address), if not the from address.")
    ssl: Flag | None = Field(None, description="Connect with TLS (SMTPS, usually port 465).")
    starttls: Flag | None = Field(None, description="Upgrade the connection with STARTTLS (usually port 587).")
    auth: Flag | None = Field(None, description="Log in to the SMTP server (needs user).")
    auth_type: Literal["basic", "token"] | None = Field(None, description="How to log in: basic (user and password, Keycloak's default) or token (XOAUTH2 with a client-credentials token from auth_token_url).")
    user: Name | None = Field(None, description="SMTP user name.")
    password: SecretStr | None = Field(None, description="SMTP password (basic auth); use {{ env.NAME }}, never a literal. Never printed, never read back: written whenever kcprov writes the SMTP server.")
    auth_token_url: Name | None = Field(None, description="Token endpoint the XOAUTH2 token is fetched from (auth_type: token).")
    auth_token_scope: Name | None = Field(None, description="Scope of the XOAUTH2 token (auth_type: token).")
    auth_token_client_id: Name | None = Field(None, description="Client id for the token request (auth_type: token).")
    auth_token_client_secret: SecretStr | None = Field(None, description="Client secret for the token request (auth_type: token); use {{ env.NAME }}. Never printed, never read back.")
    allow_utf8: Flag | None = Field(None, description="Allow UTF-8 in addresses (the SMTP server must support SMTPUTF8).")

    @model_validator(mode="after")
    def _login(self):
        if self.auth and not self.user:
            raise spec_error("auth: true needs a user", hint="add user: (and password:, or auth_type: token)", at="auth")
        if self.auth_type == "token":
            missing = [f for f in ("auth_token_url", "auth_token_client_id", "auth_token_client_secret")
                       if getattr(self, f) is None]
            if missing:
                raise spec_error(f"auth_type: token needs {', '.join(missing)}",
                                 hint="Keycloak fetches the token with the client credentials grant", at="auth_type")
            if self.password is not None:
                raise spec_error("password is not used with auth_type: token (Keycloak drops it)",
                                 hint="remove password, or write auth_type: basic", at="password")
        return self


def check(spec: RealmSpec) -> Iterator[Finding]:
    """Nothing to check across the file: the SMTP server names nothing else in it."""
    return iter(())
