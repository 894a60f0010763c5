"""Facts about URLs that several layers decide on: is a host loopback?

Plain http is acceptable only where traffic never leaves the machine: the
connection to Keycloak (admin credentials), MCP server URLs, issuers and
redirect URIs (MCP requires HTTPS except for loopback). One definition
serves them all.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """localhost, *.localhost (RFC 6761), 127.0.0.0/8 and ::1 (bracketed or not)."""
    if not host:
        return False
    host = host.lower().rstrip(".").strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
