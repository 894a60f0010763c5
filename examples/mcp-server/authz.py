"""Per-tool authorization for the reference MCP server.

The SDK authenticates every request and enforces one base scope; it knows
nothing about tools. This module adds the rest:

* ``ToolScopeMiddleware`` (HTTP layer): a ``tools/call`` whose tool needs a
  scope the token lacks is answered ``403`` with an RFC 6750 §3.1
  ``insufficient_scope`` challenge, so MCP clients can step up (re-authorize
  with more scopes) and retry. It also adds ``scope="<base scope>"`` to the
  SDK's own 401/403 challenges, which lack it. Since it reads every
  authenticated body anyway, it also refuses what should not reach the SDK: a
  second ``Authorization`` header (400), a body that is not declared JSON (415)
  or is not a JSON-RPC message (400, a short message instead of the SDK's
  pydantic report, which names the SDK's internal types).
* ``DPoPMiddleware`` (HTTP layer, in front of the SDK's authentication), when
  MCP_SENDER_CONSTRAINT=dpop: every request needs ``Authorization: DPoP``
  with a DPoP-bound token and one valid proof (RFC 9449, ``dpop.py``) made
  with the key the token is bound to (``cnf.jkt``); otherwise 401 with a
  ``WWW-Authenticate: DPoP`` challenge naming ``invalid_dpop_proof`` or
  ``invalid_token`` and the accepted ``algs``.
* ``AdminRoleGuard`` (MCP layer): admin tools also need a Keycloak realm role.
  A role is not a scope, so re-authorizing cannot fix a missing one; the call
  fails as a tool error (``isError``) that names the role, instead of an HTTP
  challenge that would send the client into a step-up loop.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import TokenVerifier
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp_types import CallToolResult, TextContent
from mcp_types.jsonrpc import jsonrpc_message_adapter
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dpop import ProofChecker, ProofRejected
from token_verifier import DPOP_VERIFIED, printable, realm_roles

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolScopePolicy:
    """Which scopes a request needs: the base scope(s) always, plus the tool's own for ``tools/call``."""

    base_scopes: tuple[str, ...]
    tool_scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def required(self, tools: Iterable[str] = ()) -> tuple[str, ...]:
        """All scopes the operation needs, base first, without duplicates (one challenge, all scopes)."""
        scopes = list(self.base_scopes)
        for tool in tools:
            scopes.extend(self.tool_scopes.get(tool, ()))
        return tuple(dict.fromkeys(scopes))

    def missing(self, granted: Collection[str], tools: Iterable[str] = ()) -> tuple[str, ...]:
        return tuple(s for s in self.required(tools) if s not in granted)


def bearer_challenge(*, error: str, description: str, scope: Iterable[str], resource_metadata: str) -> str:
    """A ``WWW-Authenticate`` value: ``Bearer error=…, error_description=…, scope=…, resource_metadata=…``."""
    return _challenge("Bearer", error=error, error_description=description, scope=" ".join(scope),
                      resource_metadata=resource_metadata)


def dpop_challenge(*, error: str, description: str, algorithms: Iterable[str], scope: Iterable[str],
                   resource_metadata: str) -> str:
    """A ``WWW-Authenticate: DPoP`` value (RFC 9449 §7.1): ``error`` and ``algs`` besides the Bearer params."""
    return _challenge("DPoP", error=error, error_description=description, algs=" ".join(algorithms),
                      scope=" ".join(scope), resource_metadata=resource_metadata)


def _challenge(scheme: str, **params: str) -> str:
    return f"{scheme} " + ", ".join(f'{k}="{_quoted(v)}"' for k, v in params.items() if v)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class MalformedRequest(ValueError):
    """The POST body is not JSON this middleware can read; the request is refused, not passed on."""


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise MalformedRequest("duplicate keys in a JSON object")
    return dict(pairs)


def parse_body(body: bytes) -> Any:
    """The JSON of a POST body.

    Raises ``MalformedRequest`` for anything that is not plain JSON: if this
    parser and the SDK's could read the same bytes differently (duplicate keys,
    invalid encoding), a scope check could be bypassed, so such a body never
    reaches the SDK.
    """
    try:
        return json.loads(body, object_pairs_hook=_reject_duplicate_keys)
    except (ValueError, RecursionError) as exc:
        raise MalformedRequest(str(exc) if isinstance(exc, MalformedRequest) else "body is not valid JSON") from None


def called_tools(payload: Any) -> list[str]:
    """Names of the tools a parsed JSON-RPC body calls (a single message or a batch)."""
    messages = payload if isinstance(payload, list) else [payload]
    names = []
    for message in messages:
        if isinstance(message, dict) and message.get("method") == "tools/call":
            params = message.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            if not isinstance(name, str):
                raise MalformedRequest("tools/call without a tool name")
            names.append(name)
    return names


def is_jsonrpc_message(payload: Any) -> bool:
    """Whether the SDK will accept ``payload`` as one JSON-RPC message (checked with the SDK's own adapter)."""
    try:
        jsonrpc_message_adapter.validate_python(payload, by_name=False)
    except ValidationError:
        return False
    return True


def is_json(content_type: str | None) -> bool:
    """``application/json``, parameters (``; charset=utf-8``) aside."""
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


class ToolScopeMiddleware:
    """ASGI middleware for the MCP endpoint, installed *after* the SDK's authentication middleware.

    By the time it runs, ``scope["user"]`` holds the SDK's ``AuthenticatedUser``
    for a verified token (or nothing). Requests without a verified token pass
    straight through to the SDK, which answers 401. For an authenticated POST it
    buffers the body, checks every ``tools/call`` in it against the tool's
    scopes, and either answers 403 or replays the body to the SDK unchanged.
    Before that, any request with two ``Authorization`` headers is refused (400),
    and so is an authenticated POST not declared JSON (415), not parseable as
    JSON, or not a JSON-RPC message (400).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        mcp_path: str,
        policy: ToolScopePolicy,
        resource_metadata_url: str,
        max_body_size: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
    ) -> None:
        self.app = app
        self.mcp_path = mcp_path
        self.policy = policy
        self.resource_metadata_url = resource_metadata_url
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.mcp_path:
            await self.app(scope, receive, send)
            return
        send = self._add_scope_to_challenges(send)
        headers = Headers(scope=scope)
        if len(headers.getlist("authorization")) > 1:
            # The SDK reads the first header; a proxy in front may have checked the last.
            # RFC 6750 §3.1: more than one way of passing a token is an invalid_request.
            await self._invalid_request(send, "send exactly one Authorization header")
            return
        user = scope.get("user")
        if scope["method"] != "POST" or not isinstance(user, AuthenticatedUser):
            await self.app(scope, receive, send)
            return
        if not is_json(headers.get("content-type")):
            # The SDK's transport check answers 400; RFC 9110 §15.5.16 says 415.
            body = {"error": "unsupported_media_type", "error_description": "Content-Type must be application/json"}
            await _send_json(send, 415, body)
            return

        body = await self._read_body(receive)
        if body is None:
            await _send_json(send, 413, {"error": "request_too_large", "error_description": "Request body too large"})
            return
        try:
            payload = parse_body(body)
            tools = called_tools(payload)
        except MalformedRequest as exc:
            await _send_jsonrpc_error(send, -32700, f"Parse error: {exc}")
            return
        if tools:
            missing = self.policy.missing(user.scopes, tools)
            if missing:
                await self._insufficient_scope(send, tools, missing)
                return
        if not is_jsonrpc_message(payload):
            await _send_jsonrpc_error(send, -32600, "Invalid Request: the body is not a JSON-RPC 2.0 message")
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_size:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _insufficient_scope(self, send: Send, tools: list[str], missing: tuple[str, ...]) -> None:
        required = self.policy.required(tools)
        names = ", ".join(printable(t) for t in tools)
        description = f"Tool {names} requires scope {' '.join(required)}; missing {' '.join(missing)}"
        logger.info("403 insufficient_scope: %s", description)
        challenge = bearer_challenge(
            error="insufficient_scope",
            description=description,
            scope=required,
            resource_metadata=self.resource_metadata_url,
        )
        body = {"error": "insufficient_scope", "error_description": description}
        await _send_json(send, 403, body, [(b"www-authenticate", challenge.encode())])

    async def _invalid_request(self, send: Send, description: str) -> None:
        challenge = bearer_challenge(
            error="invalid_request",
            description=description,
            scope=self.policy.required(),
            resource_metadata=self.resource_metadata_url,
        )
        body = {"error": "invalid_request", "error_description": description}
        await _send_json(send, 400, body, [(b"www-authenticate", challenge.encode())])

    def _add_scope_to_challenges(self, send: Send) -> Send:
        """The SDK's 401/403 challenges carry ``resource_metadata`` but no ``scope`` (MCP: SHOULD)."""
        scope_param = f', scope="{_quoted(" ".join(self.policy.required()))}"'.encode()

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                headers = [
                    (k, v + scope_param if k.lower() == b"www-authenticate" and not _HAS_SCOPE.search(v) else v)
                    for k, v in message.get("headers", [])
                ]
                message = {**message, "headers": headers}
            await send(message)

        return wrapped


#: A ``scope`` auth-param (not the word inside ``error_description="Required scope: …"``).
_HAS_SCOPE = re.compile(rb'(?:^Bearer |, ?)scope=', re.IGNORECASE)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the buffered body once, then defers to the real one (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _send_jsonrpc_error(send: Send, code: int, message: str) -> None:
    """HTTP 400 with a JSON-RPC error (``id`` null: the request's id could not be trusted)."""
    await _send_json(send, 400, {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}})


class DPoPMiddleware:
    """ASGI middleware in front of the SDK's authentication: DPoP-bound tokens only (RFC 9449 §7).

    For the MCP endpoint it checks, in order: one ``Authorization: DPoP <token>``
    header (Bearer is refused: a stolen bound token must not work without its
    key), exactly one ``DPoP`` proof header, the proof (``ProofChecker``,
    against the configured resource URL, so a Host header cannot move it), the
    token (the configured verifier), and that the token's ``cnf.jkt`` is the
    proof key's thumbprint. Then the SDK sees ``Authorization: Bearer <token>``
    and, through ``DPoPVerifiedTokens``, the token already verified. Requests
    with two Authorization headers go on unchanged (``ToolScopeMiddleware``
    answers them 400). Refusals are 401 with a ``WWW-Authenticate: DPoP``
    challenge; the log line names the reason, never the token or the proof.
    """

    def __init__(self, app: ASGIApp, *, mcp_path: str, resource_url: str, verifier: TokenVerifier,
                 checker: ProofChecker, scope: tuple[str, ...], resource_metadata_url: str) -> None:
        self.app = app
        self.mcp_path = mcp_path
        self.resource_url = resource_url
        self.verifier = verifier
        self.checker = checker
        self.scope = scope
        self.resource_metadata_url = resource_metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.mcp_path:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorizations = headers.getlist("authorization")
        if len(authorizations) > 1:
            await self.app(scope, receive, send)
            return
        if not authorizations:
            await self._refuse(send, "", "")
            return
        scheme, _, token = authorizations[0].partition(" ")
        token = token.strip()
        if scheme.lower() != "dpop" or not token:
            await self._refuse(send, "invalid_token", "this server accepts DPoP-bound tokens only: "
                               "send Authorization: DPoP <token> with a DPoP proof")
            return
        proofs = headers.getlist("dpop")
        if len(proofs) != 1:
            await self._refuse(send, "invalid_dpop_proof", "send exactly one DPoP proof header")
            return
        try:
            jkt = self.checker.check(proofs[0], method=scope["method"], url=self.resource_url, access_token=token)
        except ProofRejected as exc:
            await self._refuse(send, "invalid_dpop_proof", str(exc))
            return
        access = await self.verifier.verify_token(token)
        if access is None:
            await self._refuse(send, "invalid_token", "the access token is invalid or expired")
            return
        cnf = (access.claims or {}).get("cnf")
        bound_to = cnf.get("jkt") if isinstance(cnf, dict) else None
        if not isinstance(bound_to, str):
            await self._refuse(send, "invalid_token", "the access token is not DPoP-bound (no cnf.jkt)")
            return
        if not hmac.compare_digest(bound_to.encode(), jkt.encode()):
            await self._refuse(send, "invalid_dpop_proof", "the proof key is not the key the token is bound to")
            return
        raw = [(k, v) for k, v in scope["headers"] if k.lower() != b"authorization"]
        bearer = {**scope, "headers": [*raw, (b"authorization", b"Bearer " + token.encode())]}
        verified = DPOP_VERIFIED.set(access)
        try:
            await self.app(bearer, receive, send)
        finally:
            DPOP_VERIFIED.reset(verified)

    async def _refuse(self, send: Send, error: str, description: str) -> None:
        if error:
            logger.info("401 %s: %s", error, description)
        challenge = dpop_challenge(error=error, description=description, algorithms=sorted(self.checker.algorithms),
                                   scope=self.scope, resource_metadata=self.resource_metadata_url)
        body = {"error": error or "invalid_token", "error_description": description or "authentication required"}
        await _send_json(send, 401, body, [(b"www-authenticate", challenge.encode())])


class AdminRoleGuard:
    """MCP server middleware: a ``tools/call`` for an admin tool needs the realm role as well.

    Runs inside the SDK's request dispatch, where ``get_access_token()`` is the
    token of the request being handled. Without the role the call returns a
    tool error naming the role; the tool does not run.
    """

    def __init__(self, *, admin_tools: Collection[str], role: str) -> None:
        self.admin_tools = frozenset(admin_tools)
        self.role = role

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call" and self.admin_tools:
            name = (ctx.params or {}).get("name")
            if name in self.admin_tools:
                token = get_access_token()
                if token is None or self.role not in realm_roles(token.claims):
                    logger.info("tool %r refused: token lacks realm role %r", name, self.role)
                    message = (
                        f"Forbidden: tool '{name}' requires the realm role '{self.role}', "
                        "which this access token does not carry. Ask an administrator to grant the role."
                    )
                    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
        return await call_next(ctx)
