"""The env file of an MCP server: what it needs to find Keycloak and check tokens.

`render_env` builds the file's text from the realm file and the live realm
(only the introspection client's secret is read from Keycloak; in `jwt` mode
nothing is). `write_env_files` writes the file of every server that names an
`env_file`, atomically and with mode 0600, and leaves a file holding exactly
that content untouched, so a rerun is a byte-identical no-op and a secret
rotated in Keycloak shows up on the next run.

An env_file comes from the realm file, which is untrusted input: where it may
point is the "realm-file" path policy of `kcprov.fileio` (under the working
directory, or a directory allowed with --allow-outside). `check_env_targets`
checks every target without writing, so `kcprov apply` can refuse a bad one
before it changes Keycloak. Names that reach the file (realm, server, source
path) are shown with control characters escaped in the header comment, and
a value python-dotenv would not read back as written is refused.

The keys are the contract with the reference server (examples/mcp-server,
`config.KNOWN_KEYS`). Nothing here prints the secret; only the text returned
by `render_env` holds it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined

from kcprov.errors import KcprovError
from kcprov.fileio import OutputFileError, resolve_output, write_output
from kcprov.keycloak import KeycloakClient, seg
from kcprov.spec.models import McpServer, RealmSpec
from kcprov.terminal import printable

TEMPLATE = "mcp-server.env.j2"
ENV_KEYS = (
    "HOST", "PORT", "AUTH_HOST", "AUTH_PORT", "AUTH_REALM", "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET",
    "MCP_SCOPE", "OAUTH_STRICT", "TRANSPORT", "MCP_SERVER_NAME", "MCP_RESOURCE_URL", "MCP_AUDIENCES",
    "MCP_SCOPES", "MCP_TOOL_SCOPES", "MCP_ADMIN_ROLE", "MCP_ADMIN_TOOLS", "MCP_TOKEN_VALIDATION",
    "OAUTH_ISSUER", "OAUTH_JWKS_URL", "OAUTH_INTROSPECTION_URL",
)
"""Every key the file has, exactly (the reference server's contract)."""

_PLAIN = re.compile(r"^[A-Za-z0-9_./:,=@+%\-]*$")
_EXPANDED = re.compile(r"\$\{[^}]*\}")
"""What python-dotenv expands in any quotes (the reference server reads with interpolation on)."""
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
"""Characters python-dotenv unescapes in a double-quoted value, and how each is written."""
_NOT_IN_SINGLE_QUOTES = frozenset("'\\\n\r\t")
"""What single quotes cannot hold literally for both python-dotenv and a shell."""


def dotenv_value(value: object) -> str:
    """A value as a .env line holds it, for python-dotenv to read back exactly (the reference server's reader).

    Bare when safe; else single-quoted, which python-dotenv and a shell that
    sources the file (`set -a; . ./.env`) both take literally; else (a value
    with ', \\ or a line break) double-quoted with escapes. Raises ValueError
    (without the value: it may be a secret) for what no quoting keeps:
    ``${NAME}``, which python-dotenv expands even in quotes; control characters
    other than line breaks and tabs, which it has no escape for and which would
    reach the terminal of whoever shows the file; and ``$(`` or a backtick in a
    value that needs double quotes, where a shell would run it.
    """
    text = str(value)
    if _PLAIN.match(text):
        return text
    if _EXPANDED.search(text):
        raise ValueError("holds ${...}, which python-dotenv would expand")
    quoted = "".join(_ESCAPES.get(ch, ch) for ch in text)
    if not quoted.isprintable():
        raise ValueError("holds a control character")
    if not _NOT_IN_SINGLE_QUOTES.intersection(text):
        return f"'{text}'"
    if "$(" in text or "`" in text:
        raise ValueError("holds $( or ` next to a quote, backslash or line break, which a shell sourcing the file would run")
    return f'"{quoted}"'


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("kcprov", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def find_server(spec: RealmSpec, server: McpServer | str) -> McpServer:
    if isinstance(server, McpServer):
        return server
    for candidate in spec.mcp_servers:
        if candidate.name == server:
            return candidate
    names = ", ".join(s.name for s in spec.mcp_servers) or "none"
    raise KcprovError(f"realm '{spec.realm}' has no MCP server '{server}'.", hint=f"MCP servers in the file: {names}")


def env_values(spec: RealmSpec, server: McpServer, keycloak_url: str, client_secret: str = "") -> dict[str, str]:
    """The env file's keys and values (pure): `client_secret` is the introspection client's."""
    host, port = _host_port(server.url)
    auth_host, auth_port = _host_port(keycloak_url)
    issuer = f"{keycloak_url.rstrip('/')}/realms/{quote(spec.realm, safe='')}"
    introspection = server.token_validation == "introspection"
    values = {
        "HOST": host,
        "PORT": str(port),
        "AUTH_HOST": auth_host,
        "AUTH_PORT": str(auth_port),
        "AUTH_REALM": spec.realm,
        "OAUTH_CLIENT_ID": (server.introspection_client or "") if introspection else "",
        "OAUTH_CLIENT_SECRET": client_secret if introspection else "",
        "MCP_SCOPE": next(iter(server.scopes)),
        "OAUTH_STRICT": "true",
        "TRANSPORT": "streamable-http",
        "MCP_SERVER_NAME": server.name,
        "MCP_RESOURCE_URL": server.url,
        "MCP_AUDIENCES": ",".join(dict.fromkeys([server.url, *(server.extra_audiences or [])])),
        "MCP_SCOPES": " ".join(server.scopes),
        "MCP_TOOL_SCOPES": ",".join(f"{tool}={scope}" for tool, scope in (server.tool_scopes or {}).items()),
        # Without a role there is nothing to require beyond the tools' scopes (and the
        # reference server refuses MCP_ADMIN_TOOLS without MCP_ADMIN_ROLE).
        "MCP_ADMIN_ROLE": server.admin_role or "",
        "MCP_ADMIN_TOOLS": ",".join(server.admin_tools or []) if server.admin_role else "",
        "MCP_TOKEN_VALIDATION": server.token_validation,
        "OAUTH_ISSUER": issuer,
        "OAUTH_JWKS_URL": f"{issuer}/protocol/openid-connect/certs",
        "OAUTH_INTROSPECTION_URL": f"{issuer}/protocol/openid-connect/token/introspect",
    }
    assert tuple(values) == ENV_KEYS
    return values


def read_client_secret(client: KeycloakClient, realm: str, client_id: str) -> str:
    """The current secret of a confidential client, read from Keycloak (never logged)."""
    what = f"client '{client_id}' of realm '{realm}'"
    found = client.get(f"/admin/realms/{seg(realm)}/clients", what, clientId=client_id) or []
    rep = next((c for c in found if c.get("clientId") == client_id), None)
    if rep is None:
        raise KcprovError(
            f"the introspection client '{client_id}' does not exist in realm '{realm}'.",
            hint="run `kcprov apply` on the realm file first",
        )
    secret = client.client_secret(realm, rep["id"], client_id)
    if not secret:
        raise KcprovError(
            f"client '{client_id}' of realm '{realm}' has no secret (is it a public client?).",
            hint="token introspection needs a confidential client: run `kcprov apply` to converge it",
        )
    return secret


def render_env(client: KeycloakClient, spec: RealmSpec, server: McpServer | str, source: str | None = None) -> str:
    """The env file text of one MCP server; holds the introspection secret (introspection mode)."""
    server = find_server(spec, server)
    secret = ""
    if server.token_validation == "introspection":
        secret = read_client_secret(client, spec.realm, server.introspection_client or "")
    values = env_values(spec, server, client.settings.url, secret)
    quoted = {}
    for key, value in values.items():
        try:
            quoted[key] = dotenv_value(value)
        except ValueError as exc:
            raise KcprovError(f"MCP server '{printable(server.name)}': the value of {key} {exc}; "
                              "it cannot be written to an env file.",
                              hint="change it in the realm file (or, for OAUTH_CLIENT_SECRET, in Keycloak)") from None
    template = _environment().get_template(TEMPLATE)
    return template.render(env=quoted, holds_secret=bool(secret),
                           source=printable(source or f"the realm file of '{spec.realm}'"),
                           realm=printable(spec.realm), server=printable(server.name))


def _selected(spec: RealmSpec, only: str | Iterable[str] | None) -> list[McpServer]:
    """The servers with an env_file, of those in `only` (every server when None); KcprovError for an unknown name."""
    wanted = {only} if isinstance(only, str) else (set(only) if only is not None else None)
    for name in sorted(wanted or ()):
        find_server(spec, name)
    return [s for s in spec.mcp_servers if s.env_file is not None and (wanted is None or s.name in wanted)]


def _what(server: McpServer) -> str:
    return f"env_file of MCP server '{printable(server.name)}'"


def check_env_targets(
    spec: RealmSpec, allow_outside: Iterable[str | Path] = (), only: str | Iterable[str] | None = None
) -> None:
    """Refuse, in one OutputFileError listing each, every env_file the path policy would not write.

    Writes nothing and asks Keycloak nothing: `kcprov apply` calls it before
    the first change, so a bad env_file never leaves a half-applied realm.
    """
    allowed = tuple(allow_outside)
    errors = []
    for server in _selected(spec, only):
        try:
            resolve_output(server.env_file or "", origin="realm-file", allow_outside=allowed, what=_what(server))
        except OutputFileError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise OutputFileError("\n".join(map(str, errors)))


def write_env_files(
    client: KeycloakClient,
    spec: RealmSpec,
    only: str | Iterable[str] | None = None,
    source: str | None = None,
    allow_outside: Iterable[str | Path] = (),
) -> list[tuple[Path, bool]]:
    """Write the env file of each MCP server that names one (or of the servers in `only`).

    Every target is checked (`check_env_targets`) and every text rendered
    before the first file is written, so a bad target or a missing secret
    writes none. Returns (path, changed) per file, the path as the realm file gives it
    (relative to the working directory); changed is False when the file
    already held exactly that content.
    """
    allowed = tuple(allow_outside)
    check_env_targets(spec, allowed, only)
    texts = [(server, server.env_file or "", render_env(client, spec, server, source)) for server in _selected(spec, only)]
    return [(Path(name), write_output(name, text, origin="realm-file", allow_outside=allowed, what=_what(server)))
            for server, name, text in texts]
