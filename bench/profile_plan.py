"""Where an in-sync plan spends its time: per phase, for a realm file against a running Keycloak.

    python bench/profile_plan.py REALM.yaml [--runs 3] [--profile out.prof]

Needs the realm applied already (else it times a plan of creates) and a Keycloak
as for `kcprov plan` (KCPROV_URL/... or the dev server). Runs the phases of
`workflow.plan_realm` one by one, as it does them: load + validate the file,
expand MCP servers, desired objects per kind, the partial export (the only
phase that waits on Keycloak: the floor of any plan), the kinds' extra reads,
live normalisation per kind, and the diff (with the state fingerprint). Then
the whole `plan_realm` once more, for its total and request count. Prints the
best of `--runs` for each phase; `--profile` writes a cProfile of the
Python-side phases (load to diff, without the export) for `python -m pstats`.
"""

from __future__ import annotations

import argparse
import cProfile
import time
from pathlib import Path

from kcprov.connection import settings_from_environment
from kcprov.keycloak import KeycloakClient
from kcprov.plan import compute_plan
from kcprov.resources import KINDS
from kcprov.spec import load_realm
from kcprov.spec.expand import expand_mcp_servers
from kcprov.state import LiveState, RawRealm, ownership_record
from kcprov.workflow import plan_realm


def phases(client: KeycloakClient, path: Path, profiler: cProfile.Profile | None) -> dict[str, float]:
    """Seconds per phase of one plan; the Python-side phases run under `profiler` when given."""
    times: dict[str, float] = {}

    def timed(name: str, action, python_side: bool = True):
        start = time.perf_counter()
        if profiler and python_side:
            profiler.enable()
        value = action()
        if profiler and python_side:
            profiler.disable()
        times[name] = time.perf_counter() - start
        return value

    spec = timed("load + validate", lambda: load_realm(path))
    expanded, groups = timed("expand", lambda: expand_mcp_servers(spec))
    desired = timed("desired", lambda: {kind.name: kind.desired(expanded) for kind in KINDS})
    export = timed("partial export (Keycloak)", lambda: client.realm_export(spec.realm), python_side=False)
    raw, owned = RawRealm(name=spec.realm, export=export), ownership_record(export)
    timed("kinds' extra reads (Keycloak)",
          lambda: [kind.read(client, raw, desired, owned) for kind in KINDS if export is not None], python_side=False)
    objects = timed("live normalisation",
                    lambda: {kind.name: kind.live(raw) for kind in KINDS} if export is not None else {})
    live = LiveState(realm=spec.realm, exists=export is not None, objects=objects, owned=owned, raw=raw)
    plan = timed("diff + fingerprint", lambda: compute_plan(spec.realm, desired, live, KINDS, groups=groups))
    times["changes"] = len(plan.changes)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("realm_file", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the Python-side phases here")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per request (a 10,000-client export is slow)")
    args = parser.parse_args()
    client = KeycloakClient(settings_from_environment(), timeout=args.timeout)
    profiler = cProfile.Profile() if args.profile else None
    runs = [phases(client, args.realm_file, profiler) for _ in range(args.runs)]
    for name in runs[0]:
        if name != "changes":
            print(f"{name:>32}: {min(r[name] for r in runs):7.3f} s")
    python_side = sum(min(r[n] for r in runs) for n in runs[0] if "Keycloak" not in n and n != "changes")
    print(f"{'Python side (sum)':>32}: {python_side:7.3f} s   changes: {runs[0]['changes']}")
    spec = load_realm(args.realm_file)
    client.requests = 0
    start = time.perf_counter()
    plan_realm(client, spec, str(args.realm_file))
    print(f"{'plan_realm (after load)':>32}: {time.perf_counter() - start:7.3f} s, {client.requests} requests")
    if profiler:
        profiler.dump_stats(args.profile)
        print(f"profile: python -m pstats {args.profile}")


if __name__ == "__main__":
    main()
