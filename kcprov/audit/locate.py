"""The source map of one loaded realm file: YAML path -> the line and column a reviewer fixes.

A realm rule runs on the realm after `mcp_servers:` expansion, but its finding
must point at the file as written. `RealmView.from_file` turns the rule's
`where` (an object of the expanded realm) into a YAML path of the original
document; this map turns that path into a position the way the loader's
errors do: at the path's key, or at its nearest parent the file writes (a
default inside `settings:` is shown at `settings:`), in the lines of the file
before templating. It also keeps the parsed document, whose top-level `x-`
keys (`x-audit-waive`) the realm model drops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kcprov.spec.problems import Problem
from kcprov.spec.yamldoc import Path as YamlPath


class RealmSource:
    """One realm file as loaded: `source(path)` is the 1-based (line, column) of `path`'s key.

    `locator` is the loader's (`kcprov.spec.loader.load_realms_located`).
    """

    def __init__(self, locator: Any):
        self.locator = locator
        self.file: str = locator.file
        self.data: Mapping[str, Any] = locator.document.data

    def __call__(self, path: YamlPath) -> tuple[int, int]:
        problem = self.problem(path, "")
        return problem.line, problem.column

    def problem(self, path: YamlPath, message: str, hint: str | None = None) -> Problem:
        """A loader-quality file:line problem at `path`."""
        return self.locator(tuple(path), message, hint)
