"""What is wrong with a realm file, where, and how to fix it.

A problem names a file position so editors and terminals can jump to it; a
SpecError carries every problem found, so one run reports them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kcprov.errors import KcprovError


@dataclass(frozen=True)
class Problem:
    """One error at file:line:column (1-based). Messages never contain secret values."""

    file: str
    line: int
    column: int
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: error: {self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class SpecError(KcprovError):
    """One or more realm files are invalid; `.problems` lists every problem, sorted."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column))
        count = len(self.problems)
        files = len({p.file for p in self.problems})
        summary = f"{count} problem{'s' * (count != 1)} in {files} file{'s' * (files != 1)}"
        super().__init__("\n".join(map(str, self.problems)) + f"\n{summary}")


def display_path(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
