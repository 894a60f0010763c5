"""The official MCP Python SDK as an MCP client application uses it, plus a recorder of its traffic.

``UserAgent`` is the part of a client application the SDK leaves to the
application: opening the authorization URL for the user (here: the login
driver, a real browser or the fallback) and reading the redirect that comes
back to the loopback redirect URI.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
from e2e_login import BrowserLogin, Consent, HttpLogin, LoginResult
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken


class MemoryStorage:
    """TokenStorage kept in memory (a real client would use the OS keychain)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class Exchange:
    """One HTTP request the client sent and the status it got."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(errors="replace")).items()}

    def json(self) -> Any:
        return json.loads(self.body)


class Traffic:
    """Every request of one client (MCP, discovery, registration, token), via httpx2 event hooks."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def hooks(self) -> dict[str, list[Any]]:
        async def on_request(request: httpx2.Request) -> None:
            try:
                body = request.content
            except httpx2.RequestNotRead:  # a streamed body: not one this suite needs to read
                body = b""
            self.exchanges.append(Exchange(request.method, str(request.url), dict(request.headers), body))

        async def on_response(response: httpx2.Response) -> None:
            for exchange in reversed(self.exchanges):
                if exchange.status is None and exchange.url == str(response.request.url):
                    exchange.status = response.status_code
                    exchange.response_headers = dict(response.headers)
                    break

        return {"request": [on_request], "response": [on_response]}

    def to(self, url_prefix: str, method: str | None = None) -> list[Exchange]:
        return [e for e in self.exchanges if e.url.startswith(url_prefix) and (method is None or e.method == method)]


class AuthorizationDenied(Exception):
    """The authorization response carried an error instead of a code."""

    def __init__(self, params: dict[str, str]):
        super().__init__(f"authorization error {params.get('error')!r}: {params.get('error_description', '')}")
        self.params = params


class UserAgent:
    """Opens the authorization URL for a user and reads the redirect back (the SDK's two handlers)."""

    def __init__(
        self,
        login: BrowserLogin | HttpLogin,
        *,
        username: str,
        password: str,
        redirect_uri: str,
        consent: Consent = "accept",
        screenshot_dir: Path | None = None,
        name: str = "login",
    ) -> None:
        self.login = login
        self.username, self.password = username, password
        self.redirect_uri = redirect_uri
        self.consent = consent
        self.screenshot_dir = screenshot_dir
        self.name = name
        self.authorization_urls: list[str] = []
        self.results: list[LoginResult] = []

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        screenshot = None
        if self.screenshot_dir is not None:
            screenshot = self.screenshot_dir / f"{self.name}-consent-{len(self.authorization_urls)}.png"
        result = await anyio.to_thread.run_sync(
            lambda: self.login.authorize(
                authorization_url,
                username=self.username,
                password=self.password,
                redirect_uri=self.redirect_uri,
                consent=self.consent,
                screenshot=screenshot,
            )
        )
        self.results.append(result)

    async def callback_handler(self) -> AuthorizationCodeResult:
        params = self.callback_params()
        if "error" in params:
            raise AuthorizationDenied(params)
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    def callback_params(self, index: int = -1) -> dict[str, str]:
        query = urlsplit(self.results[index].callback_url).query
        return {k: v[0] for k, v in parse_qs(query).items()}

    def authorization_params(self, index: int = -1) -> dict[str, str]:
        query = urlsplit(self.authorization_urls[index]).query
        return {k: v[0] for k, v in parse_qs(query).items()}


def client_metadata(redirect_uri: str, name: str, scope: str | None = None) -> OAuthClientMetadata:
    return OAuthClientMetadata(
        client_name=name,
        redirect_uris=[redirect_uri],  # type: ignore[list-item]
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
        scope=scope,
    )


def user_provider(
    server_url: str,
    agent: UserAgent,
    *,
    name: str,
    storage: MemoryStorage | None = None,
    client_metadata_url: str | None = None,
) -> OAuthClientProvider:
    """The SDK's authorization-code client (DCR, or CIMD when ``client_metadata_url`` is given)."""
    provider = OAuthClientProvider(
        server_url=server_url,
        client_metadata=client_metadata(agent.redirect_uri, name),
        storage=storage or MemoryStorage(),
        redirect_handler=agent.redirect_handler,
        callback_handler=agent.callback_handler,
    )
    if client_metadata_url is not None:
        # The SDK accepts only https client_id URLs (the CIMD draft's rule) and checks that in its
        # constructor; the dev realm's CIMD profile allows http on loopback, where the test serves
        # the document, so the URL is set after construction. Everything else is the SDK's own flow.
        provider.context.client_metadata_url = client_metadata_url
    return provider


@asynccontextmanager
async def mcp_session(url: str, auth: httpx2.Auth, traffic: Traffic | None = None) -> AsyncIterator[ClientSession]:
    hooks = traffic.hooks() if traffic is not None else None
    async with httpx2.AsyncClient(auth=auth, timeout=60, event_hooks=hooks) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (the server verifies; tests only look)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
