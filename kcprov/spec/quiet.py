"""Silencing plan warnings: the stable id of each warning, and the realm file's `x-kcprov-quiet-warnings`.

A plan warning (kcprov.checks) says a setup is legal but risky; once its
reader has understood it, seeing it on every plan hides the new ones. Each
warning therefore carries a short id that never changes with its wording,
shown after the text (`[dcr-default-scopes]`); `kcprov plan/apply
--quiet-warning ID` or a top-level `x-kcprov-quiet-warnings: [ID, ...]`
silences it. The key starts with `x-` so Docker-Compose-style tools and older
kcprov versions skip it; it is nonetheless a checked key (an unknown id is a
file:line error: a typo would silence nothing, unnoticed).
"""

from __future__ import annotations

import difflib
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from kcprov.spec.fields import spec_error

KEY = "x-kcprov-quiet-warnings"

# id -> what the warning is about (shell completion shows it: one short line). An id is never renamed or reused:
# realm files and CI scripts name it.
WARNINGS: dict[str, str] = {
    "resource-indicators-audience": "resource-indicators on: tokens carry only the server URL as audience",
    "dcr-default-scopes": "Keycloak < 26.8.0: DCR clients get only 'basic' as default scope",
    "dcr-default-scope-audience": "Keycloak < 26.8.0: a default scope's audience misses DCR clients",
    "claude-desktop-grant": "Keycloak < 26.8 rejects Claude Desktop's metadata document",
    "client-credentials-resource": "client credentials with resource= answer HTTP 500 on Keycloak 26.7",
    "issuer-http": "the issuer is plain http on a non-loopback host",
    "server-url-http": "an MCP server URL is plain http on a non-loopback host",
    "server-url-not-canonical": "an MCP server URL is not in canonical form",
    "cimd-allow-http": "cimd allow_http accepts http:// client_id documents",
    "redirect-uri-wildcard": "a redirect URI with a wildcard",
    "redirect-uri-http": "a redirect URI that is neither loopback nor HTTPS",
    "extra-audience-slash": "an extra audience that is the server URL but for a trailing '/'",
    "audience-mismatch": "an audience mapper whose audience is not the MCP server URL",
    "dcr-no-trusted-hosts": "dcr without trusted_hosts: every registration is refused",
    "cimd-no-trusted-domains": "cimd without trusted_domains: every client_id document is refused",
    "dcr-admin-role": "DCR clients cannot use the admin tools (full scope disabled)",
    "admin-tools-no-role": "admin tools without an admin_role",
    "token-lifespan": "settings.access_token_lifespan longer than the MCP servers ask for",
    "refresh-token-rotation": "settings.revoke_refresh_token is false",
    "refresh-token-reuse": "settings.refresh_token_max_reuse is not 0",
    "pkce-plain": "a client with pkce: plain",
    "undeclared-user-attribute": "user attributes the user profile does not declare",
    "preset-cimd-refused": "a client preset whose metadata document Keycloak refuses: registered by DCR",
    "preset-registers-from-anywhere": "a DCR client preset: anonymous registration accepted from any host",
}


def id_hint(value: str) -> str:
    """What to write instead of an unknown id."""
    close = difflib.get_close_matches(value, WARNINGS, n=1)
    return f"did you mean {close[0]}?" if close else "the id is shown in brackets after each warning of `kcprov plan`"


def check_id(value: str) -> str:
    """`value` if it names a warning; else a spec error with the closest id as hint."""
    if value not in WARNINGS:
        raise spec_error(f"unknown warning id '{value}'", hint=id_hint(value))
    return value


WarningId = Annotated[str, AfterValidator(check_id), WithJsonSchema({"type": "string", "enum": sorted(WARNINGS)})]
