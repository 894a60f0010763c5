"""Bearer token checks for the reference MCP server (the SDK's ``TokenVerifier`` protocol).

Two interchangeable verifiers:

* ``JwtTokenVerifier`` checks the signature locally against the realm's JWKS
  (PyJWT ``PyJWKClient``: cached, refetched on an unknown ``kid``).
* ``IntrospectionTokenVerifier`` asks the authorization server (RFC 7662); use
  it for opaque tokens or when revocation must take effect immediately.

Both apply the same claim rules (``check_claims``): ``iss`` equals the
configured issuer exactly, ``aud`` contains one of the accepted audiences,
``exp`` is present and in the future, ``nbf``/``iat`` are not in the future
(30 s leeway for clock skew). A verifier returns ``None`` for any token it does
not accept; the SDK then answers 401. The token itself is never logged and
never sent anywhere but to the authorization server's introspection endpoint.
The reason for a refusal is logged, cut short and reduced to printable ASCII:
a JWT header is read before its signature is checked, so its ``kid`` or
``alg`` is whatever the client chose, and echoed verbatim it could flood the
log or, with a newline, forge log lines.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote_plus

import anyio.to_thread
import httpx
import jwt
from jwt import PyJWK, PyJWKClient
from mcp.server.auth.provider import AccessToken, TokenVerifier

logger = logging.getLogger(__name__)

#: Asymmetric JWS algorithms only: never ``none``, never HS* (a public key used as an HMAC secret).
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: Seconds of clock skew tolerated on ``nbf`` and ``iat``.
LEEWAY_SECONDS = 30
#: Characters of a refusal reason that reach the log.
REASON_LIMIT = 160


class TokenRejected(Exception):
    """Why a token was refused. The message is safe to log: it never contains the token."""


def printable(value: str, limit: int = 64) -> str:
    """Client-supplied text made safe for a header or a log line: printable ASCII, at most ``limit`` characters."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in value[:limit])
    return cleaned + ("..." if len(value) > limit else "")


def _log_rejection(reason: str, level: int = logging.INFO) -> None:
    logger.log(level, "bearer token rejected: %s", printable(reason, REASON_LIMIT))


def check_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    audiences: Iterable[str],
    now: float | None = None,
    leeway: int = LEEWAY_SECONDS,
    dpop: bool = False,
) -> str:
    """Apply the resource server's claim rules; return the matched audience.

    Used on decoded JWT payloads and on introspection responses alike. With
    ``dpop`` (the server requires DPoP, and its middleware checks the proof and
    ``cnf.jkt``) Keycloak's DPoP tokens (``typ`` DPoP) pass; without it a token
    bound to a key (``cnf.jkt``) is refused: sent as a plain Bearer token, it
    may be a stolen one (RFC 9449 §7.2).
    """
    now = time.time() if now is None else now
    if claims.get("iss") != issuer:
        raise TokenRejected(f"issuer {claims.get('iss')!r} is not {issuer!r}")

    aud = claims.get("aud")
    token_audiences = [aud] if isinstance(aud, str) else list(aud) if isinstance(aud, list) else []
    matched = next((a for a in audiences if a in token_audiences), None)
    if matched is None:
        raise TokenRejected(f"audience {token_audiences!r} names none of the accepted audiences")

    exp = _numeric(claims, "exp")
    if exp is None:
        raise TokenRejected("no exp claim")
    # No leeway on expiry: the SDK's bearer backend also refuses a token past `expires_at`.
    if exp <= now:
        raise TokenRejected("token expired")
    for claim in ("nbf", "iat"):
        value = _numeric(claims, claim)
        if value is not None and value > now + leeway:
            raise TokenRejected(f"{claim} is in the future")

    # Keycloak marks its token kinds: access tokens are "Bearer"; ID and refresh tokens must not pass.
    typ = claims.get("typ")
    if typ is not None and str(typ).lower() not in (("bearer", "dpop") if dpop else ("bearer",)):
        raise TokenRejected(f"token type {typ!r} is not an access token")
    cnf = claims.get("cnf")
    if not dpop and isinstance(cnf, Mapping) and "jkt" in cnf:
        raise TokenRejected("a DPoP-bound token sent as a Bearer token")
    return matched


def _numeric(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenRejected(f"{name} is not a number")
    return float(value)


def access_token_from_claims(token: str, claims: Mapping[str, Any], resource: str) -> AccessToken:
    """Build the SDK's ``AccessToken`` (what tools see through ``get_access_token()``)."""
    client_id = claims.get("client_id") or claims.get("azp")
    if not isinstance(client_id, str) or not client_id:
        raise TokenRejected("token names no client (client_id/azp)")
    scope = claims.get("scope")
    scopes = scope.split() if isinstance(scope, str) else []
    sub = claims.get("sub")
    return AccessToken(
        token=token,
        client_id=client_id,
        scopes=scopes,
        expires_at=int(claims["exp"]),
        resource=resource,
        subject=sub if isinstance(sub, str) else None,
        claims=dict(claims),
    )


def realm_roles(claims: Mapping[str, Any] | None) -> frozenset[str]:
    """Keycloak realm roles, from the ``realm_access.roles`` claim."""
    realm_access = (claims or {}).get("realm_access")
    roles = realm_access.get("roles") if isinstance(realm_access, Mapping) else None
    return frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset()


class JwtTokenVerifier(TokenVerifier):
    """Validate JWT access tokens locally against the issuer's JWKS."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str,
        audiences: Iterable[str],
        leeway: int = LEEWAY_SECONDS,
        dpop: bool = False,
        jwks_cache_seconds: float = 300,
        jwks_refresh_cooldown: float = 10.0,
        timeout: float = 10.0,
    ) -> None:
        self.issuer = issuer
        self.audiences = tuple(audiences)
        self.leeway = leeway
        self.dpop = dpop
        # The JWK set is cached for `jwks_cache_seconds`; a token with an unknown `kid`
        # forces one refetch, at most every `jwks_refresh_cooldown` seconds, so random
        # kids cannot turn this server into a JWKS request amplifier.
        self._jwks = PyJWKClient(
            jwks_url,
            cache_jwk_set=True,
            lifespan=jwks_cache_seconds,
            cooldown_duration=jwks_refresh_cooldown,
            timeout=timeout,
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims, audience = await self._verify(token)
            return access_token_from_claims(token, claims, audience)
        except TokenRejected as exc:
            _log_rejection(str(exc))
        except jwt.PyJWKClientConnectionError as exc:
            _log_rejection(f"JWKS unreachable ({exc})", logging.WARNING)
        except jwt.PyJWTError as exc:
            _log_rejection(type(exc).__name__ + (f": {exc}" if str(exc) else ""))
        except Exception as exc:  # fail closed; the message of an unexpected error is not logged
            _log_rejection(f"unexpected {type(exc).__name__}", logging.WARNING)
        return None

    async def _verify(self, token: str) -> tuple[dict[str, Any], str]:
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise TokenRejected(f"algorithm {alg!r} is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("token header has no kid")
        key = await self._signing_key(kid)
        if key.algorithm_name != alg:
            raise TokenRejected(f"algorithm {alg!r} does not match key {kid!r} ({key.algorithm_name})")
        claims = jwt.decode(
            token,
            key,
            algorithms=[key.algorithm_name],
            issuer=self.issuer,
            audience=list(self.audiences),
            leeway=self.leeway,
            options={"require": ["exp", "iss", "aud"]},
        )
        return claims, check_claims(claims, issuer=self.issuer, audiences=self.audiences, leeway=self.leeway,
                                    dpop=self.dpop)

    async def _signing_key(self, kid: str) -> PyJWK:
        # Fast path: the cached JWK set already has the key (no I/O, no thread hop).
        cache = self._jwks.jwk_set_cache
        jwk_set = cache.get() if cache is not None else None
        if jwk_set is not None:
            for key in jwk_set.keys:
                if key.key_id == kid and key.public_key_use in ("sig", None):
                    return key
        # PyJWKClient fetches with blocking urllib: keep it off the event loop.
        return await anyio.to_thread.run_sync(self._jwks.get_signing_key, kid)

    def prefetch_keys(self) -> int:
        """Fetch the JWK set now (blocking); returns the number of signing keys. For startup checks."""
        return len(self._jwks.get_signing_keys())


class IntrospectionTokenVerifier(TokenVerifier):
    """Validate tokens with the authorization server's introspection endpoint (RFC 7662)."""

    def __init__(
        self,
        *,
        introspection_url: str,
        client_id: str,
        client_secret: str,
        issuer: str,
        audiences: Iterable[str],
        auth_method: str = "client_secret_basic",
        leeway: int = LEEWAY_SECONDS,
        dpop: bool = False,
        timeout: float = 10.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ValueError(f"unsupported auth method {auth_method!r}")
        self.introspection_url = introspection_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.auth_method = auth_method
        self.issuer = issuer
        self.audiences = tuple(audiences)
        self.leeway = leeway
        self.dpop = dpop
        # One pooled client for the process: keep-alive connections to the authorization server.
        self._http = http_client or httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = await self._introspect(token)
            audience = check_claims(claims, issuer=self.issuer, audiences=self.audiences, leeway=self.leeway,
                                    dpop=self.dpop)
            return access_token_from_claims(token, claims, audience)
        except TokenRejected as exc:
            _log_rejection(str(exc))
        except httpx.HTTPError as exc:
            _log_rejection(f"introspection request failed ({type(exc).__name__})", logging.WARNING)
        except Exception as exc:  # fail closed; the message of an unexpected error is not logged
            _log_rejection(f"unexpected {type(exc).__name__}", logging.WARNING)
        return None

    async def _introspect(self, token: str) -> dict[str, Any]:
        form = {"token": token, "token_type_hint": "access_token"}
        auth: httpx.Auth | None = None
        if self.auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: form-urlencode id and secret before Basic encoding.
            auth = httpx.BasicAuth(quote_plus(self.client_id), quote_plus(self._client_secret))
        else:
            form |= {"client_id": self.client_id, "client_secret": self._client_secret}
        response = await self._http.post(
            self.introspection_url, data=form, auth=auth, headers={"Accept": "application/json"}
        )
        if response.status_code != 200:
            # 401 here means the introspection client's own credentials are wrong.
            logger.warning("introspection endpoint answered HTTP %s", response.status_code)
            raise TokenRejected(f"introspection failed (HTTP {response.status_code})")
        try:
            data = response.json()
        except ValueError:
            raise TokenRejected("introspection response is not JSON") from None
        if not isinstance(data, dict) or data.get("active") is not True:
            # Keycloak 26.6+ also answers inactive when the introspecting client is not in the token's `aud`.
            raise TokenRejected("token is not active")
        return data

    async def aclose(self) -> None:
        await self._http.aclose()


#: The token ``authz.DPoPMiddleware`` verified, with its proof, for the request being served.
DPOP_VERIFIED: ContextVar[AccessToken | None] = ContextVar("dpop_verified_token", default=None)


class DPoPVerifiedTokens(TokenVerifier):
    """The SDK's verifier when DPoP is required (MCP_SENDER_CONSTRAINT=dpop).

    The SDK reads only ``Authorization: Bearer``; the DPoP middleware in front
    of it checks the proof and the token, then hands the SDK the token as
    Bearer. This verifier accepts exactly that token for that request and
    nothing else, so a plain Bearer header from a client never gets past the
    SDK, and the token is verified once per request.
    """

    async def verify_token(self, token: str) -> AccessToken | None:
        verified = DPOP_VERIFIED.get()
        if verified is None or not hmac.compare_digest(verified.token.encode(), token.encode()):
            return None
        return verified


def build_token_verifier(config: Any) -> JwtTokenVerifier | IntrospectionTokenVerifier:
    """The verifier ``config.token_validation`` asks for (``config`` is a ``ServerConfig``)."""
    if config.token_validation == "jwt":
        return JwtTokenVerifier(
            issuer=config.issuer,
            jwks_url=config.jwks_url,
            audiences=config.audiences,
            jwks_refresh_cooldown=config.jwks_refresh_cooldown,
            dpop=config.sender_constraint == "dpop",
        )
    return IntrospectionTokenVerifier(
        introspection_url=config.introspection_url,
        client_id=config.client_id,
        client_secret=config.client_secret,
        issuer=config.issuer,
        audiences=config.audiences,
        auth_method=config.introspection_auth_method,
        dpop=config.sender_constraint == "dpop",
    )
