"""Known MCP clients: what each needs from Keycloak, in one table.

A `preset:` entry of `mcp_servers[].clients` names one of them. An MCP client
reaches Keycloak in one of two ways, and its preset says which:

* a client ID metadata document (CIMD): its `client_id` is an https URL on the
  vendor's domain, and Keycloak's CIMD client policy must trust that domain and
  the hosts of the redirect URIs the document lists (loopback for desktop apps);
* dynamic client registration (DCR): Keycloak's anonymous registration must
  trust the hosts of the redirect URIs the client registers (`trusted_hosts`),
  and a client registering from a browser page needs its origin allowed.

The values come from each client's documentation or its published metadata
document (the URLs below), checked on the date in docs/mcp-clients.md. Adding a
client is one entry here; the expansion, export recognition, audits, `kcprov
init` and the JSON Schema all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CimdPreset:
    """A known MCP client that identifies itself with a metadata document."""

    client_id_domains: tuple[str, ...]
    trusted_domains: tuple[str, ...]
    restrict_same_domain: bool
    accept_public_client_with_confidential_grant_types: bool | None = None
    label: str = ""
    document: str = ""  # the client_id URL, for docs and hints


@dataclass(frozen=True)
class DcrPreset:
    """A known MCP client that registers itself with DCR.

    `from_anywhere`: the registration request comes from the user's machine or
    the vendor's servers, never from a trusted host, so Keycloak's "host
    sending the request must match" check has to be off for it.
    `cimd_refused`: the client also publishes a metadata document that this
    Keycloak line refuses; the plan says so (DCR is the way in until then).
    """

    label: str
    trusted_hosts: tuple[str, ...]
    redirect_uri: str
    web_origins: tuple[str, ...] = ()
    from_anywhere: bool = False
    cimd_refused: str = ""


# From Keycloak's MCP guide (VS Code desktop, Claude Code, Claude Desktop) and the
# clients' published metadata documents (Goose, opencode, Codex).
CIMD_PRESETS: dict[str, CimdPreset] = {
    "vscode": CimdPreset(("vscode.dev",), ("vscode.dev", "127.0.0.1", "code.visualstudio.com"), False,
                         label="VS Code", document="https://vscode.dev/oauth/client-metadata.json"),
    "claude-code": CimdPreset(("claude.ai",), ("claude.ai", "localhost", "127.0.0.1"), False, label="Claude Code",
                              document="https://claude.ai/oauth/claude-code-client-metadata"),
    "claude-desktop": CimdPreset(("claude.ai",), ("claude.ai",), True, True, label="Claude Desktop",
                                 document="https://claude.ai/oauth/mcp-oauth-client-metadata"),
    "goose": CimdPreset(("goose-docs.ai",), ("goose-docs.ai", "127.0.0.1"), False, label="Goose",
                        document="https://goose-docs.ai/oauth/client-metadata.json"),
    "opencode": CimdPreset(("opencode.ai",), ("opencode.ai", "127.0.0.1", "localhost"), False, label="opencode",
                           document="https://opencode.ai/oauth/opencode/client.json"),
    "codex": CimdPreset(("chatgpt.com",), ("chatgpt.com", "127.0.0.1", "localhost"), False, label="Codex",
                        document="https://chatgpt.com/oauth/codex/client.json"),
}
# Both Claude clients use client_ids on claude.ai: two policies would both match and each
# profile would reject the other client. The guide's answer: one profile satisfying both.
CLAUDE_COMBINED = CimdPreset(("claude.ai",), ("claude.ai", "localhost", "127.0.0.1"), False, True,
                             label="Claude Code and Claude Desktop")

INSPECTOR_ORIGIN = "http://localhost:6274"

DCR_PRESETS: dict[str, DcrPreset] = {
    # Registers from the browser page it serves: the origin must be allowed.
    "mcp-inspector": DcrPreset("MCP Inspector", ("localhost",), f"{INSPECTOR_ORIGIN}/oauth/callback",
                               web_origins=(INSPECTOR_ORIGIN,)),
    # A custom-scheme redirect: Keycloak's trusted-hosts check reads its host part.
    "cursor": DcrPreset("Cursor", ("anysphere.cursor-mcp",), "cursor://anysphere.cursor-mcp/oauth/callback",
                        from_anywhere=True),
    "copilot-cli": DcrPreset("GitHub Copilot CLI", ("127.0.0.1", "localhost"), "http://127.0.0.1:<port>/",
                             from_anywhere=True),
    "chatgpt": DcrPreset("ChatGPT", ("chatgpt.com",), "https://chatgpt.com/connector_platform_oauth_redirect",
                         from_anywhere=True,
                         cimd_refused="Keycloak 26.7 refuses ChatGPT's client ID metadata document "
                                      "(https://chatgpt.com/oauth/client.json)"),
}

PRESET_NAMES: tuple[str, ...] = (*CIMD_PRESETS, *DCR_PRESETS)


def preset_label(name: str) -> str:
    """The client's name as people know it ("Claude Code"), for plans and hints."""
    preset = CIMD_PRESETS.get(name) or DCR_PRESETS.get(name)
    return preset.label if preset else name


def presets_markdown() -> str:
    """The presets table of docs/mcp-clients.md (a test keeps the two equal)."""
    rows = ["| preset | client | how it reaches Keycloak | what kcprov sets up |", "|---|---|---|---|"]
    for name, cimd in CIMD_PRESETS.items():
        rows.append(f"| `{name}` | {cimd.label} | CIMD: `{cimd.document}` | a `client-id-metadata-document` profile + "
                    f"`client-id-uri` policy for {', '.join(cimd.client_id_domains)}; trusted domains "
                    f"{', '.join(cimd.trusted_domains)} |")
    for name, dcr in DCR_PRESETS.items():
        setup = [f"DCR: trusted hosts {', '.join(dcr.trusted_hosts)}"]
        if dcr.web_origins:
            setup.append(f"registration web origins {', '.join(dcr.web_origins)}")
        if dcr.from_anywhere:
            setup.append("host sending the request need not match (warning `preset-registers-from-anywhere`)")
        if dcr.cimd_refused:
            setup.append(f"{dcr.cimd_refused} (warning `preset-cimd-refused`)")
        rows.append(f"| `{name}` | {dcr.label} | DCR, redirect `{dcr.redirect_uri}` | {'; '.join(setup)} |")
    return "\n".join(rows) + "\n"
