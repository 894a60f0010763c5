"""Time loading a large realm file: render + parse + validate + checks (target: < 1 s for 1,000 clients).

    python bench/spec_load.py [--clients 1000] [--runs 5]

Writes a realm with N clients (each with scopes, roles, a mapper and, in the
templated variant, a `{{ env.X | default(...) }}` secret) to a temporary file,
loads it with `load_realm` several times, and prints the best and median times
and the time of each stage. As a yardstick that does not depend on how busy the
machine is, it also times plain `yaml.load` (libyaml) of the same text: the
floor for any tool that reads YAML with PyYAML. yamldoc reads libyaml's events
too, so its parse stage stays near that floor (about 1x); with ruamel.yaml's
pure-Python parser it was about 5x.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from kcprov.gcpause import collector_paused
from kcprov.spec import load_realm
from kcprov.spec.checks import check_realm
from kcprov.spec.models import RealmSpec
from kcprov.spec.template import render
from kcprov.spec.yamldoc import parse

_LIBYAML = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def realm_text(clients: int, templated: bool = True) -> str:
    lines = [
        "realm: bench",
        "settings: {access_token_lifespan: 5m, ssl_required: external, revoke_refresh_token: true}",
        "roles: [{name: mcp-user}, {name: mcp-admin}]",
        "client_scopes:",
        "  - name: mcp:tools",
        "    type: optional",
        "    include_in_token_scope: true",
        "    mappers:",
        "      - {name: audience-config, audience: 'http://localhost:3000'}",
        "clients:",
    ]
    for i in range(clients):
        lines += [
            f"  - client_id: client-{i:04d}",
            f"    name: Client {i}",
            "    confidential: true",
            f"    secret: \"{{{{ env.BENCH_SECRET_{i} | default('dev-secret') }}}}\""
            if templated
            else "    secret: dev-secret",
            "    service_account: true",
            "    standard_flow: false",
            "    default_scopes: [mcp:tools, basic, roles]",
            "    redirect_uris: ['http://localhost:5173/callback']",
            "    roles: [reader, {name: writer, description: Can write}]",
            "    service_account_roles: {realm: [mcp-user], realm-management: [view-users]}",
            "    mappers:",
            f"      - {{name: self-audience, client_audience: client-{i:04d}}}",
            "    attributes: {access.token.lifespan: 120, use.refresh.tokens: true}",
        ]
    lines += ["users:", "  - {username: alice, realm_roles: [mcp-user], client_roles: {client-0000: [reader]}}"]
    return "\n".join(lines) + "\n"


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def bench(clients: int, runs: int, templated: bool) -> None:
    text = realm_text(clients, templated)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(text, encoding="utf-8")
        totals = [timed(load_realm, path)[1] for _ in range(runs)]
    with collector_paused():  # as load_realm runs them
        rendered, t_render = timed(render, text, {})
        document, t_parse = timed(parse, rendered.text)
        spec, t_validate = timed(RealmSpec.model_validate, document.data)
        _, t_checks = timed(check_realm, spec)
    floor = min(timed(yaml.load, rendered.text, _LIBYAML)[1] for _ in range(runs))
    kind = "a templated secret per client" if templated else "no templates"
    print(f"{clients} clients, {kind}: {text.count(chr(10))} lines, {len(text) / 1024:.0f} KiB")
    print(
        f"  load_realm: best {min(totals):.3f} s, median {statistics.median(totals):.3f} s "
        f"over {runs} runs = {min(totals) / floor:.1f}x plain yaml.load ({floor:.3f} s)"
    )
    print(
        f"  stages: render {t_render:.3f} s, parse {t_parse:.3f} s, "
        f"validate {t_validate:.3f} s, checks {t_checks:.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for templated in (False, True):
        bench(args.clients, args.runs, templated)


if __name__ == "__main__":
    main()
