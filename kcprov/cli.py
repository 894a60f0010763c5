"""The `kcprov` command line: thin wiring from typer options to the layers.

Every expected failure is a KcprovError, printed as one clear message (plus a
hint) on stderr with exit code 1; a traceback is a bug. Usage errors (missing
or extra arguments, unknown options or commands, bad option values) are
typer's: a one-line message and the usage, exit 2. Exit codes of `plan
--detailed-exitcode` follow Terraform: 0 in sync, 2 changes pending, 1 error.
Ctrl-C exits 130.

Options shared by several commands are declared once, as option groups
(`kcprov.cli_options`): `RealmFileOptions` (templating and input limits) and
`KeycloakOptions` (where Keycloak is and how to log in; each also read from
its KCPROV_* variable, shown in --help).
"""

from __future__ import annotations

import atexit
import os
import platform
import sys
import threading
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.console import Console

from kcprov import KEYCLOAK_VERSION, __version__
from kcprov.cli_options import options
from kcprov.dev.cli import app as dev_app
from kcprov.errors import KcprovError
from kcprov.fileio import MAX_INPUT_BYTES
from kcprov.mcp_clients import PRESET_NAMES
from kcprov.terminal import QUIET, printable

app = typer.Typer(
    name="kcprov",
    help="Declarative Keycloak provisioning for MCP servers: validate, plan, apply.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dev_app, name="dev")

out = Console(highlight=False, soft_wrap=True, emoji=False)  # a name like :fire: is text, not an emoji
err_console = Console(stderr=True, highlight=False, emoji=False)


VERBOSE: ContextVar[bool] = ContextVar("VERBOSE", default=False)


def _print_version(value: bool) -> None:
    if value:
        print(f"kcprov {__version__} (Python {platform.python_version()}, dev Keycloak {KEYCLOAK_VERSION})")
        raise typer.Exit()


def _log_request(method: str, path: str, status: int, seconds: float) -> None:
    """`-v`: one stderr line per Admin API answer (the path has no token or secret; bodies are never shown)."""
    err_console.print(f"{method} /{printable(path)} {status} {seconds * 1000:.0f} ms", markup=False)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print kcprov's version and exit.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print only errors and the final summary.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log each Keycloak request to stderr "
                                                                  "(method, path, status, time; no tokens).")] = False,
) -> None:
    """Declarative Keycloak provisioning for MCP servers: validate, plan, apply."""
    QUIET.set(quiet)
    VERBOSE.set(verbose)


# -- option groups ------------------------------------------------------------------------
@dataclass(frozen=True)
class RealmFileOptions:
    """How realm files are read and rendered."""

    var: Annotated[Optional[list[str]], typer.Option("--var", help="Template variable NAME=VALUE (repeatable).")] = None
    var_file: Annotated[Optional[list[Path]], typer.Option("--var-file", help="YAML file of template variables (repeatable).")] = None
    strict_secrets: Annotated[bool, typer.Option("--strict-secrets", help="Refuse secrets written inline instead of from {{ env.NAME }}.")] = False
    max_input_size: Annotated[int, typer.Option("--max-input-size", min=1, metavar="BYTES",
                                                help="Largest realm, var or plan file read.")] = MAX_INPUT_BYTES

    def load(self, files: list[Path]):
        from kcprov.spec import load_realms, parse_var_options

        return load_realms(files, vars=parse_var_options(self.var or []), var_files=self.var_file or [],
                           strict_secrets=self.strict_secrets, max_input_size=self.max_input_size)


@dataclass(frozen=True)
class KeycloakOptions:
    """Where Keycloak is and how to log in (flags, else KCPROV_* variables, else the dev server)."""

    url: Annotated[Optional[str], typer.Option("--url", envvar="KCPROV_URL", show_envvar=True,
                                               help="Keycloak base URL (default: the dev server).")] = None
    user: Annotated[Optional[str], typer.Option("--user", envvar="KCPROV_USER", help="Admin user.")] = None
    password: Annotated[Optional[str], typer.Option("--password", envvar="KCPROV_PASSWORD",
                                                    help="Admin password; prefer the variable (command lines are visible to other users).")] = None
    client_id: Annotated[Optional[str], typer.Option("--client-id", envvar="KCPROV_CLIENT_ID",
                                                     help="Log in as this client's service account instead.")] = None
    client_secret: Annotated[Optional[str], typer.Option("--client-secret", envvar="KCPROV_CLIENT_SECRET",
                                                         help="Its secret; prefer the variable.")] = None
    auth_realm: Annotated[str, typer.Option("--auth-realm", envvar="KCPROV_AUTH_REALM", help="Realm to log in to.")] = "master"
    ca_cert: Annotated[Optional[str], typer.Option("--ca-cert", envvar="KCPROV_CA_CERT",
                                                   help="PEM CA bundle to verify Keycloak's TLS certificate.")] = None
    insecure: Annotated[bool, typer.Option("--insecure", help="Do not verify TLS certificates (never in production).")] = False
    allow_http: Annotated[bool, typer.Option("--allow-http", envvar="KCPROV_ALLOW_HTTP",
                                             help="Allow plain http:// to a host other than loopback.")] = False
    timeout: Annotated[float, typer.Option("--timeout", envvar="KCPROV_TIMEOUT", min=1, metavar="SECONDS",
                                           help="Give up on a request Keycloak has not answered in this time.")] = 30.0

    def connect(self):
        from kcprov.connection import resolve_connection
        from kcprov.keycloak import KeycloakClient

        settings = resolve_connection(self.url, self.user, self.password, self.client_id, self.client_secret,
                                      self.auth_realm, self.ca_cert, self.insecure, self.allow_http)
        return KeycloakClient(settings, timeout=self.timeout, on_request=_log_request if VERBOSE.get() else None)


# -- arguments and options of single commands --------------------------------------------
Files = Annotated[list[Path], typer.Argument(metavar="FILE", help="Realm files (YAML, Jinja2-templated), or directories of them.", show_default=False)]
Prune = Annotated[bool, typer.Option("--prune", help="Also delete objects this file does not manage (shown first).")]
AllowAdminRealm = Annotated[bool, typer.Option(
    "--allow-admin-realm-changes",
    help="Allow changes that could lock kcprov out: disabling the realm it logs in to, or its admin's roles.")]
Full = Annotated[bool, typer.Option("--full", help="List every field of every create (past 50 creates of a kind, "
                                                     "the plan lists them by name only).")]
LockTimeout = Annotated[float, typer.Option("--lock-timeout", min=0, metavar="SECONDS",
                                           help="Wait this long for another apply of the realm to finish (0: refuse at once).")]


def _warning_ids(ids: Optional[list[str]]) -> list[str]:
    from kcprov.spec.quiet import WARNINGS, id_hint

    for warning_id in ids or ():
        if warning_id not in WARNINGS:
            raise typer.BadParameter(f"unknown warning id '{warning_id}': {id_hint(warning_id)}")
    return ids


def _complete_warning_id(incomplete: str) -> list[tuple[str, str]]:
    """The ids that start with what was typed, each with what it is about (zsh and fish show it)."""
    from kcprov.spec.quiet import WARNINGS

    return [(warning_id, about) for warning_id, about in WARNINGS.items() if warning_id.startswith(incomplete)]


QuietWarning = Annotated[Optional[list[str]], typer.Option(
    "--quiet-warning", metavar="ID", callback=_warning_ids, autocompletion=_complete_warning_id,
    help="Do not show the plan warning with this id (the [id] after it; repeatable).")]
AllowOutside = Annotated[Optional[list[Path]], typer.Option(
    "--allow-outside", metavar="DIR",
    help="Allow env files under DIR although it is outside the current directory (repeatable).")]


# -- commands ---------------------------------------------------------------------------
@app.command()
@options(RealmFileOptions)
def validate(files: Files, realm_files: RealmFileOptions) -> None:
    """Check realm files offline: schema, references, duplicates (file:line errors)."""
    from kcprov.realms import realm_files as expand
    from kcprov.spec.commands import validate_command

    raise typer.Exit(validate_command(expand(files), realm_files.load))


@app.command()
def init(
    name: Annotated[str, typer.Option("--name", help="The MCP server's name (also the realm's, unless --realm).", show_default=False)],
    url: Annotated[str, typer.Option("--url", help="The URL MCP clients call, e.g. http://localhost:3000/mcp.", show_default=False)],
    client: Annotated[Optional[list[str]], typer.Option("--client", help="How clients get tokens (repeatable): "
                                                        f"{', '.join(PRESET_NAMES)} (docs/mcp-clients.md), or dcr (default).")] = None,
    validation: Annotated[str, typer.Option("--validation", metavar="jwt|introspection",
                                            help="How the server checks tokens.")] = "jwt",
    realm: Annotated[Optional[str], typer.Option("--realm", help="Realm name (default: --name).")] = None,
    output: Annotated[Optional[str], typer.Option("-o", "--out", metavar="FILE",
                                                  help="Where to write it (default realms/NAME.yaml; never over a file); - for stdout.")] = None,
) -> None:
    """Write a commented starter realm file for an MCP server, ready to validate, plan and apply."""
    from kcprov.init import CLIENT_CHOICES, init_command

    if validation not in ("jwt", "introspection"):
        raise typer.BadParameter(f"{validation!r} is not jwt or introspection", param_hint="--validation")
    unknown = [c for c in client or () if c not in CLIENT_CHOICES]
    if unknown:
        raise typer.BadParameter(f"{', '.join(unknown)}: choose from {', '.join(CLIENT_CHOICES)}", param_hint="--client")
    written = init_command(name, url, client or (), validation, realm, output)  # type: ignore[arg-type]
    if written:
        err_console.print(f"Wrote {printable(written)}. Next: kcprov validate {printable(written)}", markup=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of realm files (for editors: yaml-language-server)."""
    from kcprov.spec.commands import schema_command

    schema_command()


@app.command()
@options(RealmFileOptions, KeycloakOptions)
def plan(
    files: Files,
    realm_files: RealmFileOptions,
    keycloak: KeycloakOptions,
    prune: Prune = False,
    detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode", help="Exit 0 in sync, 2 changes pending, 1 error.")] = False,
    output: Annotated[Optional[str], typer.Option("-o", "--out", metavar="FILE",
                                                  help="Save the plan (no secrets) for `kcprov apply FILE`; - for stdout.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the plan as JSON (same as --format json).")] = False,
    output_format: Annotated[Literal["text", "markdown", "json"], typer.Option(
        "--format", help="text for a terminal, markdown for a pull-request comment, json for programs.")] = "text",
    adopt: Annotated[bool, typer.Option("--adopt", help="Also plan taking over the objects the files name that exist "
                                                        "but kcprov did not create (saved plans keep it).")] = False,
    allow_admin_realm_changes: AllowAdminRealm = False,
    allow_outside: AllowOutside = None,
    quiet_warning: QuietWarning = None,
    full: Full = False,
) -> None:
    """Show what `apply` would change in Keycloak (reads the live realms, changes nothing)."""
    from kcprov.envgen import check_env_targets
    from kcprov.fileio import resolve_output
    from kcprov.plan.markdown import render_markdown
    from kcprov.plan.render import render_json, render_text
    from kcprov.realms import plan_realms, realm_files as expand
    from kcprov.workflow import save_plans

    if json_output and output_format == "markdown":
        raise typer.BadParameter("--json is --format json; give one of them", param_hint="--json")
    if output and output != "-":
        resolve_output(output, origin="command-line", what="plan file")
    files = expand(files)
    specs = _silenced(realm_files.load(files), quiet_warning)
    for spec in specs:  # what apply would refuse, a plan refuses already: a pull request learns it at review
        check_env_targets(spec, allow_outside or ())
    client = keycloak.connect()
    runs = plan_realms(client, specs, files, prune, allow_admin_realm_changes, adopt)
    plans = [r.plan for r in runs]
    shown = err_console if output == "-" else out  # stdout carries the saved plan then
    if json_output or output_format == "json":
        print(render_json(plans, client.settings.url), file=shown.file)  # rich would turn :smile: in a name into an emoji
    elif output_format == "markdown":
        print(render_markdown(plans, client.settings.url), file=shown.file)
    else:
        render_text(plans, shown, client.settings.url, full=full)
        for p in plans:
            try:
                p.raise_if_unsafe()
            except KcprovError as exc:
                shown.print(f"[yellow]warning:[/] {exc.message} `kcprov apply` will refuse it without --force.")
    if output:
        save_plans(output, client.settings.url, runs, prune, adopt)
        if output != "-":
            err_console.print(f"Saved plan to {printable(output)}. Apply it with: kcprov apply {printable(output)}", markup=False)
    if detailed_exitcode and any(not p.empty for p in plans):
        raise typer.Exit(2)


@app.command()
@options(RealmFileOptions, KeycloakOptions)
def apply(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Realm files or directories of them, or one saved plan (plan.json).", show_default=False)],
    realm_files: RealmFileOptions,
    keycloak: KeycloakOptions,
    prune: Prune = False,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Apply without asking (needed when not on a terminal).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Apply even if the plan deletes more than the safety threshold.")] = False,
    no_env: Annotated[bool, typer.Option("--no-env", help="Do not write the MCP servers' env files.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, max=32, help="Concurrent requests within a stage.")] = 8,
    lock_timeout: LockTimeout = 0.0,
    allow_admin_realm_changes: AllowAdminRealm = False,
    allow_outside: AllowOutside = None,
    quiet_warning: QuietWarning = None,
    adopt: Annotated[bool, typer.Option("--adopt", help="Also take over the objects the files name that exist but "
                                                        "kcprov did not create (as `kcprov adopt` does).")] = False,
    full: Full = False,
) -> None:
    """Converge Keycloak to the realm files (shows the plan and asks first)."""
    from kcprov.envgen import check_env_targets
    from kcprov.realms import plan_realms, realm_files as expand
    from kcprov.run import realm_locks, run_apply
    from kcprov.workflow import check_saved, load_saved_plan

    saved = None
    if len(files) == 1 and files[0].suffix == ".json":
        saved = load_saved_plan(files[0])
        prune = saved.get("prune", False)
        adopt = adopt or saved.get("adopt", False)  # --adopt on a plan saved without it is refused by check_saved
        files = [Path(p["source"]) for p in saved["plans"]]
    else:
        files = expand(files)
    specs = _silenced(realm_files.load(files), quiet_warning)
    if not no_env:  # a bad env file target is refused before anything changes in Keycloak
        for spec in specs:
            check_env_targets(spec, allow_outside or ())
    client = keycloak.connect()
    with realm_locks(client, [spec.realm for spec in specs], lock_timeout) as locks:
        runs = plan_realms(client, specs, files, prune, allow_admin_realm_changes, adopt)
        if saved is not None:
            for saved_plan, run in zip(saved["plans"], runs):
                check_saved(saved_plan, run)
        run_apply(client, runs, out, err_console, saved is not None or auto_approve, force, workers, lock_timeout,
                  full, locks)
    if not no_env:
        for run in runs:
            _write_env_files(client, run.spec, run.source, None, allow_outside)


@app.command()
@options(RealmFileOptions, KeycloakOptions)
def adopt(
    files: Files,
    realm_files: RealmFileOptions,
    keycloak: KeycloakOptions,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Adopt without asking (needed when not on a terminal).")] = False,
    lock_timeout: LockTimeout = 0.0,
) -> None:
    """Take over what the files name that already exists, changing nothing but kcprov's ownership record."""
    from kcprov.plan.adopt import updates_of_adopted
    from kcprov.run import realm_locks, run_apply
    from kcprov.workflow import plan_realm

    specs = realm_files.load(files)
    client = keycloak.connect()
    with realm_locks(client, [spec.realm for spec in specs], lock_timeout) as locks:
        runs = [plan_realm(client, spec, str(path), adopt=True, changes=False) for path, spec in zip(files, specs)]
        run_apply(client, runs, out, err_console, auto_approve, force=False, workers=1, lock_timeout=lock_timeout,
                  locks=locks)
    for plan in (r.plan for r in runs):
        if not plan.empty:
            pending = updates_of_adopted(plan)
            out.print(f"Adopted {plan.count('adopt')} objects in realm '{printable(plan.realm)}'; nothing else changed. "
                      f"The next plan shows {pending} update{'' if pending == 1 else 's'} for them"
                      + (" (they differ from the file)." if pending else "."), markup=False)


@app.command()
@options(KeycloakOptions)
def env(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Realm file with mcp_servers, or a directory of realm files.",
                                         show_default=False)],
    keycloak: KeycloakOptions,
    server: Annotated[Optional[list[str]], typer.Option("--server", help="Only this MCP server (repeatable).")] = None,
    stdout: Annotated[bool, typer.Option("--stdout", help="Print instead of writing (shows the secret!).")] = False,
    var: Annotated[Optional[list[str]], typer.Option("--var", help="Template variable NAME=VALUE (repeatable).")] = None,
    var_file: Annotated[Optional[list[Path]], typer.Option("--var-file", help="YAML file of template variables (repeatable).")] = None,
    allow_outside: AllowOutside = None,
) -> None:
    """Write each MCP server's env file (mode 0600), secrets read back from Keycloak."""
    from kcprov.envgen import check_env_targets, render_env
    from kcprov.realms import env_selection, realm_files as expand

    files = expand([file])
    selection = env_selection(file, files, RealmFileOptions(var=var, var_file=var_file).load(files), server)
    if not stdout:
        for _, spec, only in selection:
            check_env_targets(spec, allow_outside or (), only)
    client = keycloak.connect()
    if stdout:
        for path, spec, only in selection:
            for name in only or [s.name for s in spec.mcp_servers]:
                print(render_env(client, spec, name, source=str(path)), end="")
        return
    if not [written for path, spec, only in selection
            for written in _write_env_files(client, spec, str(path), only, allow_outside)]:
        raise KcprovError(f"{file}: no MCP server{' named ' + ', '.join(server) if server else ''} has an env_file.",
                          hint="set env_file: on the mcp_servers entry, or use --stdout")


@app.command()
@options(KeycloakOptions)
def export(
    keycloak: KeycloakOptions,
    realm: Annotated[str, typer.Option("--realm", help="The realm to export.", show_default=False)],
    output: Annotated[Optional[str], typer.Option("-o", "--out", metavar="FILE",
                                                  help="Write the realm file here (mode 0600); default: stdout.")] = None,
    include: Annotated[Optional[list[str]], typer.Option("--include", metavar="users",
                                                         help="Also export users (never their passwords).")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Write every object and field, built-ins and values "
                                                            "equal to a new realm's too (a full snapshot).")] = False,
    secrets_env: Annotated[Optional[str], typer.Option("--secrets-env", metavar="FILE",
                                                       help="Write the secrets the file references to this env "
                                                            "file (mode 0600), for a migration.")] = None,
    mcp: Annotated[bool, typer.Option("--mcp", help="Write MCP server setups as mcp_servers: entries (what does "
                                                    "not fit stays as primitives, with a note why).")] = False,
) -> None:
    """Write a live realm as a short realm file: only what differs from a new realm, secrets as {{ env.NAME }}."""
    from kcprov.export import export_realm
    from kcprov.export.mcp import fold_mcp_servers
    from kcprov.export.secrets import secrets_env_text
    from kcprov.fileio import resolve_output, write_output

    unknown = sorted(set(include or ()) - {"users"})
    if unknown:
        raise typer.BadParameter(f"cannot include {', '.join(unknown)}; only: users", param_hint="--include")
    to_file = output not in (None, "-")
    if to_file:
        resolve_output(output, origin="command-line", what="export")
    if secrets_env:
        resolve_output(secrets_env, origin="command-line", what="secrets env file")
    client = keycloak.connect()
    result = export_realm(client, realm, include_users="users" in (include or ()), everything=everything,
                          with_secrets=bool(secrets_env), passes=[fold_mcp_servers] if mcp else ())
    if to_file:
        write_output(output, result.text, origin="command-line", what="export")
        err_console.print(f"Wrote {printable(output)} (realm '{printable(realm)}', mode 0600)", markup=False)
    else:
        sys.stdout.write(result.text)
    if secrets_env:
        write_output(secrets_env, secrets_env_text(realm, result), origin="command-line", what="secrets env file")
        err_console.print(f"Wrote {len(result.secrets)} secret(s) to {printable(secrets_env)} (mode 0600)", markup=False)
    if result.not_exported:
        err_console.print("[yellow]warning:[/] ", end="")  # names from Keycloak are printed without markup
        err_console.print(f"{len(result.not_exported)} objects not exported: {printable('; '.join(result.not_exported))}"
                          " (listed at the end of the file)", markup=False, soft_wrap=True)


@app.command()
@options(RealmFileOptions, KeycloakOptions)
def audit(
    realm_files: RealmFileOptions,
    keycloak: KeycloakOptions,
    files: Annotated[Optional[list[Path]], typer.Argument(metavar="FILE", help="Realm files to audit offline.",
                                                          show_default=False)] = None,
    realm: Annotated[Optional[list[str]], typer.Option("--realm", metavar="NAME", help="Audit this live realm (repeatable).")] = None,
    server: Annotated[Optional[list[str]], typer.Option("--server", metavar="URL", help="Probe this running MCP server (repeatable).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    sarif: Annotated[Optional[str], typer.Option("--sarif", metavar="FILE", help="Also write SARIF 2.1.0 (code scanning) here; - for stdout.")] = None,
    fail_on: Annotated[Literal["low", "medium", "high"], typer.Option(
        "--fail-on", help="Exit 3 if a finding at or above this severity is not waived.")] = "medium",
    rules_markdown: Annotated[bool, typer.Option("--rules-markdown", hidden=True)] = False,
) -> None:
    """Check realm files, live realms and running MCP servers against the MCP authorization spec (exit 3: findings)."""
    from kcprov.audit.command import all_rules, audit_command, rules_markdown as table
    from kcprov.audit.rules import Severity

    if rules_markdown:  # the README's rule table (tests/test_audit_report.py checks it is current)
        print(table(all_rules()), end="")
        return
    if not (files or realm or server):
        raise typer.BadParameter("name a realm FILE, --realm NAME or --server URL", param_hint="what to audit")
    if json_output and sarif == "-":
        raise typer.BadParameter("--json and --sarif - both print to stdout; give --sarif a file", param_hint="--sarif")
    raise typer.Exit(audit_command(files or [], realm or [], server or [], realm_files=realm_files,
                                   connect=keycloak.connect, json_output=json_output, sarif=sarif,
                                   fail_on=Severity[fail_on.upper()], out=out, err=err_console))


def _silenced(specs: list, ids: list[str] | None) -> list:
    """The specs with the warnings of --quiet-warning silenced too, as if the files named them."""
    return [spec.model_copy(update={"quiet_warnings": [*spec.quiet_warnings, *ids]}) for spec in specs] if ids else specs


def _write_env_files(client, spec, source: str, only, allow_outside) -> list:
    """Write the env file of every MCP server that names one (or of those in `only`); report each."""
    from kcprov.envgen import write_env_files

    written = write_env_files(client, spec, only=only, source=source, allow_outside=allow_outside or ())
    for path, changed in written:
        out.print(f"{'Wrote' if changed else 'Unchanged'} {printable(path)} (mode 0600)", markup=False)
    return written


def main() -> None:
    """Entry point: typer reports usage errors (exit 2) and Ctrl-C (130); KcprovError is one message, exit 1."""
    # No pydantic plugin (an observability hook) is meant to see realm files' values, secrets among them; and
    # looking for plugins reads the metadata of every installed package, a tenth of a `validate`.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        app()
    except KcprovError as exc:
        from kcprov.spec import SpecError

        if not isinstance(exc, SpecError):  # realm file problems carry their own "file:line: error:"
            err_console.print("[bold red]Error:[/] ", end="")
        err_console.print(printable(exc.message, keep_newlines=True), markup=False, soft_wrap=True)
        if exc.hint:
            err_console.print("  [dim]hint:[/] ", end="")
            err_console.print(printable(exc.hint, keep_newlines=True), markup=False, soft_wrap=True)
        sys.exit(1)


def run() -> None:
    """The `kcprov` script and `python -m kcprov`: `main`, then end the process without tearing Python down.

    Python's own exit frees every module and object one by one after the work
    is done: 0.05 s of a `validate`, 0.4 s of a 10,000-client plan, for a
    process about to end. Here exit handlers run and the output is flushed
    first, as Python would; only the freeing is skipped. A thread still
    running (none should be) gets the normal exit, which waits for it.
    `main` stays a plain function that returns or raises SystemExit, for tests.
    """
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("text"): Python prints it and exits 1
        print(code, file=sys.stderr)
        code = 1
    if any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()  # what Python's exit does first (none is registered by kcprov itself)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. `kcprov plan | head`: the reader left; Python's exit says 120 then
        os._exit(120)
    os._exit(code)


if __name__ == "__main__":
    run()
