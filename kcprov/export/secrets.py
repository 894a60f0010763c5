"""The `--secrets-env` file: the secrets an exported realm file references, for a migration.

One `NAME=value` line per `{{ env.NAME }}` of the export, quoted by
`kcprov.envgen.dotenv_value` (literal for python-dotenv and for a shell that
sources the file). A value no quoting keeps is refused by name, never shown.
"""

from __future__ import annotations

from kcprov.envgen import dotenv_value
from kcprov.errors import KcprovError


def secrets_env_text(realm: str, export) -> str:
    lines = [f"# Secrets referenced by the kcprov export of realm '{realm}'. Keep this file private; "
             "load it before `kcprov plan`/`apply` of the exported file (set -a; . ./FILE)."]
    for name, value in sorted(export.secrets.items()):
        kind, key = export.secret_names[name]
        try:
            lines.append(f"{name}={dotenv_value(value)}")
        except ValueError as exc:
            raise KcprovError(f"the secret of {kind} '{key}' cannot be written to an env file: it {exc}.",
                              hint=f"set a new secret for {kind} '{key}' in Keycloak, or set {name} by hand") from None
    return "\n".join(lines) + "\n"
