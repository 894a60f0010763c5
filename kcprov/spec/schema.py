"""The realm file format as JSON Schema, for editors (yaml-language-server) and CI."""

from __future__ import annotations

import json
from typing import Any

from kcprov.spec.models import RealmSpec

# SchemaStore's form: the schema's address there is its `$id`, and its catalog entry
# says which file names editors give it without a modeline (realm files have no fixed
# name, so a suffix of its own: realms/prod.kcprov.yaml).
SCHEMA_ID = "https://json.schemastore.org/kcprov.json"
FILE_MATCH = ["*.kcprov.yaml", "*.kcprov.yml"]


def realm_schema() -> dict[str, Any]:
    """JSON Schema (Draft 2020-12) of a rendered realm file."""
    schema = RealmSpec.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "kcprov realm file",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def catalog_entry() -> dict[str, Any]:
    """kcprov's entry in SchemaStore's catalog (src/api/json/catalog.json)."""
    return {
        "name": "kcprov realm file",
        "description": "Declarative Keycloak realm file of kcprov (validate, plan, apply)",
        "fileMatch": FILE_MATCH,
        "url": SCHEMA_ID,
    }


def schema_json() -> str:
    """The schema as indented JSON text, as `kcprov schema` prints it."""
    return json.dumps(realm_schema(), indent=2)
