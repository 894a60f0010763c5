"""A small downstream API for kcprov's reference MCP server: it accepts only tokens meant for itself.

    python examples/downstream-api/api.py --issuer http://localhost:8080/realms/mcp-dev \\
        --audience accounts-api [--port 9000] [--host 127.0.0.1]

(or DOWNSTREAM_ISSUER, DOWNSTREAM_AUDIENCE, DOWNSTREAM_JWKS_URL, HOST, PORT in the
environment). ``GET /whoami`` with ``Authorization: Bearer <token>`` answers the
token's ``sub``, ``aud``, ``azp`` and ``scope`` when the token is signed by the
realm (JWKS), ``iss`` is the realm and ``aud`` holds this API's client_id; anything
else is 401 with an RFC 6750 challenge. A token issued for the MCP server (its
``aud`` is the server, not this API) is therefore refused: the MCP server must
exchange it (RFC 8693) for one of this API's audience, which keeps the user as
``sub``, so the API can authorise per user. Tokens are never logged.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

import jwt
from jwt import PyJWKClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

logger = logging.getLogger("downstream_api")

#: Asymmetric algorithms only: an `alg` of none or HS256 (a shared secret) is never accepted.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]


class TokenChecker:
    """Validates bearer tokens for one audience: signature (realm JWKS), iss, aud, exp."""

    def __init__(self, issuer: str, audience: str, jwks_url: str | None = None):
        self.issuer, self.audience = issuer, audience
        self.jwks = PyJWKClient(jwks_url or f"{issuer}/protocol/openid-connect/certs", cache_keys=True, timeout=10)

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims; jwt.PyJWTError (never holding the token) when the token is not for this API."""
        key = self.jwks.get_signing_key_from_jwt(token)
        return jwt.decode(token, key.key, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer,
                          options={"require": ["exp", "iat", "iss", "aud", "sub"]}, leeway=5)


def create_app(checker: TokenChecker) -> Starlette:
    def refuse(description: str) -> JSONResponse:
        challenge = f'Bearer error="invalid_token", error_description="{description}"'
        return JSONResponse({"error": "invalid_token", "error_description": description}, status_code=401,
                            headers={"WWW-Authenticate": challenge})

    def whoami(request: Request) -> JSONResponse:  # sync: Starlette runs it in a thread (JWKS fetches block)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return refuse("a bearer token is required")
        try:
            claims = checker.claims(token.strip())
        except jwt.InvalidAudienceError:
            logger.info("refused a token not issued for %s (wrong audience)", checker.audience)
            return refuse(f"the token is not issued for {checker.audience}")
        except jwt.PyJWTError as exc:
            logger.info("refused a token: %s", type(exc).__name__)
            return refuse("the token is invalid")
        logger.info("served sub=%s azp=%s", claims.get("sub"), claims.get("azp"))
        return JSONResponse({key: claims.get(key) for key in ("sub", "aud", "azp", "scope", "preferred_username")})

    return Starlette(routes=[Route("/whoami", whoami)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Downstream API accepting only tokens whose aud is itself.")
    parser.add_argument("--issuer", default=os.environ.get("DOWNSTREAM_ISSUER"), help="the realm's issuer URL")
    parser.add_argument("--audience", default=os.environ.get("DOWNSTREAM_AUDIENCE"), help="this API's client_id")
    parser.add_argument("--jwks-url", default=os.environ.get("DOWNSTREAM_JWKS_URL"), help="default: the realm's")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "9000")))
    args = parser.parse_args(argv)
    if not args.issuer or not args.audience:
        parser.error("--issuer and --audience (or DOWNSTREAM_ISSUER, DOWNSTREAM_AUDIENCE) are required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.info("starting: audience=%s issuer=%s bind=%s:%d", args.audience, args.issuer, args.host, args.port)

    import uvicorn

    uvicorn.run(create_app(TokenChecker(args.issuer, args.audience, args.jwks_url)), host=args.host, port=args.port,
                log_level="info", log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
