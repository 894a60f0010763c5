"""The `kcprov` command line: thin wiring from typer options to the layers.

Every expected failure is a KcprovError, printed as one clear message (plus a
hint) on stderr with exit code 1; a traceback is a bug.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from kcprov.dev.cli import app as dev_app
from kcprov.errors import KcprovError

app = typer.Typer(
    name="kcprov",
    help="Declarative Keycloak provisioning for MCP servers: validate, plan, apply.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(dev_app, name="dev")

err_console = Console(stderr=True)


def main() -> None:
    """Entry point: run the app, turning KcprovError into one line and exit 1."""
    try:
        app(standalone_mode=False)
    except KcprovError as exc:
        err_console.print(f"[bold red]Error:[/] {exc.message}", highlight=False, markup=True)
        if exc.hint:
            err_console.print(f"  [dim]hint:[/] {exc.hint}", highlight=False)
        sys.exit(1)
    except typer.Abort:
        err_console.print("Aborted.")
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code if exc.exit_code else 1)
        raise
