"""The `kcprov` command line: thin wiring from typer options to the layers.

Every expected failure is a KcprovError, printed as one clear message (plus a
hint) on stderr with exit code 1; a traceback is a bug. Exit codes of `plan
--detailed-exitcode` follow Terraform: 0 in sync, 2 changes pending, 1 error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

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

out = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False)

# -- shared options ---------------------------------------------------------------------
Files = Annotated[list[Path], typer.Argument(help="Realm files (YAML, Jinja2-templated).", show_default=False)]
Vars = Annotated[Optional[list[str]], typer.Option("--var", help="Template variable k=v (repeatable).")]
VarFiles = Annotated[Optional[list[Path]], typer.Option("--var-file", help="YAML file of template variables (repeatable).")]
StrictSecrets = Annotated[bool, typer.Option("--strict-secrets", help="Refuse secrets written inline instead of from {{ env.X }}.")]
Url = Annotated[Optional[str], typer.Option("--url", help="Keycloak base URL [env KCPROV_URL; default: the dev server].")]
User = Annotated[Optional[str], typer.Option("--user", help="Admin user [env KCPROV_USER].")]
Password = Annotated[Optional[str], typer.Option("--password", help="Admin password [env KCPROV_PASSWORD]; prefer the env var.")]
ClientId = Annotated[Optional[str], typer.Option("--client-id", help="Service-account client [env KCPROV_CLIENT_ID].")]
ClientSecret = Annotated[Optional[str], typer.Option("--client-secret", help="Its secret [env KCPROV_CLIENT_SECRET].")]
AuthRealm = Annotated[Optional[str], typer.Option("--auth-realm", help="Realm to log in to [env KCPROV_AUTH_REALM; default master].")]
CaCert = Annotated[Optional[str], typer.Option("--ca-cert", help="CA bundle to verify Keycloak's TLS certificate.")]
Insecure = Annotated[bool, typer.Option("--insecure", help="Do not verify TLS certificates (never in production).")]
Prune = Annotated[bool, typer.Option("--prune", help="Also delete objects this file does not manage (shown first).")]


def _connect(url, user, password, client_id, client_secret, auth_realm, ca_cert, insecure):
    from kcprov.connection import resolve_connection
    from kcprov.keycloak import KeycloakClient

    settings = resolve_connection(url, user, password, client_id, client_secret, auth_realm, ca_cert, insecure)
    return KeycloakClient(settings)


def _load(files, var, var_file, strict_secrets=False):
    from kcprov.spec import load_realms, parse_var_options

    return load_realms(files, vars=parse_var_options(var or []), var_files=var_file or [], strict_secrets=strict_secrets)


# -- commands ---------------------------------------------------------------------------
@app.command()
def validate(files: Files, var: Vars = None, var_file: VarFiles = None, strict_secrets: StrictSecrets = False) -> None:
    """Check realm files offline: schema, references, duplicates (file:line errors)."""
    from kcprov.spec.commands import validate_command

    raise typer.Exit(validate_command(files, var or [], var_file or [], strict_secrets))


@app.command()
def schema() -> None:
    """Print the JSON Schema of realm files (for editors: yaml-language-server)."""
    from kcprov.spec.commands import schema_command

    schema_command()


@app.command()
def plan(
    files: Files,
    var: Vars = None,
    var_file: VarFiles = None,
    strict_secrets: StrictSecrets = False,
    prune: Prune = False,
    detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode", help="Exit 0 in sync, 2 changes pending, 1 error.")] = False,
    output: Annotated[Optional[Path], typer.Option("-o", "--out", help="Save the plan (no secrets) for `kcprov apply PLAN.json`.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    url: Url = None, user: User = None, password: Password = None, client_id: ClientId = None,
    client_secret: ClientSecret = None, auth_realm: AuthRealm = None, ca_cert: CaCert = None, insecure: Insecure = False,
) -> None:
    """Show what `apply` would change in Keycloak (reads the live realms, changes nothing)."""
    from kcprov.plan.render import render_json, render_text
    from kcprov.workflow import plan_realm, save_plans

    specs = _load(files, var, var_file, strict_secrets)
    client = _connect(url, user, password, client_id, client_secret, auth_realm, ca_cert, insecure)
    runs = [plan_realm(client, spec, str(path), prune) for path, spec in zip(files, specs)]
    plans = [r.plan for r in runs]
    if json_output:
        out.print(render_json(plans, client.settings.url), markup=False, soft_wrap=True)
    else:
        render_text(plans, out, client.settings.url)
        for p in plans:
            try:
                p.raise_if_unsafe()
            except KcprovError as exc:
                out.print(f"[yellow]warning:[/] {exc.message} `kcprov apply` will refuse it without --force.")
    if output:
        save_plans(output, client.settings.url, runs, prune)
        err_console.print(f"Saved plan to {output}. Apply it with: kcprov apply {output}")
    if detailed_exitcode and any(not p.empty for p in plans):
        raise typer.Exit(2)


@app.command()
def apply(
    files: Annotated[list[Path], typer.Argument(help="Realm files, or one saved plan (plan.json).", show_default=False)],
    var: Vars = None,
    var_file: VarFiles = None,
    strict_secrets: StrictSecrets = False,
    prune: Prune = False,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Apply without asking (needed when not on a terminal).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Apply even if the plan deletes more than the safety threshold.")] = False,
    no_env: Annotated[bool, typer.Option("--no-env", help="Do not write the MCP servers' env files.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, max=32, help="Concurrent requests within a stage.")] = 8,
    url: Url = None, user: User = None, password: Password = None, client_id: ClientId = None,
    client_secret: ClientSecret = None, auth_realm: AuthRealm = None, ca_cert: CaCert = None, insecure: Insecure = False,
) -> None:
    """Converge Keycloak to the realm files (shows the plan and asks first)."""
    from kcprov.workflow import check_saved, load_saved_plan, plan_realm

    saved = None
    if len(files) == 1 and files[0].suffix == ".json":
        saved = load_saved_plan(files[0])
        prune = saved.get("prune", False)
        files = [Path(p["source"]) for p in saved["plans"]]
    specs = _load(files, var, var_file, strict_secrets)
    client = _connect(url, user, password, client_id, client_secret, auth_realm, ca_cert, insecure)
    runs = [plan_realm(client, spec, str(path), prune) for path, spec in zip(files, specs)]
    if saved is not None:
        for saved_plan, run in zip(saved["plans"], runs):
            check_saved(saved_plan, run)
    from kcprov.run import run_apply

    run_apply(client, runs, out, err_console, saved is not None or auto_approve, force, workers)
    if not no_env:
        _write_env_files(client, runs)


@app.command()
def env(
    file: Annotated[Path, typer.Argument(help="Realm file with mcp_servers.", show_default=False)],
    server: Annotated[Optional[list[str]], typer.Option("--server", help="Only this MCP server (repeatable).")] = None,
    stdout: Annotated[bool, typer.Option("--stdout", help="Print instead of writing (shows the secret!).")] = False,
    var: Vars = None,
    var_file: VarFiles = None,
    url: Url = None, user: User = None, password: Password = None, client_id: ClientId = None,
    client_secret: ClientSecret = None, auth_realm: AuthRealm = None, ca_cert: CaCert = None, insecure: Insecure = False,
) -> None:
    """Write each MCP server's env file (mode 0600), secrets read back from Keycloak."""
    from kcprov.envgen import render_env, write_env_files

    [spec] = _load([file], var, var_file)
    if not spec.mcp_servers:
        raise KcprovError(f"{file}: realm '{spec.realm}' has no mcp_servers, so there is no env file to write.",
                          hint="add an mcp_servers: entry with env_file:")
    client = _connect(url, user, password, client_id, client_secret, auth_realm, ca_cert, insecure)
    if stdout:
        names = server or [s.name for s in spec.mcp_servers]
        for name in names:
            print(render_env(client, spec, name, source=str(file)), end="")
        return
    written = write_env_files(client, spec, only=server, source=str(file))
    if not written:
        raise KcprovError(f"{file}: no MCP server{' named ' + ', '.join(server) if server else ''} has an env_file.",
                          hint="set env_file: on the mcp_servers entry, or use --stdout")
    _report_env(written)


def _report_env(written) -> None:
    for path, changed in written:
        out.print(f"{'Wrote' if changed else 'Unchanged'} {path} (mode 0600)")


def _write_env_files(client, runs) -> None:
    """Write the env file of every MCP server that names one."""
    from kcprov.envgen import write_env_files

    for run in runs:
        _report_env(write_env_files(client, run.spec, source=run.source))


def main() -> None:
    """Entry point: run the app, turning KcprovError into one line and exit 1."""
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except KcprovError as exc:
        from kcprov.spec import SpecError

        if not isinstance(exc, SpecError):  # realm file problems carry their own "file:line: error:"
            err_console.print("[bold red]Error:[/] ", end="")
        err_console.print(exc.message, markup=False)
        if exc.hint:
            err_console.print("  [dim]hint:[/] ", end="")
            err_console.print(exc.hint, markup=False)
        sys.exit(1)
    except typer.Abort:
        err_console.print("Aborted.")
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code if exc.exit_code else 1)
        raise


if __name__ == "__main__":
    main()
