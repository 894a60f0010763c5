"""Errors a user can act on.

Every failure kcprov expects ends as a KcprovError: the CLI prints its message
and hint on one or two lines and exits 1, never with a traceback. Messages must
never contain a secret value (client secret, password, token).
"""

from __future__ import annotations


class KcprovError(Exception):
    """A failure with a message for the user and, ideally, a hint to fix it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class DevServerError(KcprovError):
    """The local dev Keycloak could not be prepared, started or stopped."""


class ConnectionError_(KcprovError):
    """Keycloak could not be reached or refused our credentials."""


class KeycloakApiError(KcprovError):
    """The Keycloak Admin API answered an error for one resource."""

    def __init__(self, message: str, hint: str | None = None, status: int | None = None):
        super().__init__(message, hint)
        self.status = status
