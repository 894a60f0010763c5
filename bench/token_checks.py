"""Token checks per second: local JWT verification vs RFC 7662 introspection, against a real Keycloak.

    python bench/token_checks.py [-n 2000] [--concurrency 16] [--keep]

Keycloak and admin credentials come from KCPROV_URL / KCPROV_USER / KCPROV_PASSWORD,
else from the dev server of `kcprov dev up`.

It creates a throw-away realm (``ex-token-bench``) with an ``mcp:tools`` client
scope whose audience mappers put the MCP resource URL and the introspection
client into ``aud``, a confidential caller with a service account, and a
confidential introspection client. It then takes one client-credentials token
and runs it through the reference server's verifier classes
(examples/mcp-server/token_verifier.py), the same code the server uses per
request, and prints checks per second for each mode.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "mcp-server"))

from token_verifier import IntrospectionTokenVerifier, JwtTokenVerifier  # noqa: E402

REALM = "ex-token-bench"
RESOURCE = "http://localhost:3000/mcp"
CALLER, CALLER_SECRET = "bench-caller", "bench-caller-secret"
INTROSPECTOR, INTROSPECTOR_SECRET = "calculator-introspector", "bench-introspector-secret"


class Admin:
    """The few Admin REST calls the benchmark needs."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=30)
        response = self.http.post(
            "/realms/master/protocol/openid-connect/token",
            data={"grant_type": "password", "client_id": "admin-cli", "username": user, "password": password},
        )
        response.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, f"/admin{path}", **kwargs)
        if response.status_code >= 400:
            raise SystemExit(f"{method} {path}: HTTP {response.status_code} {response.text[:300]}")
        return response

    def version(self) -> str:
        return self.call("GET", "/serverinfo").json().get("systemInfo", {}).get("version", "?")

    def client_uuid(self, client_id: str) -> str:
        return self.call("GET", f"/realms/{REALM}/clients", params={"clientId": client_id}).json()[0]["id"]

    def create_realm(self) -> None:
        if self.http.get(f"/admin/realms/{REALM}").status_code == 200:
            self.call("DELETE", f"/realms/{REALM}")
        self.call("POST", "/realms", json={"realm": REALM, "enabled": True, "accessTokenLifespan": 900})
        for client_id, secret, service_account in (
            (INTROSPECTOR, INTROSPECTOR_SECRET, False),
            (CALLER, CALLER_SECRET, True),
        ):
            self.call(
                "POST",
                f"/realms/{REALM}/clients",
                json={
                    "clientId": client_id,
                    "publicClient": False,
                    "clientAuthenticatorType": "client-secret",
                    "secret": secret,
                    "serviceAccountsEnabled": service_account,
                    "standardFlowEnabled": False,
                    "directAccessGrantsEnabled": False,
                },
            )
        audience = {"access.token.claim": "true", "id.token.claim": "false", "introspection.token.claim": "true"}
        self.call(
            "POST",
            f"/realms/{REALM}/client-scopes",
            json={
                "name": "mcp:tools",
                "protocol": "openid-connect",
                "attributes": {"include.in.token.scope": "true", "display.on.consent.screen": "true"},
                "protocolMappers": [
                    {
                        "name": "audience-resource",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-audience-mapper",
                        "config": {**audience, "included.custom.audience": RESOURCE},
                    },
                    {
                        # Keycloak 26.6+ reports a token inactive to an introspecting client
                        # that is not in its audience.
                        "name": "audience-introspector",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-audience-mapper",
                        "config": {**audience, "included.client.audience": INTROSPECTOR},
                    },
                ],
            },
        )
        scopes = self.call("GET", f"/realms/{REALM}/client-scopes").json()
        scope_id = next(s["id"] for s in scopes if s["name"] == "mcp:tools")
        self.call("PUT", f"/realms/{REALM}/clients/{self.client_uuid(CALLER)}/default-client-scopes/{scope_id}")

    def delete_realm(self) -> None:
        self.call("DELETE", f"/realms/{REALM}")


def client_credentials_token(url: str) -> str:
    response = httpx.post(
        f"{url}/realms/{REALM}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": CALLER, "client_secret": CALLER_SECRET},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["access_token"]


async def measure(verifier, token: str, n: int, concurrency: int) -> dict[str, float]:
    """Run ``n`` verifications, ``concurrency`` at a time; every one must succeed."""
    latencies: list[float] = []
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            start = time.perf_counter()
            access = await verifier.verify_token(token)
            latencies.append(time.perf_counter() - start)
            if access is None:
                raise SystemExit(f"{type(verifier).__name__} refused a valid token")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "checks_per_s": n / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000,
    }


async def run(url: str, token: str, n_jwt: int, n_introspection: int, concurrency: int) -> list[tuple[str, dict]]:
    issuer = f"{url}/realms/{REALM}"
    jwt_verifier = JwtTokenVerifier(
        issuer=issuer, jwks_url=f"{issuer}/protocol/openid-connect/certs", audiences=[RESOURCE]
    )
    introspection = IntrospectionTokenVerifier(
        introspection_url=f"{issuer}/protocol/openid-connect/token/introspect",
        client_id=INTROSPECTOR,
        client_secret=INTROSPECTOR_SECRET,
        issuer=issuer,
        audiences=[RESOURCE],
        http_client=httpx.AsyncClient(
            timeout=30, limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        ),
    )
    results = []
    try:
        start = time.perf_counter()
        if await jwt_verifier.verify_token(token) is None:
            raise SystemExit("the JWT verifier refused the benchmark token")
        results.append(("jwt, first check (fetches JWKS)", {"checks_per_s": 1 / (time.perf_counter() - start)}))
        if await introspection.verify_token(token) is None:  # warm-up; opens the connection
            raise SystemExit("the introspection verifier refused the benchmark token")
        results.append(("jwt, cached JWKS", await measure(jwt_verifier, token, n_jwt, 1)))
        results.append(("introspection, sequential", await measure(introspection, token, n_introspection, 1)))
        results.append(
            (
                f"introspection, {concurrency} in flight",
                await measure(introspection, token, n_introspection, concurrency),
            )
        )
    finally:
        await introspection.aclose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="JWT checks (default 5000)")
    parser.add_argument("--introspections", type=int, default=1000, help="introspection checks per run (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="introspections in flight (default 16)")
    parser.add_argument("--keep", action="store_true", help=f"keep the {REALM} realm afterwards")
    args = parser.parse_args()

    from kcprov.connection import settings_from_environment

    settings = settings_from_environment()  # KCPROV_URL/USER/PASSWORD or the dev server
    url = settings.url
    admin = Admin(url, settings.user, settings.password)
    print(f"Keycloak {admin.version()} at {url}, realm {REALM}")
    admin.create_realm()
    try:
        token = client_credentials_token(url)
        results = asyncio.run(run(url, token, args.n, args.introspections, args.concurrency))
    finally:
        if not args.keep:
            admin.delete_realm()

    print(f"{'mode':<36} {'checks/s':>10} {'p50 ms':>8} {'p95 ms':>8}")
    for name, r in results:
        p50 = f"{r['p50_ms']:8.3f}" if "p50_ms" in r else f"{'':>8}"
        p95 = f"{r['p95_ms']:8.3f}" if "p95_ms" in r else f"{'':>8}"
        print(f"{name:<36} {r['checks_per_s']:>10.1f} {p50} {p95}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
