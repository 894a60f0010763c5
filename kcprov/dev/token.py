"""`kcprov dev token`: an access token for a dev user or client, without a browser.

Keycloak's login pages need a browser: their cookies are ``Secure``, which a
client on plain ``http://localhost`` never sends back, so scripting the
authorization code flow against the dev server fails. The password grant
(OAuth "direct access grants") needs no pages, but it is off for every client
kcprov creates (OAuth 2.1 drops it) and must stay off in real realms. So this
module turns it on in one place only: a temporary public client it creates
for one token and deletes afterwards (also on Ctrl-C, SIGTERM and SIGHUP),
and only on kcprov's own dev server.

"The dev server" is checked against the dev state (``kcprov dev up``'s state
file), not guessed from a URL: the state must exist, its Keycloak process (or
container) must be alive and ready, a ``--url``/``KCPROV_URL`` must be the
state's URL, that URL must be loopback, and the admin login uses the state's
random password, which only that instance accepts. Admin credentials from
flags or ``KCPROV_USER``/``KCPROV_PASSWORD`` are never used here, so a shell
pointed at production cannot be talked into enabling anything there.

A killed run (SIGKILL) can leave its temporary client behind; it carries the
pid that made it (``kcprov.dev-token.pid``), and the next run in that realm
deletes leftovers whose pid is gone.

Secrets (the user's password, a client secret) come from stdin, an
environment variable or a no-echo prompt, never from the command line (which
other users see in ``ps``), and are never printed. The token goes to stdout
only; everything else to stderr.
"""

from __future__ import annotations

import getpass
import os
import secrets
import select
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from kcprov.connection import ConnectionSettings, check_url
from kcprov.errors import DevServerError, KcprovError
from kcprov.keycloak import KeycloakClient, seg
from kcprov.urls import is_loopback

PASSWORD_ENV = "KCPROV_DEV_USER_PASSWORD"
SECRET_ENV = "KCPROV_DEV_CLIENT_SECRET"
TEMP_PREFIX = "kcprov-dev-token-"
PID_ATTRIBUTE = "kcprov.dev-token.pid"
MAX_SECRET_BYTES = 64 * 1024  # a password or client secret; more on stdin is not one
OIDC_SCOPE = "openid"  # a request parameter value, not a client scope of the realm

#: Keycloak's `error` codes of the token endpoint, and what to do about them.
GRANT_HINTS = {
    "invalid_grant": "check the password (`--password-stdin` or ${env}); a user with required actions "
                     "(e.g. update password) must finish them in the account console first",
    "invalid_scope": "the client does not offer that scope: leave out --client (kcprov's temporary client "
                     "gets every scope you ask for) or add the scope to the client",
    "invalid_target": "--resource must be the URL of an MCP server in this realm (a client's resource_url, "
                      "e.g. the `url:` of an mcp_servers entry)",
    "unauthorized_client": "the client does not allow this grant: for --client-credentials it needs a "
                           "service account; for a user token leave out --client",
    "invalid_client": "wrong client secret (`--client-secret-stdin` or ${env}), or the client is not confidential",
}
#: Keycloak 26.7.3 with the resource-indicators feature answers 500 to client credentials with `resource`.
CLIENT_CREDENTIALS_RESOURCE_HINT = ("Keycloak 26.7 answers 500 to client credentials with a resource unless the "
                                    "client has the attribute client_credentials.use_refresh_token: \"true\"; "
                                    "or leave out --resource (the audience mappers still add the server URL)")


@dataclass(frozen=True)
class TokenRequest:
    """What the user asked for: a user's token (password grant) or a client's (client credentials)."""

    realm: str
    user: str | None = None
    client: str | None = None
    scopes: tuple[str, ...] = ()
    resource: str | None = None
    client_credentials: bool = False


@dataclass(frozen=True)
class SecretInput:
    """Where a secret comes from: stdin (its first line), else an environment variable, else a no-echo prompt."""

    from_stdin: bool
    env_name: str
    what: str  # "password", "client secret"
    option: str  # the --...-stdin option, for hints

    @property
    def given(self) -> bool:
        """Whether the user supplied it (stdin or the variable), rather than leaving kcprov to ask or look it up."""
        return self.from_stdin or bool(os.environ.get(self.env_name))

    def read(self, prompt: str) -> str:
        if self.from_stdin:
            value = _first_line(sys.stdin)
        elif os.environ.get(self.env_name):
            value = os.environ[self.env_name]
        elif sys.stdin.isatty():
            value = getpass.getpass(prompt)  # asks on the terminal, never on stdout
        else:
            raise KcprovError(f"No {self.what} given, and no terminal to ask on.",
                              hint=f"pipe it in with {self.option}, or set {self.env_name} "
                                   "(never on the command line: `ps` shows it)")
        if not value:
            raise KcprovError(f"The {self.what} is empty.")
        return value


def dev_server_admin(url: str | None = None, timeout: float = 30.0) -> KeycloakClient:
    """An admin session on kcprov's dev server; anything else is refused before a request is sent."""
    from kcprov.dev import runner
    from kcprov.dev.state import state_dir

    current = runner.status()
    state = current.state
    where = state_dir()
    if state is None:
        raise DevServerError(f"`kcprov dev token` works only with kcprov's dev Keycloak, and none is set up in {where}.",
                             hint="run `kcprov dev up` (KCPROV_HOME selects the state dir); on any other Keycloak, "
                                  "log in through a browser instead: kcprov never enables the password grant there")
    asked = check_url(url) if url else state.url
    if asked != state.url:
        raise DevServerError(f"Refusing {asked}: it is not the dev Keycloak of {where} ({state.url}). "
                             "`kcprov dev token` enables the password grant on a temporary client, "
                             "so it runs only against kcprov's own dev server.",
                             hint="leave out --url and unset KCPROV_URL, or point KCPROV_HOME at that server's state dir")
    if current.readiness != "ready":
        raise DevServerError(f"The dev Keycloak of {where} is {current.readiness}, so {state.url} is not known to be it.",
                             hint="start it with `kcprov dev up` (or wait until `kcprov dev status` says ready)")
    if not is_loopback(urlsplit(state.url).hostname):
        raise DevServerError(f"The dev state in {where} names {state.url}, which is not on this machine.",
                             hint="a dev state is written by `kcprov dev up` for a loopback URL; delete the stray state file")
    settings = ConnectionSettings(url=state.url, user=state.user, password=state.password,
                                  source=f"the dev state in {where}")
    return KeycloakClient(settings, timeout=timeout)


def issue_token(admin: KeycloakClient, request: TokenRequest, password: SecretInput, client_secret: SecretInput,
                say: Callable[[str], None]) -> str:
    """The access token ``request`` asks for; a temporary client made for it is gone when this returns."""
    realm = request.realm
    if admin.get_optional(f"/admin/realms/{seg(realm)}", f"realm '{realm}'") is None:
        raise KcprovError(f"No realm '{realm}' on the dev server {admin.settings.url}.",
                          hint="apply its realm file first: kcprov apply FILE")
    known = _client_scopes(admin, realm)
    unknown = [s for s in request.scopes if s != OIDC_SCOPE and s not in known]
    if unknown:
        raise KcprovError(f"Realm '{realm}' has no client scope {', '.join(map(repr, unknown))}.",
                          hint=f"its scopes: {', '.join(sorted(known))}")
    form = {"scope": " ".join(request.scopes)} if request.scopes else {}
    if request.resource:
        form["resource"] = request.resource
    if request.client_credentials:
        client = _existing_client(admin, realm, request.client)
        _check_service_account(client)
        form |= {"grant_type": "client_credentials", "client_id": client["clientId"],
                 "client_secret": _secret_of(admin, realm, client, client_secret)}
        return _grant(admin, realm, form, request)
    _check_user(admin, realm, request.user)
    with _interrupts_as_keyboard():
        if request.client:
            client = _existing_client(admin, realm, request.client)
            if not client.get("directAccessGrantsEnabled"):
                raise KcprovError(f"Client '{request.client}' does not allow the password grant (direct access grants "
                                  "are off), and kcprov does not turn it on for a client it did not make.",
                                  hint="leave out --client: kcprov then makes a temporary client for the token")
            if not client.get("publicClient"):
                form["client_secret"] = _secret_of(admin, realm, client, client_secret)
            return _password_grant(admin, form, request, client["clientId"], password)
        with _temporary_client(admin, realm, request.scopes, known, say) as client_id:
            return _password_grant(admin, form, request, client_id, password)


def _password_grant(admin: KeycloakClient, form: dict[str, str], request: TokenRequest, client_id: str,
                    password: SecretInput) -> str:
    """The password is read last: after every check, and once the client exists (Ctrl-C at the prompt cleans up)."""
    secret = password.read(f"Password of {request.user} in realm {request.realm}: ")
    return _grant(admin, request.realm, form | {"grant_type": "password", "client_id": client_id,
                                                "username": str(request.user), "password": secret}, request)


def _grant(admin: KeycloakClient, realm: str, form: dict[str, str], request: TokenRequest) -> str:
    status, answer = admin.oidc_token(realm, form, f"token for {_who(request)}")
    if status == 200 and isinstance(answer.get("access_token"), str):
        return answer["access_token"]
    error = str(answer.get("error") or f"HTTP {status}")
    description = str(answer.get("error_description") or "")[:200]
    if status == 401:  # Keycloak says unauthorized_client or invalid_client for a wrong secret
        error_kind = "invalid_client"
    else:
        error_kind = error
    hint = GRANT_HINTS.get(error_kind, "see the dev Keycloak's log: kcprov dev logs")
    if status >= 500 and request.client_credentials and request.resource:
        hint = CLIENT_CREDENTIALS_RESOURCE_HINT
    env = SECRET_ENV if request.client_credentials or error_kind == "invalid_client" else PASSWORD_ENV
    raise KcprovError(f"Keycloak refused the token for {_who(request)} in realm '{realm}': {error}"
                      + (f" ({description})" if description else "") + ".", hint=hint.replace("${env}", env))


def _who(request: TokenRequest) -> str:
    return f"client '{request.client}'" if request.client_credentials else f"user '{request.user}'"


def _client_scopes(admin: KeycloakClient, realm: str) -> dict[str, str]:
    """Client scope name -> id."""
    found = admin.get(f"/admin/realms/{seg(realm)}/client-scopes", f"client scopes of realm '{realm}'") or []
    return {s["name"]: s["id"] for s in found}


def _existing_client(admin: KeycloakClient, realm: str, client_id: str | None) -> dict:
    assert client_id is not None  # the CLI requires --client with --client-credentials
    found = admin.get(f"/admin/realms/{seg(realm)}/clients", f"client '{client_id}'", clientId=client_id, search="false")
    client = next((c for c in found or [] if c.get("clientId") == client_id), None)
    if client is None:
        raise KcprovError(f"Realm '{realm}' has no client '{client_id}'.", hint="check --client (a client_id, not a name)")
    return client


def _check_service_account(client: dict) -> None:
    if client.get("publicClient") or not client.get("serviceAccountsEnabled"):
        raise KcprovError(f"Client '{client['clientId']}' cannot use client credentials: it is "
                          + ("public." if client.get("publicClient") else "confidential but has no service account."),
                          hint="give it `confidential: true` and `service_account: true` in the realm file")


def _secret_of(admin: KeycloakClient, realm: str, client: dict, given: SecretInput) -> str:
    """The secret from stdin/env if the user gave one, else read with the dev server's admin rights."""
    if given.given:
        return given.read(f"Secret of client {client['clientId']}: ")
    secret = admin.client_secret(realm, client["id"], client["clientId"])
    if not secret:
        raise KcprovError(f"Client '{client['clientId']}' has no secret to use.",
                          hint=f"pass it with --client-secret-stdin or {SECRET_ENV}")
    return secret


def _check_user(admin: KeycloakClient, realm: str, username: str | None) -> None:
    assert username is not None  # the CLI requires --user without --client-credentials
    found = admin.get(f"/admin/realms/{seg(realm)}/users", f"user '{username}'", username=username, exact="true")
    if not found:
        raise KcprovError(f"Realm '{realm}' has no user '{username}'.", hint="check --user, or add it under users: in the realm file")
    if not found[0].get("enabled", True):
        raise KcprovError(f"User '{username}' in realm '{realm}' is disabled.")


@contextmanager
def _temporary_client(admin: KeycloakClient, realm: str, scopes: tuple[str, ...], known: dict[str, str],
                      say: Callable[[str], None]) -> Iterator[str]:
    """A public client allowing only the password grant, with ``scopes`` optional; deleted on the way out."""
    clients = f"/admin/realms/{seg(realm)}/clients"
    _remove_leftovers(admin, realm, say)
    client_id = TEMP_PREFIX + secrets.token_hex(4)
    body = {
        "clientId": client_id,
        "name": "kcprov dev token (temporary)",
        "description": f"Made by `kcprov dev token` for one token (pid {os.getpid()}) and deleted right after; "
                       "safe to delete.",
        "publicClient": True,
        "directAccessGrantsEnabled": True,
        "standardFlowEnabled": False,
        "implicitFlowEnabled": False,
        "serviceAccountsEnabled": False,
        "attributes": {PID_ATTRIBUTE: str(os.getpid())},
    }
    uuid = admin.post(clients, body, f"temporary client '{client_id}'")
    try:
        if uuid is None:
            raise KcprovError(f"Keycloak made the temporary client '{client_id}' but did not say its id.")
        made = admin.get(f"{clients}/{uuid}", f"temporary client '{client_id}'")
        has = set(made.get("defaultClientScopes") or ()) | set(made.get("optionalClientScopes") or ())
        for name in (s for s in scopes if s != OIDC_SCOPE and s not in has):
            admin.put(f"{clients}/{uuid}/optional-client-scopes/{known[name]}", None, f"scope '{name}' of '{client_id}'")
        yield client_id
    finally:
        if uuid is not None:
            admin.delete(f"{clients}/{uuid}", f"temporary client '{client_id}'")


def _remove_leftovers(admin: KeycloakClient, realm: str, say: Callable[[str], None]) -> None:
    """Delete temporary clients of earlier runs that were killed before they could (their pid is gone)."""
    clients = f"/admin/realms/{seg(realm)}/clients"
    for client in admin.get(clients, "temporary clients", clientId=TEMP_PREFIX, search="true") or []:
        pid = (client.get("attributes") or {}).get(PID_ATTRIBUTE, "")
        if client.get("clientId", "").startswith(TEMP_PREFIX) and pid.isdigit() and not _pid_alive(int(pid)):
            admin.delete(f"{clients}/{client['id']}", f"leftover client '{client['clientId']}'")
            say(f"Deleted the leftover temporary client '{client['clientId']}' of an earlier run.")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _first_line(stream) -> str:
    """The first line of stdin, read in short polls so Ctrl-C or SIGTERM is handled at once.

    A blocking read of a pipe is not interrupted when the signal lands on
    another of the process's threads; Python then runs the handler only once the
    read ends, so the temporary client would outlive an interrupted run until
    the writer closed the pipe. Polling returns to the interpreter every tenth
    of a second, where the handler runs and the client is deleted on the way out.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (an in-memory stream): nothing to wait on
        return stream.readline().rstrip("\r\n")
    read = b""
    while b"\n" not in read and len(read) < MAX_SECRET_BYTES:
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            read += chunk
    return read.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")


@contextmanager
def _interrupts_as_keyboard() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal) unwind like Ctrl-C, so the temporary client is deleted."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
