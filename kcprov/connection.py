"""Where to find Keycloak and how to log in, for every command.

Precedence, highest first: command-line flags, KCPROV_* environment
variables, then the state file of `kcprov dev up` (so plan/apply against the
dev server need no flags). Passwords and client secrets live in fields with
repr=False so they never end up in a log line or a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from kcprov.errors import ConnectionError_


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything needed to open an Admin API session."""

    url: str
    auth_realm: str = "master"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    verify: bool | str = True  # True, False (--insecure) or a CA bundle path
    source: str = "flags"  # where the URL came from, for error messages

    @property
    def login(self) -> str:
        """Who we log in as, for messages (never includes a secret)."""
        if self.client_id and self.client_secret:
            return f"service account of client '{self.client_id}' in realm '{self.auth_realm}'"
        return f"user '{self.user}' in realm '{self.auth_realm}'"


def resolve_connection(
    url: str | None = None,
    user: str | None = None,
    password: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    auth_realm: str | None = None,
    ca_cert: str | None = None,
    insecure: bool = False,
) -> ConnectionSettings:
    """Merge flags, environment and the dev state file into one settings value."""
    env = os.environ
    url = url or env.get("KCPROV_URL")
    user = user or env.get("KCPROV_USER")
    password = password or env.get("KCPROV_PASSWORD")
    client_id = client_id or env.get("KCPROV_CLIENT_ID")
    client_secret = client_secret or env.get("KCPROV_CLIENT_SECRET")
    auth_realm = auth_realm or env.get("KCPROV_AUTH_REALM") or "master"
    source = "flags/environment"
    if not url:
        from kcprov.dev.state import load_state

        dev = load_state()
        if dev is None:
            raise ConnectionError_(
                "No Keycloak to talk to: no --url, no KCPROV_URL, and no dev server started.",
                hint="run `kcprov dev up`, or pass --url/--user/--password (or KCPROV_URL, KCPROV_USER, KCPROV_PASSWORD)",
            )
        url = dev.url
        if not (user or client_id):
            user, password = dev.user, dev.password
        source = "the dev server state file"
    if client_id and not client_secret:
        raise ConnectionError_(
            f"--client-id '{client_id}' given without a client secret.",
            hint="pass --client-secret or set KCPROV_CLIENT_SECRET",
        )
    if not client_id and not (user and password):
        raise ConnectionError_(
            f"No credentials for {url}.",
            hint="pass --user and --password (or KCPROV_USER/KCPROV_PASSWORD), or --client-id/--client-secret",
        )
    verify: bool | str = False if insecure else (ca_cert or True)
    return ConnectionSettings(
        url=url.rstrip("/"),
        auth_realm=auth_realm,
        user=user,
        password=password,
        client_id=client_id,
        client_secret=client_secret,
        verify=verify,
        source=source,
    )
