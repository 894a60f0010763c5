"""Benchmark: `kcprov export` of a realm with many clients: seconds and HTTP requests.

Not a test: it prints a table. Needs a running Keycloak: KCPROV_URL/KCPROV_USER/
KCPROV_PASSWORD, or the dev server (`kcprov dev up`). The realm (`bench-export-<n>`)
is made with bench/plan_apply.py's generator and kcprov's apply, and deleted at the
end. The first export of a run also computes the baseline (a throwaway realm);
the second finds it cached, as every later export of the same run does.

    python bench/export.py [--sizes 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plan_apply import measure, realm_spec  # noqa: E402

from kcprov.apply import apply_plan  # noqa: E402
from kcprov.connection import settings_from_environment  # noqa: E402
from kcprov.export import export_realm  # noqa: E402
from kcprov.keycloak import KeycloakClient  # noqa: E402
from kcprov.resources import KINDS  # noqa: E402
from kcprov.workflow import plan_realm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000")
    args = parser.parse_args()
    client = KeycloakClient(settings_from_environment())
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        name = f"bench-export-{size}"
        if client.get_optional(f"/admin/realms/{name}", "bench realm"):
            client.delete(f"/admin/realms/{name}", "bench realm")
        try:
            run = plan_realm(client, realm_spec(name, size), name)
            result = apply_plan(client, run.plan, run.live, run.desired, KINDS)
            assert result.ok, [str(e) for e in result.errors]
            first, first_s, first_req = measure(client, lambda: export_realm(client, name, with_secrets=True))
            second, second_s, second_req = measure(client, lambda: export_realm(client, name, with_secrets=True))
            assert first.text == second.text
            rows.append((size, len(first.text.splitlines()), first_s, first_req, second_s, second_req))
        finally:
            client.delete(f"/admin/realms/{name}", "bench realm")
    print(f"{'clients':>8} {'lines':>7} {'export s (+baseline)':>21} {'requests':>9} {'export s':>9} {'requests':>9}")
    for size, lines, first_s, first_req, second_s, second_req in rows:
        print(f"{size:>8} {lines:>7} {first_s:>21.2f} {first_req:>9} {second_s:>9.2f} {second_req:>9}")


if __name__ == "__main__":
    main()
