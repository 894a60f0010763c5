"""Benchmark: an in-sync plan of many realms at once (100 realms of 10 clients by default).

Not a test: it prints a table. Creates the realms `bench-many-<i>` on the
Keycloak of KCPROV_URL/KCPROV_USER/KCPROV_PASSWORD (or the dev server),
the first half one realm after another and the second half with
--apply-threads realms at once (so the two ways of applying many realms are
compared on the same run), then plans all of them in sync: in-process with
1, 2, 4 and 8 threads (`kcprov.realms.plan_realms`: time and requests), and
as a user runs it, `kcprov plan` of a directory of their files (wall
time, start-up and rendering included). Each figure is the median of
--rounds runs. Deletes the realms at the end.

`--cli` names the command timed on the directory, e.g. an older kcprov for
a before/after figure (`git archive REV | tar -x -C /tmp/old`, then
`--cli "env PYTHONPATH=/tmp/old python -m kcprov.cli"`); repeatable.

    python bench/many_realms.py [--realms 100] [--clients 10] [--apply-threads 4] [--rounds 3] [--cli CMD]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
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


def median_of(rounds: int, measure) -> float:
    return statistics.median(measure() for _ in range(rounds))


def cli_seconds(command: str, directory: str) -> float:
    """`COMMAND plan` of the directory's files, as the shell expands `*.yaml` (older versions take no directory),
    run in the directory (so `python -m` finds kcprov where PYTHONPATH says, not in this checkout)."""
    files = sorted(path.name for path in Path(directory).glob("*.yaml"))
    start = time.perf_counter()
    done = subprocess.run([*shlex.split(command), "plan", "--detailed-exitcode", *files], capture_output=True,
                          text=True, env=os.environ, cwd=directory)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realms", type=int, default=100)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--apply-threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cli", action="append", help="command timed on the directory (default: kcprov)")
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
            def plan_all():
                runs, seconds, requests = timed(client, lambda: plan_realms(client, specs, names, threads=threads))
                assert all(run.plan.empty for run in runs)
                return seconds

            seconds = median_of(args.rounds, plan_all)
            print(f"{threads:>8} {seconds:>8.2f} {client.requests:>9}")
        with tempfile.TemporaryDirectory() as directory:
            for spec in specs:
                Path(directory, f"{spec.realm}.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_unset=True)))
            print("\n`plan` of the realm files as a user runs it (start-up, load, plan, print):")
            for command in args.cli or ["kcprov"]:
                print(f"  {median_of(args.rounds, lambda: cli_seconds(command, directory)):6.2f} s  {command}")
    finally:
        for spec in specs:
            if client.get_optional(f"/admin/realms/{spec.realm}", "bench realm"):
                client.delete(f"/admin/realms/{spec.realm}", "bench realm")


if __name__ == "__main__":
    main()
