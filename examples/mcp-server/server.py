"""Reference MCP server for kcprov: a calculator protected by Keycloak.

Run it with the env file kcprov wrote beside this script:

    python examples/mcp-server/server.py [--env-file PATH]

What it shows, on the MCP Python SDK 2.x (``MCPServer``):

* bearer tokens checked by a ``TokenVerifier`` (local JWT/JWKS or RFC 7662
  introspection, see ``token_verifier.py``), 401 + ``WWW-Authenticate`` from
  the SDK when a token is missing or refused;
* RFC 9728 Protected Resource Metadata at
  ``/.well-known/oauth-protected-resource/<path>``;
* per-tool scopes with a 403 ``insufficient_scope`` step-up challenge, and an
  admin tool that also needs a Keycloak realm role (see ``authz.py``);
* with downstream APIs configured, the ``downstream_whoami`` tool, which calls
  an API with a token obtained by token exchange, never with the caller's
  token (MCP "no token passthrough", see ``token_exchange.py``).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Modules beside this file (config, token_verifier, authz) are imported by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mcp.server.auth.middleware.auth_context import get_access_token  # noqa: E402
from mcp.server.auth.provider import TokenVerifier  # noqa: E402
from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler  # noqa: E402
from mcp.server.auth.routes import cors_middleware  # noqa: E402
from mcp.server.auth.settings import AuthSettings  # noqa: E402
from mcp.server.mcpserver import MCPServer  # noqa: E402
from mcp.server.mcpserver.exceptions import ToolError  # noqa: E402
from pydantic import BaseModel, FiniteFloat  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from mcp.shared.auth import ProtectedResourceMetadata  # noqa: E402
from starlette.middleware.authentication import AuthenticationMiddleware  # noqa: E402
from starlette.routing import Route  # noqa: E402

from authz import AdminRoleGuard, DPoPMiddleware, ToolScopeMiddleware, ToolScopePolicy  # noqa: E402
from config import ConfigError, ServerConfig, load_config  # noqa: E402
from token_exchange import DownstreamCaller, ExchangeError  # noqa: E402
from dpop import ProofChecker  # noqa: E402
from token_verifier import DPoPVerifiedTokens, JwtTokenVerifier, build_token_verifier  # noqa: E402

logger = logging.getLogger("mcp_reference_server")


class Calculation(BaseModel):
    """Structured result of an arithmetic tool."""

    operation: str
    a: float
    b: float
    result: float


def calculation(operation: str, a: float, b: float, result: float) -> Calculation:
    """The structured result, or a tool error when ``result`` overflowed.

    JSON has no infinity: ``multiply(1e200, 1e200)`` would reach the client as
    ``"result": null``, against the output schema, so it is refused with a
    ``ToolError`` (a message for the model; any other exception counts as a crash
    and logs a traceback). The arguments are ``FiniteFloat`` for the same reason.
    """
    if not math.isfinite(result):
        raise ToolError(f"the result of {operation} is too large for a JSON number")
    return Calculation(operation=operation, a=a, b=b, result=result)


class ResetResult(BaseModel):
    """Structured result of ``reset``."""

    cleared: int


class DownstreamWhoami(BaseModel):
    """Structured result of ``downstream_whoami``: what the API saw in the token it received."""

    api: str
    status: int
    answer: dict[str, Any]


class CallCounter:
    """Arithmetic calls served since start (or since the last ``reset``)."""

    def __init__(self) -> None:
        self.calls = 0

    def count(self) -> None:
        self.calls += 1

    def clear(self) -> int:
        cleared, self.calls = self.calls, 0
        return cleared


def build_mcp_server(config: ServerConfig, verifier: TokenVerifier) -> MCPServer:
    """The MCP server: tools, the token verifier, and the SDK's auth settings."""
    counter = CallCounter()
    mcp = MCPServer(
        name=config.server_name,
        instructions="A calculator: add and multiply numbers. `reset` (admin) clears the call counter.",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=config.issuer,  # type: ignore[arg-type]
            resource_server_url=config.resource_url,  # type: ignore[arg-type]
            required_scopes=[config.base_scope],
            # The verifier checks `aud` against MCP_AUDIENCES itself (a token may carry
            # several audiences), so the SDK's single-resource comparison stays off.
            validate_token_resource=False,
        ),
        middleware=[AdminRoleGuard(admin_tools=config.admin_tools, role=config.admin_role)],
        log_level=config.log_level,  # type: ignore[arg-type]
    )

    def add(a: FiniteFloat, b: FiniteFloat) -> Calculation:
        """Add two numbers and return their sum."""
        counter.count()
        return calculation("add", a, b, a + b)

    def multiply(a: FiniteFloat, b: FiniteFloat) -> Calculation:
        """Multiply two numbers and return their product."""
        counter.count()
        return calculation("multiply", a, b, a * b)

    def reset() -> ResetResult:
        """Admin: reset the call counter; returns how many calls it cleared."""
        return ResetResult(cleared=counter.clear())

    tools: tuple[Any, ...] = (add, multiply, reset)
    if config.downstream:
        tools += (downstream_tool(DownstreamCaller(config)),)
    for tool in tools:
        mcp.add_tool(tool)

    names = {tool.__name__ for tool in tools}
    for name in sorted(set(config.tool_scopes) - names):
        logger.warning("MCP_TOOL_SCOPES names %r, which is not a tool of this server", name)
    for name in sorted(config.admin_tools - names):
        logger.warning("MCP_ADMIN_TOOLS names %r, which is not a tool of this server", name)
    return mcp


def downstream_tool(caller: DownstreamCaller) -> Any:
    """The tool that reaches a downstream API as the user, with a token exchanged for the API's audience."""

    async def downstream_whoami(api: str | None = None) -> DownstreamWhoami:
        """Ask a downstream API who it sees calling (the user, through a token exchanged for that API)."""
        caller_token = get_access_token()
        if caller_token is None:  # the SDK authenticates every request first; defensive only
            raise ToolError("no authenticated caller")
        try:
            target = caller.api(api)
            answer = await caller.call(caller_token.token, target.audience, "/whoami")
        except ExchangeError as exc:
            raise ToolError(str(exc)) from None
        return DownstreamWhoami(api=target.audience, status=answer.status, answer=answer.body)

    return downstream_whoami


def create_app(config: ServerConfig, *, verifier: TokenVerifier | None = None) -> Starlette:
    """Build the ASGI app (streamable HTTP at the resource URL's path) without running it.

    Starts from the SDK's app, which brings bearer authentication, the 401
    challenge and the session manager's lifespan, then changes two things:
    the metadata advertises all of MCP_SCOPES, and per-tool scopes are enforced.
    """
    verifier = verifier or build_token_verifier(config)
    dpop = config.sender_constraint == "dpop"
    mcp = build_mcp_server(config, DPoPVerifiedTokens() if dpop else verifier)
    app = mcp.streamable_http_app(streamable_http_path=config.mcp_path, host=config.host)

    # RFC 9728 metadata. The SDK advertises only `required_scopes` (the base scope);
    # replace its route with one listing every scope the server understands.
    metadata_routes = protected_resource_routes(config)
    replaced = {route.path for route in metadata_routes}
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in replaced]
    app.router.routes.extend(metadata_routes)

    # Per-tool scopes. Appended to the user middleware, this runs after the SDK's
    # AuthenticationMiddleware (so scope["user"] is the verified token) and before routing.
    if not any(m.cls is AuthenticationMiddleware for m in app.user_middleware):
        raise RuntimeError("the SDK app has no authentication middleware; per-tool scopes would be unchecked")
    app.user_middleware.append(
        Middleware(
            ToolScopeMiddleware,
            mcp_path=config.mcp_path,
            policy=ToolScopePolicy(base_scopes=(config.base_scope,), tool_scopes=config.tool_scopes),
            resource_metadata_url=config.resource_metadata_url,
        )
    )
    if dpop:  # first in the list: outermost, in front of the SDK's authentication
        app.user_middleware.insert(0, Middleware(
            DPoPMiddleware, mcp_path=config.mcp_path, resource_url=config.resource_url, verifier=verifier,
            checker=ProofChecker(algorithms=frozenset(config.dpop_algorithms), max_age=config.dpop_proof_max_age),
            scope=(config.base_scope,), resource_metadata_url=config.resource_metadata_url))
    return app


def protected_resource_routes(config: ServerConfig) -> list[Route]:
    """RFC 9728 metadata: every scope of MCP_SCOPES and, with DPoP required,
    ``dpop_bound_access_tokens_required`` and ``dpop_signing_alg_values_supported``."""
    dpop = config.sender_constraint == "dpop"
    metadata = ProtectedResourceMetadata(
        resource=config.resource_url,  # type: ignore[arg-type]
        authorization_servers=[config.issuer],  # type: ignore[list-item]
        scopes_supported=list(config.scopes_supported),
        resource_name=config.server_name,
        dpop_bound_access_tokens_required=True if dpop else None,
        dpop_signing_alg_values_supported=list(config.dpop_algorithms) if dpop else None,
    )
    handler = cors_middleware(ProtectedResourceMetadataHandler(metadata).handle, ["GET", "OPTIONS"])
    path = urlsplit(config.resource_metadata_url).path
    return [Route(path, endpoint=handler, methods=["GET", "OPTIONS"])]


class _NoQueryStrings(logging.Filter):
    """Drop query strings from uvicorn's access log: a misbehaving client may put a token there."""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Reference MCP server (calculator) protected by Keycloak.")
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="env file to read (default: .env beside server.py); real environment variables override it",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.env_file)
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return 2
    logging.getLogger().setLevel(config.log_level)

    logger.info("starting: %s", config.summary())
    logger.info("protected resource metadata: %s", config.resource_metadata_url)
    for warning in config.warnings():
        logger.warning("%s", warning)

    verifier = build_token_verifier(config)
    if isinstance(verifier, JwtTokenVerifier):
        try:
            logger.info("JWKS reachable: %d signing key(s)", verifier.prefetch_keys())
        except Exception as exc:  # not fatal: the authorization server may start later
            logger.warning("JWKS not reachable yet (%s); tokens are refused until it is", type(exc).__name__)

    import uvicorn

    app = create_app(config, verifier=verifier)
    logging.getLogger("uvicorn.access").addFilter(_NoQueryStrings())
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level.lower(), log_config=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
