"""`kcprov init`: a commented starter realm file for one MCP server.

The file is meant to be read, kept in git and edited, so it explains each key
next to it, and it validates, plans and applies exactly as written: the
generated text is loaded through the same loader as any realm file before it
is written (a starter that fails `kcprov validate` would be a bug).

What comes from the command line lands in YAML that is rendered by Jinja2
first, so every value is checked before it is placed: names by the realm
file's own name rules, the URL by the MCP server rules plus "no braces, no
spaces" (a `{{` in it would be a template), and each value is written as a
quoted YAML string. A dev user with a default password (`{{ env.X |
default(...) }}`) is written only when the server URL is on this machine
(loopback): there a known password is a convenience, anywhere else a hole.

The file is never written over an existing one, whoever wrote it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError

from kcprov.errors import KcprovError
from kcprov.fileio import OutputFileError, resolve_output, write_output
from kcprov.spec.fields import RealmName, ServerName
from kcprov.spec.models import McpClientEntry, McpServer
from kcprov.mcp_clients import CIMD_PRESETS, DCR_PRESETS
from kcprov.urls import is_loopback

PRESETS: tuple[str, ...] = get_args(get_args(McpClientEntry.model_fields["preset"].annotation)[0])
"""The MCP client presets the realm file knows (vscode, claude-code, ...), from the model itself."""
CLIENT_CHOICES: tuple[str, ...] = ("dcr", *PRESETS)
DEFAULT_CLIENTS = ("dcr",)
Validation = Literal["jwt", "introspection"]

#: What each --client adds under the server's `clients:`, with the comment that explains it.
CLIENT_LINES = {
    "dcr": ("- dcr: {trusted_hosts: [localhost, 127.0.0.1]}",
            "clients that register themselves (RFC 7591: MCP SDKs), from these hosts only"),
    **{name: (f"- preset: {name}", f"{p.label}: its Client ID Metadata Document {p.document} (Keycloak feature cimd)")
       for name, p in CIMD_PRESETS.items()},
    **{name: (f"- preset: {name}", f"{p.label}: registers itself (DCR), redirect {p.redirect_uri}")
       for name, p in DCR_PRESETS.items()},
}


def default_path(name: str) -> Path:
    return Path("realms") / f"{name}.yaml"


def starter_realm(name: str, url: str, clients: Sequence[str] = DEFAULT_CLIENTS, validation: Validation = "jwt",
                  realm: str | None = None, path: str = "FILE") -> str:
    """The starter file's text for MCP server ``name`` at ``url`` (``path``: where it goes, for its comments).

    KcprovError for a value the file cannot hold.
    """
    _check(ServerName, name, "--name")
    _check(RealmName, realm or name, "--realm" if realm else "--name (the realm's name too, unless --realm)")
    realm = realm or name
    _checked_url(url, name)
    unknown = [c for c in clients if c not in CLIENT_LINES]
    if unknown:
        raise KcprovError(f"Unknown --client {', '.join(unknown)}.", hint=f"choose from: {', '.join(CLIENT_CHOICES)}")
    local = is_loopback(urlsplit(url).hostname)
    lines = [
        f"# Keycloak realm for the MCP server {name} at {url}, written by `kcprov init`.",
        "#",
        _commented(f"#   kcprov validate {path}", "offline checks (schema, references)", 44),
        _commented(f"#   kcprov plan {path}", "what would change in Keycloak (changes nothing)", 44),
        _commented(f"#   kcprov apply {path}", "make it so (shows the plan and asks first)", 44),
        "#",
        "# Every key is described in the JSON Schema: `kcprov schema > kcprov.schema.json`, then put",
        "# `# yaml-language-server: $schema=<path to kcprov.schema.json>` at the top for editor help.",
        "# Keys left out are not managed: Keycloak's value stays.",
        _commented(f"realm: {_scalar(realm)}", f"the realm; its tokens' issuer is <keycloak URL>/realms/{realm}"),
        "enabled: true",
        "",
        "settings:",
        _commented("  access_token_lifespan: 5m", "short-lived access tokens: a leaked one is soon useless"),
        _commented("  ssl_required: external", "HTTPS, except from localhost and private addresses"),
        _commented("  revoke_refresh_token: true", "refresh token rotation: each refresh token works once"),
        "  refresh_token_max_reuse: 0",
        _commented("  registration_allowed: false", "no self-service sign-up on the login page"),
        "",
    ]
    if local:
        lines += [
            _commented("users:", "a development user, since the server URL is on this machine"),
            "  - username: alice",
            "    password: \"{{ env.ALICE_PASSWORD | default('alice') }}\"   # dev default; set ALICE_PASSWORD to change it",
            "    email: alice@example.com",
            "    first_name: Alice",
            "    last_name: Example",
            "    enabled: true",
            "    email_verified: true",
            "",
        ]
    else:
        lines += [
            "# People log in with accounts made in Keycloak (or through an identity provider). A user written",
            "# here takes its password from an environment variable with no default (docs/templates.md).",
            "",
        ]
    lines += [
        "mcp_servers:",
        _commented(f"  - name: {_scalar(name)}", "names what kcprov makes for it (scopes, clients, policies)", 36),
        _commented(f"    url: {_scalar(url)}", "the URL clients call: the tokens' audience (RFC 8707 resource)", 36),
        _commented("    scopes:", "one client scope each, with its consent text; the first is the base", 36),
        f"      mcp:tools: {_scalar('Call the ' + name + ' tools')}",
        f"      # mcp:admin: {_scalar('Administer ' + name)}",
        _commented("    # tool_scopes: {my_tool: mcp:tools}", "tool name -> the scope it requires", 44),
        _commented("    # admin_role: mcp-admin", "realm role admin tools also require (add it under roles:)", 44),
    ]
    if validation == "jwt":
        lines.append(_commented("    token_validation: jwt", "the server checks tokens itself, with the realm's keys", 36))
    else:
        lines += [
            f"    # The server asks Keycloak about each token (RFC 7662), as the confidential client {name}-introspector",
            "    # that kcprov makes; `kcprov env` gives the server its secret.",
            "    token_validation: introspection",
        ]
    lines.append(_commented("    clients:", "how MCP clients get tokens for this server", 36))
    for choice in dict.fromkeys(clients or DEFAULT_CLIENTS):
        entry, comment = CLIENT_LINES[choice]
        lines += [f"      # {comment}", f"      {entry}"]
    lines += [
        _commented("    # env_file: .env", "`kcprov apply` writes the server's settings here (mode 0600)", 36),
        "",
    ]
    return "\n".join(lines)


def init_command(name: str, url: str, clients: Sequence[str], validation: Validation, realm: str | None,
                 output: str | None) -> str | None:
    """Write the starter (``output`` "-": print it); returns the path written, None for stdout."""
    path = output or str(default_path(name))
    text = starter_realm(name, url, clients, validation, realm, path="FILE" if path == "-" else path)
    _check_loads(text)
    if path == "-":
        sys.stdout.write(text)
        return None
    if output is None:
        Path("realms").mkdir(exist_ok=True)  # the default place, in the working tree
    if os.path.lexists(path):
        raise OutputFileError(f"{path} already exists; kcprov init never writes over a file.",
                              hint="choose another file with -o, or delete that one first")
    resolve_output(path, origin="command-line", what="realm file")
    write_output(path, text, origin="command-line", what="realm file")
    return path


def _check_loads(text: str) -> None:
    """The starter must pass `kcprov validate` as written (with no ALICE_PASSWORD set, too)."""
    from kcprov.spec import load_realm

    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / "starter.yaml"
        probe.write_text(text)
        load_realm(probe)


def _check(kind: object, value: str, option: str) -> None:
    try:
        TypeAdapter(kind).validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        hint = (first.get("ctx") or {}).get("hint")
        raise KcprovError(f"{option} {value!r}: {first['msg']}.", hint=hint) from None


def _checked_url(url: str, name: str) -> None:
    """The MCP server rules for ``url``, and nothing a template or YAML would read as syntax."""
    if any(c in url for c in "{}") or any(not c.isprintable() or c.isspace() for c in url):
        raise KcprovError(f"--url {url!r} holds spaces, braces or control characters.",
                          hint="write the URL clients call, e.g. http://localhost:3000/mcp")
    try:
        McpServer.model_validate({"name": name, "url": url, "scopes": {"mcp:tools": "-"}})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise KcprovError(f"--url: {first['msg']}.", hint=(first.get("ctx") or {}).get("hint")) from None


def _scalar(value: str) -> str:
    """``value`` as a YAML scalar: plain where YAML 1.2 reads it back as the same string, else double-quoted."""
    plain = re.fullmatch(r"[A-Za-z][A-Za-z0-9._:/?&=%+@~-]*( [A-Za-z0-9._-]+)*", value) and ": " not in value
    return value if plain and value.lower() not in ("true", "false", "null") else json.dumps(value)


def _commented(text: str, comment: str, column: int = 34) -> str:
    """``text`` with ``# comment`` at ``column`` (or one space after it)."""
    return f"{text}{' ' * max(1, column - len(text))}# {comment}"
