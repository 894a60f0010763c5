"""Realm files: the format (models), loading (Jinja2 + YAML + validation), and problems.

    spec = load_realm(Path("realms/mcp-dev.yaml"), vars={"base_url": "http://localhost:3000"})

The names below are imported on first use (PEP 562): building the models
takes most of a `kcprov validate`, and a module that needs only a small part
of the package (`kcprov.mcp_clients` for `--help`, `kcprov.spec.quiet`)
should not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kcprov.spec.loader import load_realm, load_realms, parse_var_options
    from kcprov.spec.models import RealmSpec
    from kcprov.spec.problems import Problem, SpecError
    from kcprov.spec.schema import realm_schema

_HOMES = {
    "load_realm": "loader", "load_realms": "loader", "parse_var_options": "loader",
    "RealmSpec": "models", "Problem": "problems", "SpecError": "problems", "realm_schema": "schema",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'kcprov.spec' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kcprov.spec.{home}"), name)
    globals()[name] = value
    return value
