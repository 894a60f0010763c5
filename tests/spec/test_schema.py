"""`kcprov schema` output is a Draft 2020-12 schema that accepts every real realm file."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from corpus import GOOD

from kcprov.spec.commands import schema_command
from kcprov.spec.schema import realm_schema
from kcprov.spec.template import render

ROOT = Path(__file__).parents[2]
REAL_FILES = sorted(ROOT.glob("realms/*.yaml")) + sorted(ROOT.glob("examples/**/*.yaml")) + GOOD


@pytest.fixture(scope="module")
def validator():
    schema = realm_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_command_prints_the_schema(capsys):
    schema_command()
    printed = json.loads(capsys.readouterr().out)
    assert printed == realm_schema()
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert printed["$id"] and printed["title"]


def test_there_are_real_files():
    assert any(p.parent.name == "realms" for p in REAL_FILES)


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_real_files_validate_against_the_schema(path: Path, validator):
    data = yaml.safe_load(render(path.read_text(encoding="utf-8"), {}).text)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors


@pytest.mark.parametrize(
    "data",
    [
        {"realm": "r", "settings": {"access_token_lifespan": "5 minutes"}},
        {"realm": "r", "clients": [{"clint_id": "a"}]},
        {"realm": "r", "clients": [{"client_id": "a", "pkce": "s256"}]},
        {"display_name": "no realm"},
    ],
)
def test_schema_rejects_what_the_loader_rejects(data, validator):
    assert list(validator.iter_errors(data))


def test_durations_accept_int_or_string(validator):
    for value in (300, "300", "5m", "1h"):
        assert not list(validator.iter_errors({"realm": "r", "settings": {"access_token_lifespan": value}}))
