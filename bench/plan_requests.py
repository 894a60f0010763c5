"""Benchmark: the HTTP requests (and seconds) of an in-sync plan of example realm files.

The issue-12 kinds (groups, identity providers, flows, ...) are read from the
same partial export as the rest, so an in-sync plan of a realm file should cost
the same requests whatever it models: 1 partial export, plus 2 per user the file
names (lookup, role mappings; 3 where it writes `groups:`), 1 per client whose
secret the file sets, 1 for a user profile never changed from Keycloak's, and
1 plus 2 per organization for organizations. Each file is applied to a fresh realm `bench-req-<n>`
(deleted at the end), then planned three times; the table shows the last.
Needs a running Keycloak: KCPROV_URL/KCPROV_USER/KCPROV_PASSWORD, or the dev
server (`kcprov dev up`).

    python bench/plan_requests.py realms/mcp-dev.yaml realms/mcp-sso.yaml [--var k=v ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kcprov.apply import apply_plan
from kcprov.connection import settings_from_environment
from kcprov.keycloak import KeycloakClient
from kcprov.resources import KINDS
from kcprov.spec import load_realm
from kcprov.spec.loader import parse_var_options
from kcprov.workflow import plan_realm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--var", action="append", default=[])
    args = parser.parse_args()
    client = KeycloakClient(settings_from_environment())
    print(f"{'file':<28} {'objects':>8} {'in-sync plan requests':>22} {'seconds':>8}")
    for index, path in enumerate(args.files):
        name = f"bench-req-{index}"
        spec = load_realm(path, parse_var_options(args.var)).model_copy(update={"realm": name})
        if client.get_optional(f"/admin/realms/{name}", "bench realm"):
            client.delete(f"/admin/realms/{name}", "bench realm")
        try:
            run = plan_realm(client, spec, str(path))
            result = apply_plan(client, run.plan, run.live, run.desired, KINDS)
            assert result.ok, [str(e) for e in result.errors]
            for _ in range(3):
                client.requests = 0
                start = time.perf_counter()
                again = plan_realm(client, spec, str(path))
                seconds, requests = time.perf_counter() - start, client.requests
                assert again.plan.empty, again.plan.summary()
            print(f"{str(path):<28} {len(run.plan.changes):>8} {requests:>22} {seconds:>8.2f}")
        finally:
            if client.get_optional(f"/admin/realms/{name}", "bench realm"):
                client.delete(f"/admin/realms/{name}", "bench realm")


if __name__ == "__main__":
    main()
