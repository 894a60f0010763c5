"""`kcprov dev …`: a local Keycloak for development, no Docker needed.

Thin wiring from options to :mod:`kcprov.dev.runner`. Results go to stdout,
progress to stderr. Only ``credentials`` ever prints the admin password.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from kcprov.dev import err_console, runner
from kcprov.dev.dist import ensure_dist
from kcprov.dev.state import DevState, load_state, state_dir
from kcprov.errors import DevServerError

# What MCP servers need from Keycloak: client ID metadata documents and RFC 8707.
MCP_FEATURES = "cimd,resource-indicators"

app = typer.Typer(
    help="Run a local dev Keycloak (Java only, or --docker). State lives in $KCPROV_HOME "
    "(default: the user state dir).",
    no_args_is_help=True,
)
out = Console(highlight=False, soft_wrap=True, emoji=False)


@app.command()
def up(
    port: int = typer.Option(8080, "--port", "-p", help="HTTP port."),
    management_port: int | None = typer.Option(
        None, help="Port of /health and /metrics (default: --port + 920, so 8080 → 9000)."
    ),
    version: str | None = typer.Option(
        None, help="Keycloak version (default: the pinned one, or the one inside --dist)."
    ),
    dist: str | None = typer.Option(
        None, help="A Keycloak zip (path or http(s) URL) instead of Maven Central's."
    ),
    features: str = typer.Option(
        MCP_FEATURES, help="Comma-separated Keycloak features to enable ('' for none)."
    ),
    timeout: float = typer.Option(300.0, help="Seconds to wait for readiness."),
    docker: bool = typer.Option(
        False, "--docker", help="Run the official container image instead."
    ),
) -> None:
    """Start the dev Keycloak (or reuse the running one) and wait until it is ready."""
    state = runner.up(
        port=port,
        version=version,
        features=(features,),
        dist=dist,
        timeout=timeout,
        management_port=management_port,
        docker_mode=docker,
    )
    out.print(f"Keycloak {state.version} is ready at {state.url}", markup=False)
    out.print(
        f"  admin console: {state.url}/admin/ (user {state.user}; "
        "`kcprov dev credentials` shows the password)",
        markup=False,
    )


@app.command()
def down() -> None:
    """Stop the dev Keycloak; its data and admin credentials are kept for the next `up`."""
    state = load_state()
    if runner.down():
        assert state is not None
        out.print(f"Stopped Keycloak ({state.url}); data kept in {state.home}.", markup=False)
    else:
        out.print("No dev Keycloak is running.")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the dev Keycloak's version, URL and readiness.

    Exit code 0 when it is ready, 1 when it is starting or stopped.
    """
    current = runner.status()
    state = current.state
    info: dict[str, Any] = {"readiness": current.readiness, "home": str(state_dir().resolve())}
    if state is not None:
        info |= {
            "version": state.version,
            "url": state.url,
            "management_url": state.management_url,
            "pid": state.pid,
            "container": state.container,
            "features": list(state.features),
            "log_path": str(state.log_path),
            "started_at": state.started_at,
        }
    if as_json:
        print(json.dumps(info, indent=2))
    elif state is None:
        out.print(f"No dev Keycloak set up in {info['home']} (run `kcprov dev up`).", markup=False)
    else:
        out.print(f"Keycloak {state.version}: {current.readiness}", markup=False)
        for label, key in (
            ("URL", "url"),
            ("management", "management_url"),
            ("pid", "pid"),
            ("container", "container"),
            ("log", "log_path"),
            ("home", "home"),
        ):
            if info[key]:
                out.print(f"  {label + ':':12}{info[key]}", markup=False)
        out.print(f"  {'features:':12}{','.join(state.features) or 'none'}", markup=False)
    if current.readiness != "ready":
        raise typer.Exit(1)


@app.command()
def logs(
    lines: int = typer.Option(50, "-n", "--lines", help="How many of the last lines."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
) -> None:
    """Print the dev Keycloak's log (it holds no secrets)."""
    state = _required_state()
    if not follow:
        print(runner.log_tail(state, lines), end="")
        return
    try:
        for text in runner.follow_log(state, lines):
            print(text, end="", flush=True)
    except KeyboardInterrupt:
        pass


@app.command()
def credentials(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the dev Keycloak's URL, admin user and admin password."""
    state = _required_state()
    if as_json:
        print(
            json.dumps({"url": state.url, "user": state.user, "password": state.password}, indent=2)
        )
    else:
        print(f"url:      {state.url}\nuser:     {state.user}\npassword: {state.password}")


@app.command()
def fetch(
    version: str | None = typer.Option(None, help="Keycloak version (default: the pinned one)."),
    dist: str | None = typer.Option(None, help="A Keycloak zip (path or http(s) URL) to use."),
) -> None:
    """Download, verify and unpack a Keycloak distribution into the cache (no start)."""
    kc = ensure_dist(version, dist)
    out.print(f"Keycloak {kc.version} is ready to run from {kc.root}", markup=False)


@app.command()
def token(
    realm: str = typer.Option(..., "--realm", help="Realm of the user (or client).", show_default=False),
    user: str | None = typer.Option(None, "--user", help="The user whose token to get (password grant)."),
    client: str | None = typer.Option(
        None, "--client", help="Use this existing client (it must allow the password grant) instead of a "
        "temporary one; with --client-credentials, the confidential client whose token to get."
    ),
    scope: list[str] | None = typer.Option(
        None, "--scope", help="Scope to request, e.g. mcp:tools (repeatable, or space-separated)."
    ),
    resource: str | None = typer.Option(
        None, "--resource", help="RFC 8707 resource: the MCP server URL the token is for."
    ),
    client_credentials: bool = typer.Option(
        False, "--client-credentials", help="A token of the client itself (its service account), no user."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the user's password from stdin (first line); else "
        "$KCPROV_DEV_USER_PASSWORD, else a prompt on the terminal."
    ),
    client_secret_stdin: bool = typer.Option(
        False, "--client-secret-stdin", help="Read the client secret from stdin; else $KCPROV_DEV_CLIENT_SECRET, "
        "else kcprov reads it from the dev server."
    ),
    url: str | None = typer.Option(
        None, "--url", envvar="KCPROV_URL", help="Must be the dev server's URL if given (anything else is refused)."
    ),
    timeout: float = typer.Option(30.0, "--timeout", min=1, help="Seconds per request."),
) -> None:
    """Print an access token for a user or client of the dev Keycloak (no browser): TOKEN=$(kcprov dev token ...).

    Only on kcprov's own dev server (`kcprov dev up`): for a user, kcprov makes a
    temporary client allowing the password grant and deletes it afterwards. Only
    the token goes to stdout.
    """
    from kcprov.dev.token import (
        PASSWORD_ENV,
        SECRET_ENV,
        SecretInput,
        TokenRequest,
        dev_server_admin,
        issue_token,
    )

    if client_credentials and (not client or user):
        raise typer.BadParameter("--client-credentials needs --client and no --user", param_hint="--client-credentials")
    if not client_credentials and not user:
        raise typer.BadParameter("give --user (or --client-credentials --client C)", param_hint="--user")
    if password_stdin and client_secret_stdin:
        raise typer.BadParameter("stdin holds one secret: pass the other in its variable", param_hint="--password-stdin")
    request = TokenRequest(realm=realm, user=user, client=client,
                           scopes=tuple(dict.fromkeys(s for item in scope or () for s in item.split())),
                           resource=resource, client_credentials=client_credentials)
    password = SecretInput(password_stdin, PASSWORD_ENV, "password", "--password-stdin")
    secret = SecretInput(client_secret_stdin, SECRET_ENV, "client secret", "--client-secret-stdin")
    try:
        admin = dev_server_admin(url, timeout)
        access_token = issue_token(admin, request, password, secret, say=lambda text: err_console.print(text, markup=False))
    except KeyboardInterrupt:
        err_console.print("Interrupted; no temporary client is left behind.", markup=False)
        raise typer.Exit(130) from None
    print(access_token)


@app.command()
def keypair(
    out_dir: Path = typer.Option(..., "--out", help="Directory for the private key (made 0700 if absent).",
                                 show_default=False),
    name: str = typer.Option("client", "--name", help="File name: <out>/<name>.pem."),
    alg: str = typer.Option("ES256", "--alg", help="Signature algorithm: ES256, ES384, RS256 or PS256."),
) -> None:
    """Make a key pair for a private_key_jwt client: the private key to <out>/<name>.pem (0600), the public
    JWK Set to stdout, ready for the client's `jwks:` in the realm file. The private key is never printed."""
    from kcprov.dev import keypair as keys

    if alg not in keys.ALGORITHMS:
        raise typer.BadParameter(f"expected one of {', '.join(keys.ALGORITHMS)}", param_hint="--alg")
    if not name or "/" in name or name.startswith("."):
        raise typer.BadParameter("a plain file name, e.g. my-service", param_hint="--name")
    pair = keys.generate(alg)
    path = keys.write_key(pair, out_dir, name)
    err_console.print(f"Wrote the private key to {path} (mode 0600, kid {pair.kid}); "
                      "the public JWK Set for the client's `jwks:` follows.", markup=False)
    print(json.dumps(pair.jwks(), indent=2))


def _required_state() -> DevState:
    state = load_state()
    if state is None:
        raise DevServerError(
            f"No dev Keycloak has been set up in {state_dir()}.", hint="run `kcprov dev up` first."
        )
    return state
