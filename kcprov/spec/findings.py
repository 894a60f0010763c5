"""A problem found across a realm file, and the two checks every kind needs: unique names, known references.

Each resource kind's spec module checks its own references with these (a group
naming an unknown role, a binding naming an undefined flow), so `kcprov.spec.checks`
only gathers them; the loader turns a Finding's path into file:line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kcprov.spec.yamldoc import Path


@dataclass(frozen=True)
class Finding:
    """A problem at a path of the file; `first` is where a duplicated name was first given."""

    path: Path
    message: str
    hint: str | None = None
    first: Path | None = None


def unique(
    named: Iterable[tuple[Path, str]], what: str, *, owner: str = "", fold=lambda name: name
) -> Iterator[Finding]:
    """A finding for each name already given; `owner` (" of client 'x'") scopes the message."""
    first: dict[str, Path] = {}
    for path, name in named:
        if fold(name) in first:
            yield Finding(path, f"duplicate {what} '{name}'{owner}", f"each {what}{owner} must be unique", first[fold(name)])
        else:
            first[fold(name)] = path


def unknown(path: Path, what: str, name: str, known: Iterable[str], how_to_define: str, owner: str = "") -> Finding:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"did you mean '{close[0]}'? otherwise {how_to_define}" if close else how_to_define
    return Finding(path, f"unknown {what} '{name}'{owner}", hint)
