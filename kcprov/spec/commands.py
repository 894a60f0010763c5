"""`kcprov validate` and `kcprov schema`, as plain functions the CLI wires to options."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from kcprov.spec.loader import load_realms, parse_var_options
from kcprov.spec.problems import SpecError
from kcprov.spec.schema import schema_json


def validate_command(files: list[Path], vars: list[str], var_files: list[Path], strict_secrets: bool) -> int:
    """Check realm files offline; print every problem, or one line per valid realm. Returns the exit code."""
    out, err = Console(highlight=False), Console(stderr=True, highlight=False)
    try:
        specs = load_realms(files, parse_var_options(vars), var_files, strict_secrets)
    except SpecError as exc:
        for problem in exc.problems:
            err.print(f"[bold]{escape(problem.file)}:{problem.line}:{problem.column}:[/] [red]error:[/] {escape(problem.message)}", markup=True, soft_wrap=True)
            if problem.hint:
                err.print(f"  [dim]hint:[/] {escape(problem.hint)}", markup=True, soft_wrap=True)
        count = len(exc.problems)
        err.print(f"{count} problem{'s' * (count != 1)} found.")
        return 1
    for path, spec in zip(files, specs):
        out.print(f"{escape(str(path))}: ok (realm {escape(spec.realm)})", soft_wrap=True)
    return 0


def schema_command() -> None:
    """Print the realm file JSON Schema on stdout."""
    print(schema_json())
