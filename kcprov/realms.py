"""Many realms in one run: directories expanded to realm files, and their realms planned at once.

`kcprov validate|plan|apply|env realms/` reads every realm file of the
directory: its `*.yaml` and `*.yml` entries, sorted by name, so a run's
order (and its output) is the same on every machine. Not recursive: a
realms/ directory often keeps var files, fragments or vendored examples in
subdirectories, and reading them as realms would be a surprise (name them,
or let the shell expand `realms/**/*.yaml`). Hidden entries (`.name.yaml`,
editor and kcprov temp files) are skipped.

An entry of the directory is part of the working tree the operator named,
but in GitOps its contents come from a pull request: an entry that is a
symlink leading out of the working tree (and out of the named directory) is
refused, as an env_file leading out is (`kcprov.fileio`), so a pull request
cannot make kcprov read /etc/... or another checkout's realm and print what
it holds. Files named one by one are the operator's choice and read as given.

Planning reads each realm from Keycloak (a partial export plus a few reads
per realm) and spends most of its time waiting for answers, so the realms
are planned by a few threads over the run's one KeycloakClient (its token
renewal, request counter and retry budget are shared under locks). The
server info an MCP setup is checked against is read once for all realms.
Results come back in file order, so what is printed does not depend on
which answer came first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from typing import TYPE_CHECKING

from kcprov.errors import KcprovError

if TYPE_CHECKING:  # `validate` expands directories too, and must not import the HTTP layer
    from kcprov.keycloak import KeycloakClient
    from kcprov.spec.models import RealmSpec
    from kcprov.workflow import RealmRun

REALM_SUFFIXES = (".yaml", ".yml")
PLAN_THREADS = 4
"""Realms planned at once. Measured with bench/many_realms.py, 100 realms of 10 clients, an in-sync plan
on 2 cores with Keycloak on the same machine: 1 thread 3.4 s, 2 threads 1.4 s, 4 threads 1.4 s, 8 threads
1.7 s (kcprov's own CPU is 0.8 s of it; past 2 threads the server's CPU is the limit). 4 leaves room for a
Keycloak with more cores without holding many connections open."""


def realm_files(paths: Sequence[Path]) -> list[Path]:
    """The realm files the arguments name, in order: a file as given, a directory as its sorted realm files.

    KcprovError for a directory without realm files, or with an entry that
    is a symlink leading out of the working tree.
    """
    files: list[Path] = []
    for path in paths:
        files.extend(_directory_files(path) if path.is_dir() else [path])
    return files


def _directory_files(directory: Path) -> list[Path]:
    entries = sorted(entry for entry in directory.iterdir()
                     if entry.suffix in REALM_SUFFIXES and not entry.name.startswith("."))
    if not entries:
        raise KcprovError(f"{directory}: the directory holds no realm file (*.yaml or *.yml).",
                          hint="name realm files or a directory of them; subdirectories are not read "
                               "(let the shell expand realms/**/*.yaml to include them)")
    tree, named = Path.cwd(), Path(os.path.realpath(directory))
    for entry in entries:
        real = Path(os.path.realpath(entry))
        if entry.is_symlink() and not (real.is_relative_to(os.path.realpath(tree)) or real.is_relative_to(named)):
            raise KcprovError(f"{entry}: a symlink to {real}, outside the working directory {tree} and "
                              f"outside {directory}.",
                              hint="a realm file of a directory stays in the working tree; replace the "
                                   "symlink by the file, or name the file itself on the command line")
    return entries


def plan_realms(client: KeycloakClient, specs: Sequence[RealmSpec], sources: Sequence[str | os.PathLike[str]],
                prune: bool = False, allow_admin_realm_changes: bool = False, adopt: bool = False,
                changes: bool = True, threads: int = PLAN_THREADS) -> list[RealmRun]:
    """`plan_realm` for each spec, `threads` at a time over one client; the runs in the specs' order.

    The first failure in file order is raised (the realms not yet started are
    not planned); nothing is written either way.
    """
    from kcprov.workflow import plan_realm

    server_info = client.server_info() if any(spec.mcp_servers for spec in specs) else None

    def plan(spec: RealmSpec, source: str | os.PathLike[str]) -> RealmRun:
        return plan_realm(client, spec, str(source), prune, allow_admin_realm_changes, adopt, changes,
                          server_info=server_info)

    if len(specs) == 1 or threads == 1:  # no thread for the common case
        return [plan(spec, source) for spec, source in zip(specs, sources)]
    pool = ThreadPoolExecutor(max_workers=min(threads, len(specs)), thread_name_prefix="kcprov-plan")
    try:
        futures = [pool.submit(plan, spec, source) for spec, source in zip(specs, sources)]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def env_selection(argument: Path, files: Sequence[Path], specs: Sequence[RealmSpec],
                  names: Sequence[str] | None) -> list[tuple[Path, RealmSpec, list[str] | None]]:
    """What `kcprov env ARGUMENT [--server NAME ...]` writes: (file, spec, servers or None for all) per realm.

    One file: its realm must have MCP servers, and every --server name is
    looked up in it (an unknown one is envgen's error). A directory: the
    realms with MCP servers; a --server name picks that server in whichever
    realm has it, and a name no realm has is an error.
    """
    if len(specs) == 1:
        if not specs[0].mcp_servers:
            raise KcprovError(f"{files[0]}: realm '{specs[0].realm}' has no mcp_servers, so there is no env file "
                              "to write.", hint="add an mcp_servers: entry with env_file:")
        return [(files[0], specs[0], list(names) if names else None)]
    serving = [(file, spec, {server.name for server in spec.mcp_servers})
               for file, spec in zip(files, specs) if spec.mcp_servers]
    if not serving:
        raise KcprovError(f"{argument}: none of its {len(specs)} realm files has mcp_servers, so there is no env "
                          "file to write.", hint="add an mcp_servers: entry with env_file:")
    if not names:
        return [(file, spec, None) for file, spec, _ in serving]
    unknown = sorted(set(names) - set().union(*(found for _, _, found in serving)))
    if unknown:
        raise KcprovError(f"{argument}: no realm file has an MCP server named {', '.join(unknown)}.",
                          hint="--server takes the name of an mcp_servers: entry")
    return [(file, spec, [name for name in names if name in found]) for file, spec, found in serving
            if found.intersection(names)]
