"""The reference MCP server (examples/mcp-server) with a weak token verifier, for `kcprov audit --server` tests.

`create_app(config, verifier=...)` takes any verifier, so each weakness is a
small subclass of the reference `JwtTokenVerifier` here, in tests, and the
shipped server has no switch that weakens it. `serve(config, weakness)` runs
one in-process on its resource URL's port (uvicorn in a thread).
"""

from __future__ import annotations

import importlib
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt

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


WEAKNESSES = {"none": verifier_mod.JwtTokenVerifier, "no-audience": NoAudienceCheck, "alg-none": AcceptsAlgNone}


def config_for(settings: Mapping[str, str], port: int) -> Any:
    """The env file's settings, moved to `port` (the resource URL and the accepted audience follow)."""
    url = f"http://localhost:{port}/mcp"
    return config_mod.parse_config({**settings, "HOST": "127.0.0.1", "PORT": str(port),
                                    "MCP_RESOURCE_URL": url, "MCP_AUDIENCES": url})


@contextmanager
def serve(config: Any, weakness: str = "none") -> Iterator[str]:
    """Run the server with the named verifier until the block ends; yields its URL."""
    import uvicorn

    verifier = WEAKNESSES[weakness](issuer=config.issuer, jwks_url=config.jwks_url, audiences=config.audiences,
                                    jwks_refresh_cooldown=config.jwks_refresh_cooldown)
    app = server_mod.create_app(config, verifier=verifier)
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
