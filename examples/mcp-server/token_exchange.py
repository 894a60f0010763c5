"""Calling downstream APIs on the user's behalf without passing the user's token through.

The MCP authorization spec forbids forwarding the token a client sent
(no token passthrough): that token's audience is this MCP server, and an API
accepting it would accept any token meant for anyone. Instead, for each call,
the server asks Keycloak for a token of the API's own audience by standard
token exchange (RFC 8693; Keycloak 26.2+ "standard token exchange V2"):

    POST <token endpoint>   (client_secret_basic: the exchange client kcprov made)
    grant_type=urn:ietf:params:oauth:grant-type:token-exchange
    subject_token=<the caller's validated access token>
    subject_token_type=urn:ietf:params:oauth:token-type:access_token
    requested_token_type=urn:ietf:params:oauth:token-type:access_token
    audience=<the API's client_id>  [scope=<the API's scopes>]

The exchanged token keeps the user as ``sub`` and has ``aud`` = the API and
``azp`` = the exchange client. Tokens are never logged or put in an error:
a refusal is reported by Keycloak's ``error`` code and HTTP status only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx

from config import DownstreamApi, ServerConfig

logger = logging.getLogger("mcp_reference_server.token_exchange")

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
#: Keycloak's error texts are short sentences; longer ones are cut.
_MAX_ERROR_TEXT = 200


class ExchangeError(Exception):
    """Keycloak refused the exchange, or the downstream call failed; the message holds no token."""


@dataclass(frozen=True)
class DownstreamAnswer:
    """What a downstream API answered: its HTTP status and JSON body."""

    status: int
    body: Any


class DownstreamCaller:
    """Exchanges the caller's token for each API's audience and calls the API with the new token."""

    def __init__(self, config: ServerConfig, http_client: httpx.AsyncClient | None = None, timeout: float = 10.0):
        self.apis = {api.audience: api for api in config.downstream}
        self._token_url = config.token_url
        self._auth = httpx.BasicAuth(quote_plus(config.exchange_client_id), quote_plus(config.exchange_client_secret))
        self._http = http_client or httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False)

    def api(self, audience: str | None) -> DownstreamApi:
        """The API named by its audience (the first one when None); ExchangeError for an unknown one."""
        if audience is None:
            return next(iter(self.apis.values()))
        if audience not in self.apis:
            raise ExchangeError(f"no downstream API {audience!r}; this server calls {', '.join(self.apis)}")
        return self.apis[audience]

    async def exchange(self, subject_token: str, api: DownstreamApi) -> str:
        """A token for `api`'s audience from Keycloak, in place of `subject_token` (RFC 8693)."""
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "audience": api.audience,
        }
        if api.scopes:
            form["scope"] = " ".join(api.scopes)
        try:
            response = await self._http.post(self._token_url, data=form, auth=self._auth)
        except httpx.HTTPError as exc:
            raise ExchangeError(f"token exchange for {api.audience!r}: Keycloak unreachable ({type(exc).__name__})") from None
        body = _json(response)
        token = body.get("access_token") if response.status_code == 200 else None
        if not isinstance(token, str) or not token:
            why = f"{_short(body.get('error')) or 'no access_token'}: {_short(body.get('error_description'))}"
            logger.warning("token exchange for %s refused: HTTP %d %s", api.audience, response.status_code, why)
            raise ExchangeError(f"token exchange for {api.audience!r} refused by Keycloak (HTTP {response.status_code}, {why})")
        return token

    async def call(self, subject_token: str, audience: str | None, path: str) -> DownstreamAnswer:
        """GET `path` of the API with a token exchanged for it; the caller's token never leaves for the API."""
        api = self.api(audience)
        token = await self.exchange(subject_token, api)
        try:
            response = await self._http.get(api.url.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise ExchangeError(f"downstream API {api.audience!r} unreachable ({type(exc).__name__})") from None
        return DownstreamAnswer(status=response.status_code, body=_json(response))

    async def aclose(self) -> None:
        await self._http.aclose()


def _short(value: Any) -> str:
    """Keycloak's error or error_description, printable ASCII and capped; "" for anything else."""
    if not isinstance(value, str):
        return ""
    return "".join(ch if ch.isascii() and ch.isprintable() else "?" for ch in value[:_MAX_ERROR_TEXT])


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
