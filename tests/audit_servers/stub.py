"""A scripted HTTP server that answers like an MCP server and its authorization server, for the credential-free probes.

`Stub.good()` gives the answers of a correct server (401 with a full challenge,
RFC 9728 metadata at the path-suffixed URL, RFC 8414 metadata at the
path-inserted URL); a test changes one answer and checks which finding it gives.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, str], Any]  # status, headers, JSON body (None: empty)


@dataclass
class Stub:
    base: str
    replies: dict[tuple[str, str], Reply] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def issuer(self) -> str:
        return f"{self.base}/realms/r"

    def good(self) -> Stub:
        self.replies = {
            ("POST", "/mcp"): (401, {"www-authenticate": f'Bearer error="invalid_token", resource_metadata="'
                                                         f'{self.base}/.well-known/oauth-protected-resource/mcp", '
                                                         'scope="mcp:tools"'}, {"error": "invalid_token"}),
            ("GET", "/.well-known/oauth-protected-resource/mcp"): (200, {}, {
                "resource": self.url, "authorization_servers": [self.issuer],
                "scopes_supported": ["mcp:tools", "mcp:admin"]}),
            ("GET", "/.well-known/oauth-authorization-server/realms/r"): (200, {}, {
                "issuer": self.issuer, "token_endpoint": f"{self.issuer}/protocol/openid-connect/token",
                "code_challenge_methods_supported": ["plain", "S256"],
                "authorization_response_iss_parameter_supported": True}),
        }
        return self


def start() -> tuple[Stub, ThreadingHTTPServer]:
    holder: dict[str, Stub] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            status, headers, body = holder["stub"].replies.get((self.command, self.path), (404, {}, None))
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for key, value in {"content-type": "application/json", **headers}.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["stub"] = Stub(f"http://127.0.0.1:{httpd.server_address[1]}").good()
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return holder["stub"], httpd
