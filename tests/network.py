"""Whether the network a test downloads from is there (this suite also runs offline)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to the URL's host and port opens: a test that downloads
    (Maven Central, the npm registry) skips with a reason when it does not."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout):
            return True
    except OSError:
        return False
