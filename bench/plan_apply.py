"""Benchmark: plan and apply time, and HTTP requests, for realms of 10, 100 and 1,000 clients.

Not a test: it prints a table. Needs a running Keycloak: KCPROV_URL/KCPROV_USER/
KCPROV_PASSWORD, or the dev server (`kcprov dev up`). Each size gets its own
realm `bench-<n>`, deleted at the end.

    python bench/plan_apply.py [--sizes 10,100,1000]
"""

from __future__ import annotations

import argparse
import time

from kcprov.apply import apply_plan
from kcprov.connection import settings_from_environment
from kcprov.keycloak import KeycloakClient
from kcprov.resources import KINDS
from kcprov.spec.models import RealmSpec
from kcprov.workflow import plan_realm

from compare import realm_document  # bench/ is on sys.path when this file runs as a script


def realm_spec(name: str, clients: int) -> RealmSpec:
    """bench/compare.py's realm (issue 13's shape) of `clients` clients."""
    return RealmSpec.model_validate(realm_document(name, clients))


def measure(client: KeycloakClient, action):
    client.requests = 0
    start = time.perf_counter()
    value = action()
    return value, time.perf_counter() - start, client.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000")
    args = parser.parse_args()
    client = KeycloakClient(settings_from_environment())
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        name = f"bench-{size}"
        spec = realm_spec(name, size)
        if client.get_optional(f"/admin/realms/{name}", "bench realm"):
            client.delete(f"/admin/realms/{name}", "bench realm")
        run, plan_new_s, plan_new_req = measure(client, lambda: plan_realm(client, spec, name))
        result, apply_s, apply_req = measure(client, lambda: apply_plan(client, run.plan, run.live, run.desired, KINDS))
        assert result.ok, [str(e) for _, e in result.failed]
        run2, plan_s, plan_req = measure(client, lambda: plan_realm(client, spec, name))
        assert run2.plan.empty, run2.plan.summary()
        rows.append((size, len(run.plan.changes), plan_new_s, apply_s, apply_req, plan_s, plan_req))
        client.delete(f"/admin/realms/{name}", "bench realm")
    print(f"{'clients':>8} {'changes':>8} {'plan(new) s':>12} {'apply s':>8} {'apply req':>10} {'in-sync plan s':>15} {'plan req':>9}")
    for size, changes, plan_new_s, apply_s, apply_req, plan_s, plan_req in rows:
        print(f"{size:>8} {changes:>8} {plan_new_s:>12.2f} {apply_s:>8.2f} {apply_req:>10} {plan_s:>15.2f} {plan_req:>9}")


if __name__ == "__main__":
    main()
