"""The realm's SMTP server (RealmRepresentation.smtpServer); the password is a secret.

TODO(issue 12): desired / live / create / update / delete / export.
"""

from __future__ import annotations

from kcprov.resources.base import Attrs, Kind


class SmtpKind(Kind):
    name = "smtp"
    label = "SMTP server"
    stage = 1

    def desired(self, spec) -> dict[str, Attrs]:
        return {}

    def live(self, raw) -> dict[str, Attrs]:
        return {}
