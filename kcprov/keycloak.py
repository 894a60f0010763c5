"""The only module that talks HTTP to Keycloak.

A thin layer over python-keycloak's `KeycloakOpenIDConnection` (which owns the
admin token and renews it when it expires): one method = one Admin API
request. It counts requests (benchmarks report requests per plan) and turns
every HTTP failure into a one-line KeycloakApiError naming the resource and
what to do. It holds no diff logic.

Failures of the wire are the run's business, not one request's: retries
(with backoff) come from one RetryBudget per client, a request that times
out says so and is not repeated, and after the first definitive transport
failure every request fails at once (KeycloakUnreachable), so a dead
Keycloak ends an apply in seconds. A create is never blindly repeated: when
its answer was lost, the object is looked up first (`created_lookup`).

The environment's proxy and CA settings (HTTPS_PROXY, NO_PROXY,
REQUESTS_CA_BUNDLE, ...) are read once, when the client is made, rather than
by requests on every request (`environment_settings`): the same answer for
the one Keycloak URL of a run, and a third of the CPU each request cost
(measured: 1.07 -> 0.74 ms a GET), which on 2 cores shared with Keycloak is
time taken from the server during a create of thousands of clients.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import quote

import requests
from keycloak import KeycloakOpenIDConnection
from keycloak.exceptions import KeycloakConnectionError, KeycloakError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_any, wait_exponential, wait_random

from kcprov.connection import ConnectionSettings
from kcprov.errors import ConnectionError_, KeycloakApiError

TRANSIENT_STATUS = {429, 502, 503, 504}
OVERLOAD_STATUS = {429, 503}  # Keycloak (or its proxy) asking for fewer requests: the apply's pool shrinks
MAX_RETRY_AFTER = 30.0  # seconds: a longer Retry-After is waited this long (the answer is not trusted blindly)
DEFAULT_TIMEOUT = 30
DEFAULT_RETRIES = 8  # per run, all requests together

HINTS = {
    401: "the admin session was refused: check the credentials (--user/--password or --client-id/--client-secret)",
    403: "the admin account lacks a permission for this: use an admin of the master realm or grant realm-management roles",
    404: "it no longer exists in Keycloak: run `kcprov plan` again to see the current state",
    409: "it already exists in Keycloak (perhaps made by hand or by a concurrent run): run `kcprov plan` again",
}
UNREACHABLE_HINT = ("check that Keycloak is up (`kcprov dev status`) and run `kcprov plan` to see what remains; "
                    "what was done before stays done")


class KeycloakUnreachable(KeycloakApiError):
    """Keycloak did not answer (refused, closed the connection, timed out, or kept answering 5xx).

    Unlike an HTTP error about one object, this ends the whole run: once one
    request failed for this reason after its retries, every later request of the
    same client fails at once with the same message (see RetryBudget).
    """


class _Transient(Exception):
    """A failure worth retrying: connection trouble or a 429/5xx gateway answer (and its Retry-After)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Failed(Exception):
    """A definitive transport failure of one request (timeout, or the run already failed)."""


class _Found(NamedTuple):
    """A create whose answer was lost, found in Keycloak before it was retried."""

    id: str


class RetryBudget:
    """Retries shared by every request of a run, across threads.

    At most `retries` retries in total; the first request that still fails
    `trip`s the budget, and from then on every request fails at once with
    that error instead of retrying. So a dead Keycloak costs one backoff
    sequence per run, not one per queued change.
    """

    def __init__(self, retries: int = DEFAULT_RETRIES):
        self.retries = retries
        self.used = 0
        self.failure: KeycloakUnreachable | None = None
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one retry; False when none is left or the run already failed."""
        with self._lock:
            if self.failure is not None or self.used >= self.retries:
                return False
            self.used += 1
            return True

    def trip(self, failure: KeycloakUnreachable) -> KeycloakUnreachable:
        """Record the run's transport failure (the first one wins) and answer it."""
        with self._lock:
            if self.failure is None:
                self.failure = failure
            return self.failure

    def check(self) -> None:
        """Fail fast once the run has failed for a transport reason."""
        failure = self.failure
        if failure is not None:
            raise _Failed(failure)


class _SharedConnection(KeycloakOpenIDConnection):
    """python-keycloak's admin session, its token renewal serialised.

    Threads of one run share the session (apply workers, realms planned at
    once). python-keycloak renews an expired token, or one refused with 401,
    in whichever thread notices: unguarded, every waiting thread would renew
    it again. Here the first renews and the others, seeing a token newer than
    the one they held, use it.
    """

    def __init__(self, **kwargs: Any):
        self._renewal = threading.Lock()
        super().__init__(**kwargs)

    def _refresh_if_required(self) -> None:
        held = self.token
        if self.expires_at is not None and datetime.now(tz=timezone.utc) >= self.expires_at:
            self._renew(held)

    def refresh_token(self) -> None:
        self._renew(self.token)

    def _renew(self, held: dict | None) -> None:
        with self._renewal:
            if self.token is held:  # else another thread renewed it while this one waited
                super().refresh_token()


def environment_settings(url: str, verify: bool | str) -> tuple[dict[str, str], bool | str]:
    """The proxies and TLS verification requests would take from the environment for `url`, as it
    does per request when a session trusts the environment: the proxies unless NO_PROXY covers the
    URL, and for `verify=True` the CA bundle of REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE."""
    proxies = requests.utils.get_environ_proxies(url)
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return proxies, verify


def seg(value: str) -> str:
    """Quote one path segment (names such as `mcp:tools` or role names with slashes)."""
    return quote(value, safe="")


class KeycloakClient:
    """An authenticated Admin API session that counts and retries its requests.

    `timeout` bounds each request (seconds until Keycloak answers); a request
    that times out is not retried, since waiting again would multiply the
    bound the user chose. `attempts` bounds the tries of one request, `retries`
    the retries of the whole session (a RetryBudget). `on_request(method, path,
    status, seconds)` hears of the login and every Admin API answer (`kcprov -v`):
    the path holds names and ids only, never a token, a secret or a body.
    """

    def __init__(self, settings: ConnectionSettings, timeout: float = DEFAULT_TIMEOUT, attempts: int = 4,
                 retries: int = DEFAULT_RETRIES, on_request: Callable[[str, str, int, float], None] | None = None):
        self.settings = settings
        self.on_request = on_request
        self.timeout = timeout
        self.attempts = attempts
        self.budget = RetryBudget(retries)
        self.requests = 0
        self.bytes_read = 0  # response bodies of the Admin API, for benchmarks
        self._lock = threading.Lock()
        self._overload_listeners: list[Callable[[float | None], None]] = []
        service = bool(settings.client_id and settings.client_secret)
        proxies, verify = environment_settings(settings.url, settings.verify)
        self._conn = _SharedConnection(
            # A trailing slash and relative paths make every request (the token endpoint too) go under
            # the URL's own path: Keycloak behind a prefix (KC_HTTP_RELATIVE_PATH=/auth) works, and a wrong
            # prefix is a 404 at login instead of being silently dropped by urljoin.
            server_url=settings.url + "/",
            username=None if service else settings.user,
            password=None if service else settings.password,
            realm_name=settings.auth_realm,
            user_realm_name=settings.auth_realm,
            client_id=settings.client_id if service else "admin-cli",
            client_secret_key=settings.client_secret if service else None,
            verify=settings.verify,
            timeout=timeout,
            pool_maxsize=16,
            max_retries=0,  # every retry is ours: counted, budgeted, and never a blind repeat of a create
        )
        self._conn.keycloak_openid  # noqa: B018 - the login's own session, made with the options as given
        session = getattr(self._conn, "_s", None)  # python-keycloak's Admin API session
        if isinstance(session, requests.Session):  # else requests reads the environment per request: slower, the same
            session.proxies.update(proxies)
            session.trust_env = False
            self._conn.verify = verify  # what its requests get (its unused async client keeps the option as given)
        self._login()

    def _login(self) -> None:
        s = self.settings
        started = time.monotonic()
        try:
            self._count()
            self._conn.get_token()
            if self.on_request is not None:  # python-keycloak raises for any other answer
                self.on_request("POST", f"realms/{seg(s.auth_realm)}/protocol/openid-connect/token", 200,
                                time.monotonic() - started)
        except KeycloakConnectionError as exc:
            if _timed_out(exc):
                raise ConnectionError_(
                    f"Keycloak at {s.url} (URL from {s.source}) gave no answer to the login within {self.timeout:g} s.",
                    hint="is it overloaded or still starting? retry, or raise --timeout",
                ) from None
            raise ConnectionError_(
                f"Cannot reach Keycloak at {s.url} (URL from {s.source}).",
                hint="is it running? `kcprov dev status` for the dev server; check --url and TLS options (--ca-cert, --insecure)",
            ) from None
        except KeycloakError as exc:
            if exc.response_code == 404:
                raise ConnectionError_(
                    f"No Keycloak realm '{s.auth_realm}' answers at {s.url}/realms/{s.auth_realm} (HTTP 404).",
                    hint="check --url (Keycloak 17 and later serve at the root, without /auth, unless "
                         "configured with a relative path) and --auth-realm",
                ) from None
            if not _refused_login(exc):
                raise ConnectionError_(
                    f"Login to Keycloak at {s.url} as {s.login} failed (HTTP {exc.response_code}).",
                    hint="check --auth-realm and that the account may use the admin API",
                ) from None
            raise ConnectionError_(
                f"Keycloak at {s.url} refused the login of {s.login}: wrong credentials.",
                hint="check the password or client secret; for the dev server, `kcprov dev credentials` shows them",
            ) from None

    def _count(self) -> None:
        with self._lock:
            self.requests += 1

    @contextmanager
    def overload_listener(self, listener: Callable[[float | None], None]) -> Iterator[None]:
        """While in the block, `listener(retry_after)` hears of every 429/503 answer (an apply's worker pool
        shrinks on it); retry_after is the answer's Retry-After in seconds, or None."""
        with self._lock:
            self._overload_listeners.append(listener)
        try:
            yield
        finally:
            with self._lock:
                self._overload_listeners.remove(listener)

    def _overloaded(self, resp) -> float | None:
        retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
        with self._lock:
            listeners = list(self._overload_listeners)
        for listener in listeners:
            listener(retry_after)
        return retry_after

    def _request(self, method: str, path: str, body: Any, params: dict | None):
        """One HTTP exchange; connection trouble and gateway answers become _Transient."""
        self.budget.check()
        self._count()
        path = path.lstrip("/")  # relative to the server URL, prefix included (see __init__)
        started = time.monotonic()
        try:
            if method == "GET":
                resp = self._conn.raw_get(path, **(params or {}))
            elif method == "POST":
                resp = self._conn.raw_post(path, data=json.dumps(body if body is not None else {}), **(params or {}))
            elif method == "PUT":
                resp = self._conn.raw_put(path, data=json.dumps(body if body is not None else {}), **(params or {}))
            else:
                resp = self._conn.raw_delete(path, data=json.dumps(body) if body is not None else None)
        except KeycloakConnectionError as exc:
            if _timed_out(exc):
                raise _Failed(self.budget.trip(KeycloakUnreachable(
                    f"Keycloak at {self.settings.url} gave no answer within {self.timeout:g} s",
                    hint="Keycloak is overloaded or hung: check it, then run `kcprov plan` to see what remains; "
                         "raise --timeout if it is merely slow",
                ))) from None
            raise _Transient(_transport_problem(exc)) from None
        except KeycloakError as exc:  # renewing the admin token failed
            raise KeycloakApiError(
                f"the admin session could not be renewed (Keycloak answered {exc.response_code}).",
                hint=HINTS[401],
                status=exc.response_code,
            ) from None
        with self._lock:
            self.bytes_read += len(resp.content)
        if self.on_request is not None:
            self.on_request(method, path, resp.status_code, time.monotonic() - started)
        if resp.status_code in TRANSIENT_STATUS:
            retry_after = self._overloaded(resp) if resp.status_code in OVERLOAD_STATUS else None
            raise _Transient(f"kept answering HTTP {resp.status_code}", retry_after)
        return resp

    def _send(self, method: str, path: str, what: str, body: Any = None, params: dict | None = None,
              find: Callable[[], str | None] | None = None, once: bool = False):
        """The request with bounded, budgeted retries; `find` guards a create against a lost answer.

        A create whose answer was lost (connection closed, 5xx from a gateway)
        may have been made: before it is retried, `find` looks for the object,
        and a 409 on the retry is checked the same way. So kcprov's own object
        is neither made twice nor reported as someone else's.
        """
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_any(stop_after_attempt(1 if once else self.attempts), lambda _state: not self.budget.take()),
            wait=_honouring_retry_after(wait_exponential(multiplier=0.5, max=8) + wait_random(0, 0.5)),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    retried = attempt.retry_state.attempt_number > 1
                    if retried and find is not None and (found := find()):
                        return _Found(found)
                    resp = self._request(method, path, body, params)
                    if retried and find is not None and resp.status_code == 409 and (found := find()):
                        return _Found(found)
        except _Transient as exc:
            failure = KeycloakUnreachable(f"Keycloak at {self.settings.url} {exc}", hint=UNREACHABLE_HINT)
            self.budget.trip(failure)
            raise KeycloakUnreachable(f"{what}: {failure.message} ({attempt.retry_state.attempt_number} tries).",
                                      failure.hint) from None
        except _Failed as exc:
            first = exc.args[0]
            raise KeycloakUnreachable(f"{what}: {first.message}.", first.hint) from None
        if resp.status_code >= 400:
            raise KeycloakApiError(
                f"{what}: Keycloak answered {resp.status_code}{_reason(resp)}.",
                hint=HINTS.get(resp.status_code, "see the Keycloak server log for details"),
                status=resp.status_code,
            )
        return resp

    # -- generic verbs -------------------------------------------------------------
    def get(self, path: str, what: str, **params: Any) -> Any:
        resp = self._send("GET", path, what, params=params)
        return resp.json() if resp.content else None

    def get_optional(self, path: str, what: str, **params: Any) -> Any:
        """GET that answers None for 404 instead of failing (e.g. a realm not made yet)."""
        try:
            return self.get(path, what, **params)
        except KeycloakApiError as exc:
            if exc.status == 404:
                return None
            raise

    def post(self, path: str, body: Any, what: str, *, once: bool = False, **params: Any) -> str | None:
        """POST; returns the id from the Location header of a created object, if any.

        A create of a kind of object `created_lookup` knows is looked up before
        any retry (see _send); other POSTs kcprov makes (role mappings, exports)
        are idempotent in Keycloak and simply retried. `once`: a create with no
        natural key to look it up by (an authenticator execution, an authenticator
        config), or one whose caller relies on Keycloak's 409 (the realm lock): sent
        once, and a lost answer fails the run instead of risking a second object;
        the next plan shows whether it was made.
        """
        find = None if once else created_lookup(self, path, body, what)
        resp = self._send("POST", path, what, body=body, params=params, find=find, once=once)
        if isinstance(resp, _Found):
            return resp.id
        location = resp.headers.get("Location")
        return location.rstrip("/").rsplit("/", 1)[-1] if location else None

    def post_json(self, path: str, body: Any, what: str, **params: Any) -> Any:
        """POST that answers a JSON document (partial export, secret regeneration)."""
        resp = self._send("POST", path, what, body=body, params=params)
        return resp.json() if resp.content else None

    def put(self, path: str, body: Any, what: str) -> None:
        self._send("PUT", path, what, body=body)

    def delete(self, path: str, what: str, body: Any = None) -> None:
        self._send("DELETE", path, what, body=body)

    # -- reads the state layer needs --------------------------------------------------
    def realm_export(self, realm: str) -> dict | None:
        """The whole realm (clients, scopes, roles, components, policies, service
        account users) in ONE request, secrets masked; None if the realm does not exist."""
        try:
            return self.post_json(
                f"/admin/realms/{seg(realm)}/partial-export",
                {},
                f"realm '{realm}'",
                exportClients="true",
                exportGroupsAndRoles="true",
            )
        except KeycloakApiError as exc:
            if exc.status == 404:
                return None
            raise

    def pages(self, path: str, what: str, size: int, **params: Any) -> Iterator[list[dict]]:
        """A list endpoint page by page (`first`, `max`), one request each, up to the first short page."""
        first = 0
        while True:
            batch = self.get(path, what, first=first, max=size, **params)
            yield batch
            if len(batch) < size:
                return
            first += size

    def client_pages(self, realm: str, size: int) -> Iterator[list[dict]]:
        """The realm's clients, full representations, `size` a page."""
        return self.pages(f"/admin/realms/{seg(realm)}/clients", f"clients of realm '{realm}'", size)

    def client_roles(self, realm: str, client_uuid: str, client_id: str) -> list[dict]:
        """A client's roles; none for a client deleted since it was listed."""
        return self.get_optional(f"/admin/realms/{seg(realm)}/clients/{client_uuid}/roles",
                                 f"roles of client '{client_id}'") or []

    def users(self, realm: str, page: int = 500) -> list[dict]:
        """All users (briefRepresentation=false), paginated."""
        return [user for batch in self.pages(f"/admin/realms/{seg(realm)}/users", f"users of realm '{realm}'", page,
                                             briefRepresentation="false")
                for user in batch]

    def user_role_mappings(self, realm: str, user_id: str, username: str) -> dict:
        return self.get(f"/admin/realms/{seg(realm)}/users/{user_id}/role-mappings", f"roles of user '{username}'")

    def client_secret(self, realm: str, client_uuid: str, client_id: str) -> str | None:
        doc = self.get(f"/admin/realms/{seg(realm)}/clients/{client_uuid}/client-secret", f"secret of client '{client_id}'")
        return (doc or {}).get("value")

    def oidc_token(self, realm: str, form: dict[str, str], what: str) -> tuple[int, dict]:
        """One grant at a realm's token endpoint (`kcprov dev token`): Keycloak's status and JSON answer.

        Not the Admin API: a form post without the admin session's token, sent
        once (a refused password is no transient failure, and each try counts
        for brute-force detection). Errors come back as Keycloak's `error` /
        `error_description` for the caller to explain; `form` holds secrets
        and is never part of a message.
        """
        self._count()
        url = f"{self.settings.url}/realms/{seg(realm)}/protocol/openid-connect/token"
        try:
            resp = requests.post(url, data=form, timeout=self.timeout, verify=self.settings.verify)
        except requests.RequestException as exc:
            raise KeycloakUnreachable(f"{what}: Keycloak at {self.settings.url} could not be reached "
                                      f"({type(exc).__name__}).", hint=UNREACHABLE_HINT) from None
        try:
            answer = resp.json()
        except ValueError:
            answer = {}
        return resp.status_code, answer if isinstance(answer, dict) else {}

    def server_info(self) -> dict:
        return self.get("/admin/serverinfo", "server info")


def created_lookup(client: KeycloakClient, path: str, body: Any, what: str) -> Callable[[], str | None] | None:
    """How to find the object a create POST makes, by the name it was given; None if not a known create.

    Keycloak names a created object in the Location header only, so when that
    answer is lost the object has to be found by its natural key: each
    collection is searched the way the Admin API allows.
    """
    if not isinstance(body, dict):
        return None
    if path == "/admin/realms" and body.get("realm"):
        name = body["realm"]
        return lambda: name if client.get_optional(f"/admin/realms/{seg(name)}", what) else None
    collection = path.rstrip("/").rsplit("/", 1)[-1]
    if collection == "clients" and body.get("clientId"):
        return lambda: _first_id(client.get(path, what, clientId=body["clientId"], search="false"), "clientId", body["clientId"])
    if collection == "users" and body.get("username"):
        name = body["username"].lower()  # Keycloak keeps usernames in lower case
        return lambda: _first_id(client.get(path, what, username=name, exact="true"), "username", name)
    if collection == "roles" and body.get("name"):
        return lambda: (client.get_optional(f"{path}/{seg(body['name'])}", what) or {}).get("id")
    if collection in ("client-scopes", "models") and body.get("name"):  # models: protocol mappers
        return lambda: _first_id(client.get(path, what), "name", body["name"])
    if collection in ("groups", "children") and body.get("name"):  # a top-level group, a subgroup
        return lambda: _first_id(client.get(path, what, search=body["name"], exact="true", max=-1), "name", body["name"])
    if collection == "flows" and path.endswith("/authentication/flows") and body.get("alias"):
        return lambda: _first_id(client.get(path, what), "alias", body["alias"])
    if path.endswith("/executions/flow") and body.get("alias"):  # a sub-flow: its alias is realm-unique
        executions = path.removesuffix("/flow")
        return lambda: next((e["id"] for e in client.get(executions, what) or []
                             if e.get("authenticationFlow") and e.get("displayName") == body["alias"]), None)
    if collection == "instances" and body.get("alias"):  # an identity provider, named by its alias
        return lambda: body["alias"] if client.get_optional(f"{path}/{seg(body['alias'])}", what) else None
    if collection == "mappers" and body.get("name"):  # an identity provider's mappers
        return lambda: _first_id(client.get(path, what), "name", body["name"])
    if collection == "organizations" and body.get("alias"):
        return lambda: _first_id(client.get(path, what, first=0, max=-1), "alias", body["alias"])
    if collection == "components" and body.get("name") and body.get("providerType"):
        return lambda: _first_id(client.get(path, what, name=body["name"], type=body["providerType"],
                                            parent=body.get("parentId") or ""), "name", body["name"])
    return None


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now, at most MAX_RETRY_AFTER;
    None when absent or unreadable (then the usual backoff applies)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(tz=timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _honouring_retry_after(backoff):
    """tenacity wait: the backoff, or the server's Retry-After when that is longer."""
    def wait(retry_state) -> float:
        asked = getattr(retry_state.outcome.exception(), "retry_after", None) if retry_state.outcome else None
        return max(backoff(retry_state), asked or 0.0)
    return wait


def _first_id(found: list[dict] | None, field: str, value: str) -> str | None:
    return next((rep["id"] for rep in found or [] if rep.get(field) == value), None)


def _timed_out(exc: KeycloakConnectionError) -> bool:
    return isinstance(exc.__cause__, requests.Timeout)


def _transport_problem(exc: KeycloakConnectionError) -> str:
    """What went wrong on the wire, in words (python-keycloak wraps the requests error)."""
    cause = repr(exc.__cause__)
    if "ConnectionRefused" in cause or "NewConnectionError" in cause:
        return "refused the connection (is it running?)"
    if "RemoteDisconnected" in cause or "ConnectionReset" in cause or "aborted" in cause.lower():
        return "closed the connection without an answer"
    return f"could not be reached ({type(exc.__cause__).__name__})"


def _refused_login(exc: KeycloakError) -> bool:
    """Bad credentials: Keycloak answers 401, or 400 `invalid_grant`/`unauthorized_client`."""
    body = exc.response_body or b""
    return exc.response_code == 401 or b"invalid_grant" in body or b"unauthorized_client" in body or b"invalid_client" in body


def _reason(resp) -> str:
    """Keycloak's own short error text, if it gave one (never a request body)."""
    try:
        doc = resp.json()
    except ValueError:
        return ""
    if isinstance(doc, dict):
        msg = doc.get("errorMessage") or doc.get("error_description") or doc.get("error")
        if msg:
            return f" ({str(msg)[:200]})"
    return ""
