"""Expanding `mcp_servers:` entries into the primitives the engine knows.

Returns a RealmSpec holding only primitives, plus which MCP server each
generated object came from, so plans can show them under the server's name.
"""

from __future__ import annotations

from kcprov.spec.models import RealmSpec


def expand_mcp_servers(spec: RealmSpec) -> tuple[RealmSpec, dict[tuple[str, str], str]]:
    return spec, {}
