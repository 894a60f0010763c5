"""`kcprov validate` and `kcprov schema`, as plain functions the CLI wires to options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from kcprov.spec.models import RealmSpec
from kcprov.spec.problems import SpecError
from kcprov.spec.schema import schema_json
from kcprov.terminal import shown


def validate_command(files: list[Path], load: Callable[[list[Path]], list[RealmSpec]]) -> int:
    """Check realm files offline with `load` (the loader with the command's options); print every
    problem, or one line per valid realm. Returns the exit code."""
    out, err = Console(highlight=False, emoji=False), Console(stderr=True, highlight=False, emoji=False)
    try:
        specs = load(files)
    except SpecError as exc:
        for problem in exc.problems:
            err.print(f"[bold]{shown(problem.file)}:{problem.line}:{problem.column}:[/] [red]error:[/] {shown(problem.message)}", markup=True, soft_wrap=True)
            if problem.hint:
                err.print(f"  [dim]hint:[/] {shown(problem.hint)}", markup=True, soft_wrap=True)
        count = len(exc.problems)
        err.print(f"{count} problem{'s' * (count != 1)} found.")
        return 1
    for path, spec in zip(files, specs):
        out.print(f"{shown(path)}: ok (realm {shown(spec.realm)})", soft_wrap=True)
    return 0


def schema_command() -> None:
    """Print the realm file JSON Schema on stdout."""
    print(schema_json())
