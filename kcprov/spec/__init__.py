"""Realm files: the format (models), loading (Jinja2 + YAML + validation), and problems.

    spec = load_realm(Path("realms/mcp-dev.yaml"), vars={"base_url": "http://localhost:3000"})
"""

from kcprov.spec.loader import load_realm, load_realms, parse_var_options
from kcprov.spec.models import RealmSpec
from kcprov.spec.problems import Problem, SpecError
from kcprov.spec.schema import realm_schema

__all__ = ["Problem", "RealmSpec", "SpecError", "load_realm", "load_realms", "parse_var_options", "realm_schema"]
