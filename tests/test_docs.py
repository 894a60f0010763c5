"""Docs that cannot drift: the key reference is the generator's output and covers every
key of the JSON Schema; the site builds with `mkdocs build --strict` (no warning: no broken
link, no page left out of the nav); the schema is offered in SchemaStore's form."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kcprov.spec.reference import main, reference_markdown
from kcprov.spec.schema import catalog_entry, realm_schema

ROOT = Path(__file__).parents[1]
REFERENCE = ROOT / "docs" / "reference.md"


def _sections(markdown: str) -> dict[str, list[str]]:
    """`## Name` -> the keys of its table rows."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None and (row := re.match(r"\| `([^`]+)`", line)):
            current.append(row[1])
    return sections


def test_checked_in_reference_is_the_generated_one():
    assert REFERENCE.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/reference.md is out of date: run python -m kcprov.spec.reference"
    )


def test_check_mode_tells_an_outdated_page(tmp_path, capsys):
    page = tmp_path / "reference.md"
    assert main([str(page)]) == 0
    assert main(["--check", str(page)]) == 0
    page.write_text(page.read_text(encoding="utf-8").replace("| `realm`", "| `realm_name`"), encoding="utf-8")
    assert main(["--check", str(page)]) == 1
    assert "out of date" in capsys.readouterr().err


def test_every_schema_key_is_in_the_reference_with_a_description():
    schema = realm_schema()
    sections = _sections(REFERENCE.read_text(encoding="utf-8"))
    models = {"Realm file": schema, **schema["$defs"]}
    for name, model in models.items():
        assert name in sections, f"no section for {name}"
        for key, prop in model.get("properties", {}).items():
            assert key in sections[name], f"{name}.{key} missing from docs/reference.md"
            assert prop.get("description", "").strip(), f"{name}.{key} has no description="
        assert model.get("description", "").strip(), f"{name} has no docstring"


def test_reference_links_resolve_to_sections():
    markdown = REFERENCE.read_text(encoding="utf-8")
    anchors = {name.lower().replace(" ", "-") for name in _sections(markdown)}
    for anchor in re.findall(r"\]\(#([^)]+)\)", markdown):
        assert anchor in anchors, anchor


def test_schema_is_in_schemastore_form():
    schema, entry = realm_schema(), catalog_entry()
    assert schema["$id"] == entry["url"]
    assert schema["$id"].startswith("https://json.schemastore.org/")
    assert schema["title"] and entry["name"] and entry["description"]
    assert fnmatch.fnmatch("prod.kcprov.yaml", entry["fileMatch"][0])
    # the reference page documents the entry, generated from the same constants
    assert all(f"`{pattern}`" in REFERENCE.read_text(encoding="utf-8") for pattern in entry["fileMatch"])


def test_readme_links_to_the_reference():
    assert "docs/reference.md" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs-material not installed (pip install -e '.[docs]')",
)
def test_site_builds_strict_without_warnings(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    site = tmp_path / "site"
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "kcprov validate" in home  # the README is the home page
    assert 'href="reference/"' in home  # its docs/ links point into the site
    assert (site / "realms" / "mcp-dev.yaml").is_file()  # repository files the pages link to are served
    assert (site / "SECURITY" / "index.html").is_file()


DOC_FILES = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").rglob("*.md")),
             *sorted((ROOT / "realms").glob("*.yaml")), *sorted((ROOT / "examples").rglob("*.md"))]


def test_readme_mcp_block_is_the_realm_files():
    """The README shows "the whole MCP setup" of realms/mcp-dev.yaml: it must be that block."""
    import yaml

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("The whole MCP setup is one block of the realm file:", 1)[1]
    shown = yaml.safe_load(block.split("```yaml", 1)[1].split("```", 1)[0])
    realm = yaml.safe_load((ROOT / "realms" / "mcp-dev.yaml").read_text(encoding="utf-8"))
    assert shown["mcp_servers"] == realm["mcp_servers"]


def test_docs_pass_no_flag_that_is_the_default():
    from kcprov.dev.cli import MCP_FEATURES

    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for flag in (f"--features {MCP_FEATURES}", f"--features={MCP_FEATURES}"):
            assert f"kcprov dev up {flag}" not in text and f"dev up {flag}" not in text, (
                f"{path.relative_to(ROOT)}: {flag} is kcprov dev up's default"
            )


def test_docs_require_no_variable_the_realm_files_default():
    """`{{ env.X | default(...) }}` in a realm file: docs must not show `X=... kcprov` as needed."""
    defaulted = {m for f in (ROOT / "realms").glob("*.yaml")
                 for m in re.findall(r"env\.(\w+)\s*\|\s*default\(", f.read_text(encoding="utf-8"))}
    assert "ALICE_PASSWORD" in defaulted
    for path in DOC_FILES:
        for name in defaulted:
            assert not re.search(rf"\b{name}=\.\.\. kcprov\b", path.read_text(encoding="utf-8")), (
                f"{path.relative_to(ROOT)} shows {name} as required; the realm file defaults it"
            )
