"""Where to find Keycloak and how to log in, for every command.

Precedence, highest first: command-line flags, KCPROV_* environment
variables (both read by the CLI's options, typer's `envvar=`), then the state
file of `kcprov dev up` (so plan/apply against the dev server need no flags).
The URL is checked before anything is sent: plain http only to loopback
unless allowed, never credentials inside it. Passwords and client secrets live in fields with
repr=False so they never end up in a log line or a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from kcprov.errors import ConnectionError_
from kcprov.fileio import read_input
from kcprov.urls import is_loopback


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
    allow_http: bool = False,
) -> ConnectionSettings:
    """Check the given settings (flags and KCPROV_* variables, merged by the CLI) and fill
    in the dev server's from its state file when no URL is given."""
    auth_realm = auth_realm or "master"
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
    url = check_url(url, allow_http)
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
    if ca_cert and not insecure:
        check_ca_bundle(ca_cert)
    verify: bool | str = False if insecure else (ca_cert or True)
    return ConnectionSettings(
        url=url,
        auth_realm=auth_realm,
        user=user,
        password=password,
        client_id=client_id,
        client_secret=client_secret,
        verify=verify,
        source=source,
    )


def settings_from_environment() -> ConnectionSettings:
    """The settings the CLI would use with no flags, for programs that are not the CLI (benchmarks)."""
    env = os.environ
    return resolve_connection(env.get("KCPROV_URL"), env.get("KCPROV_USER"), env.get("KCPROV_PASSWORD"),
                              env.get("KCPROV_CLIENT_ID"), env.get("KCPROV_CLIENT_SECRET"),
                              env.get("KCPROV_AUTH_REALM"), env.get("KCPROV_CA_CERT"))


def check_url(url: str, allow_http: bool = False) -> str:
    """The Keycloak base URL, checked: http(s), a host, no credentials, query or fragment.

    The admin password crosses this connection, so plain http is refused for any
    host but loopback unless the operator says --allow-http. Messages never
    repeat a URL that carried credentials.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ConnectionError_("The Keycloak URL is not a valid URL.", hint=URL_HINT) from None
    if parts.username is not None or parts.password is not None:
        raise ConnectionError_("The Keycloak URL holds credentials (user:password@host).",
                               hint="pass them with --user/--password or KCPROV_USER/KCPROV_PASSWORD, never in the URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectionError_(f"The Keycloak URL {url!r} is not an http(s) URL with a host.", hint=URL_HINT)
    if parts.query or parts.fragment:
        raise ConnectionError_(f"The Keycloak URL {url!r} has a query or fragment.", hint=URL_HINT)
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_http:
        raise ConnectionError_(
            f"Refusing plain http:// to {parts.hostname}: the admin credentials would cross the network unencrypted.",
            hint="use https:// (with --ca-cert for a private CA), or --allow-http if the network is trusted",
        )
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def check_ca_bundle(path: str) -> None:
    """A --ca-cert that is missing, a directory or not PEM is one clear error, not a TLS traceback."""
    data = read_input(path, what="CA bundle")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConnectionError_(f"{path}: the CA bundle holds no PEM certificate.",
                               hint="pass a PEM file (-----BEGIN CERTIFICATE-----), e.g. your CA's certificate")


URL_HINT = "write the URL Keycloak serves at, e.g. https://keycloak.example.com or http://localhost:8080"
