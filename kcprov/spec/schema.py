"""The realm file format as JSON Schema, for editors (yaml-language-server) and CI."""

from __future__ import annotations

import json
from typing import Any

from kcprov.spec.models import RealmSpec

SCHEMA_ID = "urn:kcprov:realm-file:v1"


def realm_schema() -> dict[str, Any]:
    """JSON Schema (Draft 2020-12) of a rendered realm file."""
    schema = RealmSpec.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "kcprov realm file",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_json() -> str:
    """The schema as indented JSON text, as `kcprov schema` prints it."""
    return json.dumps(realm_schema(), indent=2)
