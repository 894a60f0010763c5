"""The reference MCP server (examples/mcp-server) with a weak token verifier, for `kcprov audit --server` tests.

`create_app(config, verifier=...)` takes any verifier, so each weakness is a
small subclass of the reference `JwtTokenVerifier` here, in tests, and the
shipped server has no switch that weakens it. `serve(config, weakness)` runs
one in-process on its resource URL's port (uvicorn in a thread).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import jwt
from cryptography.hazmat.primitives import serialization
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "mcp-server"


def example_module(name: str) -> Any:
    """A module beside examples/mcp-server/server.py (they import each other by name)."""
    if str(EXAMPLE_DIR) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_DIR))
    return importlib.import_module(name)


config_mod = example_module("config")
verifier_mod = example_module("token_verifier")
server_mod = example_module("server")


class NoAudienceCheck(verifier_mod.JwtTokenVerifier):
    """Checks signature, issuer and expiry, but takes any `aud` (the classic confused-deputy hole)."""

    async def _verify(self, token: str) -> tuple[dict[str, Any], str]:
        key = await self._signing_key(jwt.get_unverified_header(token)["kid"])
        claims = jwt.decode(token, key, algorithms=[key.algorithm_name], issuer=self.issuer,
                            options={"verify_aud": False, "require": ["exp", "iss"]})
        return claims, self.audiences[0]


class AcceptsAlgNone(verifier_mod.JwtTokenVerifier):
    """Checks every claim, but believes a token whose header says `alg: none`."""

    async def _verify(self, token: str) -> tuple[dict[str, Any], str]:
        if jwt.get_unverified_header(token).get("alg") == "none":
            claims = jwt.decode(token, options={"verify_signature": False})
            return claims, verifier_mod.check_claims(claims, issuer=self.issuer, audiences=self.audiences)
        return await super()._verify(token)


class AcceptsPublicKeyAsHmacSecret(verifier_mod.JwtTokenVerifier):
    """Verifies HS256 with the PEM of the kid's public key as the HMAC secret (algorithm confusion)."""

    async def _verify(self, token: str) -> tuple[dict[str, Any], str]:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "HS256":
            return await super()._verify(token)
        key = await self._signing_key(header["kid"])
        pem = key.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        signing_input, _, signature = token.rpartition(".")
        expected = base64.urlsafe_b64encode(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected.rstrip(b"=").decode(), signature):
            raise verifier_mod.TokenRejected("bad HMAC")
        claims = jwt.decode(token, options={"verify_signature": False})
        return claims, verifier_mod.check_claims(claims, issuer=self.issuer, audiences=self.audiences)


class NoExpiryCheck(verifier_mod.JwtTokenVerifier):
    """Checks signature, issuer and audience, never `exp` (and tells the SDK the token never expires)."""

    async def verify_token(self, token: str) -> Any:
        try:
            key = await self._signing_key(jwt.get_unverified_header(token)["kid"])
            claims = jwt.decode(token, key, algorithms=[key.algorithm_name], issuer=self.issuer,
                                audience=list(self.audiences), options={"verify_exp": False})
        except (jwt.PyJWTError, KeyError):
            return None
        access = verifier_mod.access_token_from_claims(token, claims, self.audiences[0])
        return access.model_copy(update={"expires_at": None})


class TrustsTheTokensIssuer(verifier_mod.JwtTokenVerifier):
    """Takes the signing keys from the token's own `iss` (any realm of the same Keycloak), checks the audience."""

    async def _verify(self, token: str) -> tuple[dict[str, Any], str]:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss", "")
        if not issuer.startswith(self.issuer.rsplit("/realms/", 1)[0] + "/realms/"):
            raise verifier_mod.TokenRejected("issuer on another host")
        keys = jwt.PyJWKClient(f"{issuer}/protocol/openid-connect/certs")
        key = await anyio.to_thread.run_sync(keys.get_signing_key_from_jwt, token)
        claims = jwt.decode(token, key, algorithms=["RS256"], audience=list(self.audiences))
        return claims, self.audiences[0]


class EchoesTheToken(BaseHTTPMiddleware):
    """A 401 whose error description quotes the Authorization header it refused."""

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        sent = request.headers.get("authorization")
        if response.status_code != 401 or not sent:
            return response
        body = {"error": "invalid_token", "error_description": f"refused: {sent}"}
        return JSONResponse(body, 401, headers={"www-authenticate": response.headers.get("www-authenticate", "")})


class RefusesEverything(verifier_mod.JwtTokenVerifier):
    """Misconfigured: no token is ever good enough (so the token probes cannot tell anything)."""

    async def verify_token(self, token: str) -> Any:
        return None


class GrantsTheBaseScope(verifier_mod.JwtTokenVerifier):
    """Every valid token counts as holding the base scope, whatever its `scope` says."""

    async def verify_token(self, token: str) -> Any:
        access = await super().verify_token(token)
        return access.model_copy(update={"scopes": [*access.scopes, "mcp:tools"]}) if access else None


class _Rewrite:
    """ASGI middleware changing the start of some responses; `change(scope, message)` returns the new message."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def rewritten(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = self.change(scope, message)
            await send(message)

        await self.app(self.before(scope), receive, rewritten)

    def before(self, scope: Any) -> Any:
        return scope

    def change(self, scope: Any, message: Any) -> Any:
        return message


class SessionRemembersTheToken(_Rewrite):
    """A request with a known Mcp-Session-Id and no token gets the session's token (session id as authentication)."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.tokens: dict[bytes, bytes] = {}

    def before(self, scope: Any) -> Any:
        headers = dict(scope["headers"])
        session = headers.get(b"mcp-session-id")
        if session in self.tokens and b"authorization" not in headers:
            return {**scope, "headers": [*scope["headers"], (b"authorization", self.tokens[session])]}
        return scope

    def change(self, scope: Any, message: Any) -> Any:
        token = dict(scope["headers"]).get(b"authorization")
        for key, value in message.get("headers", []):
            if key.lower() == b"mcp-session-id" and token:
                self.tokens[value] = token
        return message


class BareForbidden(_Rewrite):
    """A 403 without its WWW-Authenticate challenge (clients cannot step up)."""

    def change(self, scope: Any, message: Any) -> Any:
        if message["status"] != 403:
            return message
        return {**message, "headers": [(k, v) for k, v in message.get("headers", []) if k.lower() != b"www-authenticate"]}


class BadRequestForBadTokens(_Rewrite):
    """A refused token gets 400 instead of 401."""

    def change(self, scope: Any, message: Any) -> Any:
        if message["status"] == 401 and b"authorization" in dict(scope["headers"]):
            return {**message, "status": 400}
        return message


JWT = verifier_mod.JwtTokenVerifier
#: weakness -> (token verifier, ASGI middleware around the app or None)
WEAKNESSES: dict[str, tuple[type, type | None]] = {
    "none": (JWT, None),
    "no-audience": (NoAudienceCheck, None),
    "alg-none": (AcceptsAlgNone, None),
    "hs256-public-key": (AcceptsPublicKeyAsHmacSecret, None),
    "no-expiry": (NoExpiryCheck, None),
    "trusts-token-issuer": (TrustsTheTokensIssuer, None),
    "echoes-token": (JWT, EchoesTheToken),
    "refuses-everything": (RefusesEverything, None),
    "grants-base-scope": (GrantsTheBaseScope, None),
    "session-authenticates": (JWT, SessionRemembersTheToken),
    "bare-403": (JWT, BareForbidden),
    "400-for-bad-tokens": (JWT, BadRequestForBadTokens),
}


def config_for(settings: Mapping[str, str], port: int, **overrides: str) -> Any:
    """The env file's settings, moved to `port` (the resource URL and the accepted audience follow)."""
    url = f"http://localhost:{port}/mcp"
    return config_mod.parse_config({**settings, "HOST": "127.0.0.1", "PORT": str(port),
                                    "MCP_RESOURCE_URL": url, "MCP_AUDIENCES": url, **overrides})


@contextmanager
def serve(config: Any, weakness: str = "none") -> Iterator[str]:
    """Run the server with the named verifier until the block ends; yields its URL."""
    import uvicorn

    verifier_class, middleware = WEAKNESSES[weakness]
    verifier = verifier_class(issuer=config.issuer, jwks_url=config.jwks_url, audiences=config.audiences,
                              jwks_refresh_cooldown=config.jwks_refresh_cooldown)
    app = server_mod.create_app(config, verifier=verifier)
    if middleware is not None:
        app.add_middleware(middleware)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the MCP server did not start")
        time.sleep(0.02)
    try:
        yield config.resource_url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
