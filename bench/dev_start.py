"""How long `kcprov dev up` takes until Keycloak is ready.

Three starts, each timed from the call to ``/health/ready`` answering 200:

- cold: a fresh KCPROV_HOME and no cached Quarkus build, so Keycloak's first
  build (augmentation) is included; the dist is already downloaded and unpacked;
- warm: ``down`` then ``up`` again on the same home (database and build kept);
- fresh home, cached build: a second fresh home, seeded with the build the cold
  start saved (what the test suite's second instance and CI see).

Runs in a private cache dir (the zip is linked from the user's cache) so the
cold start is really cold. Usage: ``python bench/dev_start.py``.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

from kcprov import KEYCLOAK_VERSION
from kcprov.dev import dist, runner

FEATURES = ("cimd", "resource-indicators")


def free_port_pair() -> tuple[int, int]:
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        return a.getsockname()[1], b.getsockname()[1]


def timed_up(home: Path) -> float:
    port, management_port = free_port_pair()
    started = time.monotonic()
    runner.up(
        port=port,
        management_port=management_port,
        features=FEATURES,
        home=home,
        timeout=900,
        progress=False,
    )
    return time.monotonic() - started


def main() -> None:
    user_zip = dist.cached_zip(KEYCLOAK_VERSION)
    with tempfile.TemporaryDirectory(prefix="kcprov-bench-") as tmp:
        root = Path(tmp)
        os.environ["KCPROV_CACHE_DIR"] = str(root / "cache")
        folder = dist.cache_root() / KEYCLOAK_VERSION
        folder.mkdir(parents=True)
        for source in (user_zip, user_zip.with_name(user_zip.name + ".sha1")):
            (folder / source.name).symlink_to(source)
        dist.ensure_dist(KEYCLOAK_VERSION, progress=False)

        load_before = os.getloadavg()[0]
        rows = []
        first, second = root / "home-1", root / "home-2"
        try:
            rows.append(("cold (fresh home, first build)", timed_up(first)))
            runner.down(first)
            rows.append(("warm (restart, same home)", timed_up(first)))
            runner.down(first)
            rows.append(("fresh home, cached build", timed_up(second)))
        finally:
            runner.down(first)
            runner.down(second)

    load_after = os.getloadavg()[0]
    print(
        f"Keycloak {KEYCLOAK_VERSION}, {os.cpu_count()} CPUs, "
        f"load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print(f"{'start':34} {'seconds to ready':>17}")
    for name, seconds in rows:
        print(f"{name:34} {seconds:17.1f}")


if __name__ == "__main__":
    main()
