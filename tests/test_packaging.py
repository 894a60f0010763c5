"""`python -m build` gives a wheel and an sdist that a new user can install: built here
(the wheel from the sdist, as `build` does), installed into a fresh venv with its
dependencies from the package index, and run from there, outside the checkout."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from network import reachable

ROOT = Path(__file__).parents[1]
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="needs `build` (pip install -e '.[dev]')"),
    pytest.mark.skipif(not reachable(INDEX), reason=f"package index {INDEX} not reachable: the venv needs the dependencies"),
]


def run(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=ROOT)
    return out


@pytest.fixture(scope="module")
def wheel(dist) -> Path:
    [path] = dist.glob("kcprov-*-py3-none-any.whl")
    return path


@pytest.fixture(scope="module")
def venv_bin(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=ROOT)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    run(bin_dir / "python", "-m", "pip", "install", "-q", wheel, cwd=ROOT)
    return bin_dir


def test_wheel_holds_the_templates_and_py_typed_and_no_env_file(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "kcprov/py.typed" in names
    assert "kcprov/templates/mcp-server.env.j2" in names
    assert not [n for n in names if n.endswith(".env") or "/.env" in n]


def test_metadata_has_classifiers_urls_and_the_server_extra(wheel):
    [info] = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(zipfile.ZipFile(wheel).read(info).decode())
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    assert {url.split(",")[0] for url in metadata.get_all("Project-URL")} >= {"Homepage", "Documentation", "Source", "Issues"}
    assert metadata["License-Expression"] == "Apache-2.0"
    assert {"server", "docs", "dev"} <= set(metadata.get_all("Provides-Extra"))
    server = [r for r in metadata.get_all("Requires-Dist") if 'extra == "server"' in r]
    assert any(r.startswith("mcp") for r in server) and any(r.startswith("uvicorn") for r in server)


def test_sdist_holds_what_the_wheel_is_built_from_and_no_env_file(dist):
    [sdist] = dist.glob("kcprov-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [n.split("/", 1)[1] for n in archive.getnames() if "/" in n]
    assert {"pyproject.toml", "README.md", "kcprov/py.typed", "kcprov/templates/mcp-server.env.j2"} <= set(names)
    assert not [n for n in names if n.endswith(".env") or "/.env" in n]


def test_installed_wheel_runs_outside_the_checkout(venv_bin, tmp_path):
    kcprov = venv_bin / "kcprov"
    assert run(kcprov, "--version", cwd=tmp_path).stdout.startswith("kcprov ")
    assert run(venv_bin / "python", "-m", "kcprov", "--version", cwd=tmp_path).stdout.startswith("kcprov ")
    shutil.copy(ROOT / "realms" / "mcp-dev.yaml", tmp_path / "mcp-dev.yaml")
    assert "ok (realm mcp-dev)" in run(kcprov, "validate", "mcp-dev.yaml", cwd=tmp_path).stdout
    assert '"$id"' in run(kcprov, "schema", cwd=tmp_path).stdout
    run(kcprov, "init", "--name", "calculator", "--url", "http://localhost:3000/mcp", "--client", "vscode",
        "-o", "calculator.yaml", cwd=tmp_path)
    assert "ok (realm calculator)" in run(kcprov, "validate", "calculator.yaml", cwd=tmp_path).stdout
