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
from kcprov.dev.state import ClusterState, DevState, load_cluster, load_state, state_dir
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
    db: str | None = typer.Option(
        None, "--db", help="'postgres': Keycloak nodes clustered on kcprov's own PostgreSQL "
        "(see docs/cluster.md); default: one server with its H2 file database."
    ),
    nodes: int = typer.Option(1, "--nodes", min=1, max=9, help="With --db: Keycloak nodes (node i on --port + i)."),
    balancer_port: int | None = typer.Option(
        None, help="With --nodes 2+: the loopback balancer's port (default: --port + 10)."
    ),
    db_port: int = typer.Option(5490, help="With --db: PostgreSQL's port on 127.0.0.1."),
    jgroups_port: int = typer.Option(7800, help="With --db: node 1's JGroups port on 127.0.0.1."),
) -> None:
    """Start the dev Keycloak (or reuse the running one) and wait until it is ready."""
    if db is not None:
        state = _cluster_up(db, nodes, port, management_port, balancer_port, db_port, jgroups_port,
                            version, features, dist, timeout, docker)
    elif nodes != 1:
        raise typer.BadParameter("--nodes needs --db postgres (nodes share its database)", param_hint="--nodes")
    else:
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


def _cluster_up(
    db: str, nodes: int, port: int, management_port: int | None, balancer_port: int | None,
    db_port: int, jgroups_port: int, version: str | None, features: str, dist: str | None,
    timeout: float, docker: bool,
) -> DevState:
    from kcprov.dev import cluster

    if db != "postgres":
        raise typer.BadParameter(f"{db!r}: the only cluster database is 'postgres'", param_hint="--db")
    if docker:
        raise typer.BadParameter("--db runs the nodes natively; drop --docker", param_hint="--docker")
    ports = cluster.ClusterPorts(
        port=port,
        management_port=management_port or runner.default_management_port(port),
        balancer_port=balancer_port or port + 10,
        db_port=db_port,
        jgroups_port=jgroups_port,
    )
    state = cluster.up(ports, nodes=nodes, version=version, features=(features,), dist=dist, timeout=timeout)
    if nodes > 1:
        out.print(f"{nodes} Keycloak nodes on PostgreSQL (127.0.0.1:{db_port}), balanced at {state.url}:",
                  markup=False)
        for index in range(nodes):
            out.print(f"  node {index + 1}: http://localhost:{ports.node(index)[0]}", markup=False)
    return state


@app.command()
def down() -> None:
    """Stop the dev Keycloak (or cluster); data and admin credentials are kept for the next `up`."""
    from kcprov.dev import cluster

    if load_cluster() is not None:
        if cluster.down():
            out.print(f"Stopped the dev cluster (balancer, nodes, PostgreSQL); data kept in "
                      f"{state_dir().resolve()}.", markup=False)
        else:
            out.print("No dev cluster is running.")
        return
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
    if load_cluster() is not None:
        _cluster_status(as_json)
        return
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


def _cluster_status(as_json: bool) -> None:
    from kcprov.dev import cluster

    current = cluster.status()
    assert current is not None
    front = current.front
    info: dict[str, Any] = {
        "readiness": current.readiness,
        "home": str(current.cluster.home),
        "url": front.url if front else None,
        "version": front.version if front else None,
        "database": {"readiness": current.database, "port": current.cluster.db_port, "pid": current.cluster.db_pid},
        "nodes": [
            {"readiness": readiness, "url": node.url if node else None,
             "management_url": node.management_url if node else None,
             "pid": node.pid if node else None, "log_path": str(node.log_path) if node else None}
            for node, readiness in current.nodes
        ],
        "balancer": None if current.cluster.balancer_port is None else {
            "readiness": current.balancer, "port": current.cluster.balancer_port,
            "pid": current.cluster.balancer_pid},
    }
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        out.print(f"Keycloak {info['version']} cluster: {current.readiness} at {info['url']}", markup=False)
        out.print(f"  {'postgres:':12}{current.database} (127.0.0.1:{current.cluster.db_port})", markup=False)
        for index, node in enumerate(info["nodes"]):
            out.print(f"  {f'node {index + 1}:':12}{node['readiness']} {node['url'] or ''}", markup=False)
        if info["balancer"]:
            out.print(f"  {'balancer:':12}{current.balancer} (127.0.0.1:{current.cluster.balancer_port})",
                      markup=False)
        out.print(f"  {'home:':12}{info['home']}", markup=False)
    if current.readiness != "ready":
        raise typer.Exit(1)


@app.command()
def logs(
    lines: int = typer.Option(50, "-n", "--lines", help="How many of the last lines."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    part: str | None = typer.Option(
        None, "--part", help="Of a cluster: node1, node2 …, balancer or postgres (default: every "
        "part's last lines; --follow follows node1)."
    ),
) -> None:
    """Print the dev Keycloak's log (it holds no secrets)."""
    if (cluster_state := load_cluster()) is not None:
        _cluster_logs(cluster_state, lines, follow, part)
        return
    state = _required_state()
    if not follow:
        print(runner.log_tail(state, lines), end="")
        return
    try:
        for text in runner.follow_log(state, lines):
            print(text, end="", flush=True)
    except KeyboardInterrupt:
        pass


def _cluster_logs(cluster_state: ClusterState, lines: int, follow: bool, part: str | None) -> None:
    from kcprov.dev import cluster

    paths = cluster.log_paths(cluster_state)
    if part is not None and part not in paths:
        raise typer.BadParameter(f"{part!r} is not a part of this cluster: {', '.join(paths)}", param_hint="--part")
    chosen = [part or "node1"] if follow or part else list(paths)
    for name in chosen:
        # The front's record, pointed at this part's log: followed while the front runs.
        state = replace(_required_state(), log_path=paths[name])
        if len(chosen) > 1:
            print(f"==> {name} ({paths[name]}) <==")
        if not follow:
            print(runner.log_tail(state, lines), end="")
            continue
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
