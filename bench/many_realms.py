"""Benchmark: an in-sync plan of many realms at once (100 realms of 10 clients by default).

Not a test: it prints a table. Creates the realms `bench-many-<i>` on the
Keycloak of KCPROV_URL/KCPROV_USER/KCPROV_PASSWORD (or the dev server),
the first half one realm after another and the second half with
--apply-threads realms at once (so the two ways of applying many realms are
compared on the same run), then plans all of them in sync: in-process with
1, 2, 4 and 8 threads (`kcprov.realms.plan_realms`: time and requests), and
as a user runs it, `kcprov plan DIR` on a directory of their files (wall
time, start-up and rendering included). Deletes the realms at the end.

    python bench/many_realms.py [--realms 100] [--clients 10] [--apply-threads 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from kcprov.apply import apply_plan
from kcprov.connection import settings_from_environment
from kcprov.keycloak import KeycloakClient
from kcprov.realms import plan_realms
from kcprov.resources import KINDS
from kcprov.workflow import plan_realm

sys.path.insert(0, str(Path(__file__).parent))
from plan_apply import realm_spec  # noqa: E402  (the benchmark realm shape, shared with plan_apply)


def create(client: KeycloakClient, spec) -> None:
    run = plan_realm(client, spec, spec.realm)
    result = apply_plan(client, run.plan, run.live, run.desired, KINDS)
    assert result.ok, [str(e) for e in result.errors]


def timed(client: KeycloakClient, action):
    client.requests = 0
    start = time.perf_counter()
    value = action()
    return value, time.perf_counter() - start, client.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realms", type=int, default=100)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--apply-threads", type=int, default=4)
    args = parser.parse_args()
    client = KeycloakClient(settings_from_environment())
    specs = [realm_spec(f"bench-many-{i:03d}", args.clients) for i in range(args.realms)]
    half = len(specs) // 2
    try:
        for spec in specs:
            if client.get_optional(f"/admin/realms/{spec.realm}", "bench realm"):
                client.delete(f"/admin/realms/{spec.realm}", "bench realm")
        _, one_by_one, _ = timed(client, lambda: [create(client, spec) for spec in specs[:half]])
        with ThreadPoolExecutor(args.apply_threads) as pool:
            _, at_once, _ = timed(client, lambda: list(pool.map(lambda spec: create(client, spec), specs[half:])))
        print(f"create, one realm after another: {one_by_one / half:.2f} s per realm ({half} realms)")
        print(f"create, {args.apply_threads} realms at once:    {at_once / (len(specs) - half):.2f} s per realm "
              f"({len(specs) - half} realms)")
        names = [spec.realm for spec in specs]
        plan_realms(client, specs, names)  # warm-up: Keycloak's caches and the JIT, as after any first read
        print(f"\nin-sync plan of {len(specs)} realms x {args.clients} clients")
        print(f"{'threads':>8} {'seconds':>8} {'requests':>9}")
        for threads in (1, 2, 4, 8):
            runs, seconds, requests = timed(client, lambda: plan_realms(client, specs, names, threads=threads))
            assert all(run.plan.empty for run in runs)
            print(f"{threads:>8} {seconds:>8.2f} {requests:>9}")
        with tempfile.TemporaryDirectory() as directory:
            for spec in specs:
                Path(directory, f"{spec.realm}.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_unset=True)))
            start = time.perf_counter()
            done = subprocess.run(["kcprov", "plan", "--detailed-exitcode", directory], capture_output=True, text=True,
                                  env=os.environ)
            wall = time.perf_counter() - start
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            print(f"\n`kcprov plan DIR` (start-up, load, plan, print): {wall:.2f} s")
    finally:
        for spec in specs:
            if client.get_optional(f"/admin/realms/{spec.realm}", "bench realm"):
                client.delete(f"/admin/realms/{spec.realm}", "bench realm")


if __name__ == "__main__":
    main()
