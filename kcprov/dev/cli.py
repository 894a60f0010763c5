"""`kcprov dev …`: a local Keycloak for development, no Docker needed.

Thin wiring from options to :mod:`kcprov.dev.runner`. Results go to stdout,
progress to stderr. Only ``credentials`` ever prints the admin password.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from kcprov.dev import runner
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
out = Console(highlight=False, soft_wrap=True)


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


def _required_state() -> DevState:
    state = load_state()
    if state is None:
        raise DevServerError(
            f"No dev Keycloak has been set up in {state_dir()}.", hint="run `kcprov dev up` first."
        )
    return state
