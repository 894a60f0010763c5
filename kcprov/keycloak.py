"""The only module that talks HTTP to Keycloak.

A thin layer over python-keycloak's `KeycloakOpenIDConnection` (which owns the
admin token and its refresh): one method = one Admin API request. It counts
requests (benchmarks report requests per plan), retries transient failures
with backoff, and turns every HTTP failure into a one-line KeycloakApiError
naming the resource and what to do. It holds no diff logic.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import quote

from keycloak import KeycloakOpenIDConnection
from keycloak.exceptions import KeycloakConnectionError, KeycloakError
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from kcprov.connection import ConnectionSettings
from kcprov.errors import ConnectionError_, KeycloakApiError

TRANSIENT_STATUS = {429, 502, 503, 504}

HINTS = {
    401: "the admin session was refused: check the credentials (--user/--password or --client-id/--client-secret)",
    403: "the admin account lacks a permission for this: use an admin of the master realm or grant realm-management roles",
    404: "it no longer exists in Keycloak: run `kcprov plan` again to see the current state",
    409: "it already exists in Keycloak (perhaps made by hand or by a concurrent run): run `kcprov plan` again",
}


class _Transient(Exception):
    """A failure worth retrying: connection trouble or a 429/5xx gateway answer."""


def seg(value: str) -> str:
    """Quote one path segment (names such as `mcp:tools` or role names with slashes)."""
    return quote(value, safe="")


class KeycloakClient:
    """An authenticated Admin API session that counts and retries its requests."""

    def __init__(self, settings: ConnectionSettings, timeout: int = 30, attempts: int = 4):
        self.settings = settings
        self.attempts = attempts
        self.requests = 0
        self._lock = threading.Lock()
        service = bool(settings.client_id and settings.client_secret)
        self._conn = KeycloakOpenIDConnection(
            server_url=settings.url,
            username=None if service else settings.user,
            password=None if service else settings.password,
            realm_name=settings.auth_realm,
            user_realm_name=settings.auth_realm,
            client_id=settings.client_id if service else "admin-cli",
            client_secret_key=settings.client_secret if service else None,
            verify=settings.verify,
            timeout=timeout,
            pool_maxsize=16,
        )
        self._login()

    def _login(self) -> None:
        s = self.settings
        try:
            self._count()
            self._conn.get_token()
        except KeycloakConnectionError:
            raise ConnectionError_(
                f"Cannot reach Keycloak at {s.url} (URL from {s.source}).",
                hint="is it running? `kcprov dev status` for the dev server; check --url and TLS options (--ca-cert, --insecure)",
            ) from None
        except KeycloakError as exc:
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

    def _send(self, method: str, path: str, what: str, body: Any = None, params: dict | None = None):
        @retry(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.3, max=4),
            reraise=True,
        )
        def once():
            self._count()
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
                raise _Transient(f"cannot reach Keycloak at {self.settings.url}") from exc
            if resp.status_code in TRANSIENT_STATUS:
                raise _Transient(f"HTTP {resp.status_code}")
            return resp

        try:
            resp = once()
        except _Transient as exc:
            raise KeycloakApiError(
                f"{what}: Keycloak did not answer after {self.attempts} tries ({exc}).",
                hint="check that Keycloak is up (`kcprov dev status`) and retry; nothing further was changed",
            ) from None
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

    def post(self, path: str, body: Any, what: str, **params: Any) -> str | None:
        """POST; returns the id from the Location header of a created object, if any."""
        resp = self._send("POST", path, what, body=body, params=params)
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

    def users(self, realm: str, page: int = 500) -> list[dict]:
        """All users (briefRepresentation=false), paginated."""
        out: list[dict] = []
        first = 0
        while True:
            batch = self.get(
                f"/admin/realms/{seg(realm)}/users",
                f"users of realm '{realm}'",
                first=first,
                max=page,
                briefRepresentation="false",
            )
            out.extend(batch)
            if len(batch) < page:
                return out
            first += page

    def user_role_mappings(self, realm: str, user_id: str, username: str) -> dict:
        return self.get(f"/admin/realms/{seg(realm)}/users/{user_id}/role-mappings", f"roles of user '{username}'")

    def client_secret(self, realm: str, client_uuid: str, client_id: str) -> str | None:
        doc = self.get(f"/admin/realms/{seg(realm)}/clients/{client_uuid}/client-secret", f"secret of client '{client_id}'")
        return (doc or {}).get("value")

    def server_info(self) -> dict:
        return self.get("/admin/serverinfo", "server info")


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
