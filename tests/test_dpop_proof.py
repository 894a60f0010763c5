"""Unit tests of the reference server's DPoP proof checker (examples/mcp-server/dpop.py) and of the
realm file's private_key_jwt / DPoP fields. Pure functions: no Keycloak, no server."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import jwt
import pytest

from kcprov.spec.problems import SpecError
from kcprov.spec.loader import load_realm
from m2m_support import SigningKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "mcp-server"))
dpop = importlib.import_module("dpop")

URL = "https://mcp.example.com/mcp"
TOKEN = "header.payload.signature"


@pytest.fixture
def key() -> SigningKey:
    return SigningKey()


def check(proof: str, checker=None, **kw) -> str:
    checker = checker or dpop.ProofChecker()
    return checker.check(proof, **{"method": "POST", "url": URL, "access_token": TOKEN, **kw})


def test_a_valid_proof_gives_its_key_thumbprint(key):
    assert check(key.proof("POST", URL, TOKEN)) == key.thumbprint


@pytest.mark.parametrize("htu", ["HTTPS://MCP.example.com:443/mcp", "https://mcp.example.com/mcp?x=1#f"])
def test_htu_is_compared_normalised(key, htu):
    assert check(key.proof("POST", htu, TOKEN)) == key.thumbprint


@pytest.mark.parametrize(("make", "reason"), [
    (lambda k: k.proof("GET", URL, TOKEN), "htm"),
    (lambda k: k.proof("POST", "https://mcp.example.com/other", TOKEN), "htu"),
    (lambda k: k.proof("POST", URL, "another.token.value"), "ath"),
    (lambda k: k.proof("POST", URL), "ath"),
    (lambda k: k.proof("POST", URL, TOKEN, iat=1), "too old"),
    (lambda k: k.proof("POST", URL, TOKEN, iat=4_000_000_000), "future"),
    (lambda k: jwt.encode({"htm": "POST", "htu": URL, "iat": 1, "jti": "x"}, k.pem, algorithm="ES256",
                          headers={"typ": "JWT", "jwk": k.public}), "typ"),
    (lambda k: jwt.encode({"htm": "POST", "htu": URL}, "s" * 32, algorithm="HS256",
                          headers={"typ": "dpop+jwt"}), "alg"),
    (lambda k: jwt.encode({"htm": "POST", "htu": URL}, k.pem, algorithm="ES256",
                          headers={"typ": "dpop+jwt", "jwk": {**k.public, "d": "AAAA"}}), "private"),
    (lambda k: jwt.encode({"htm": "POST", "htu": URL}, k.pem, algorithm="ES256",
                          headers={"typ": "dpop+jwt", "jwk": SigningKey().public}), "signature"),
    (lambda k: "not a jwt", "not a JWT"),
])
def test_a_bad_proof_is_refused_with_a_reason(key, make, reason):
    with pytest.raises(dpop.ProofRejected, match=reason) as caught:
        check(make(key))
    assert TOKEN not in str(caught.value)


def test_a_proof_is_accepted_once():
    key, checker = SigningKey(), dpop.ProofChecker()
    proof = key.proof("POST", URL, TOKEN)
    check(proof, checker)
    with pytest.raises(dpop.ProofRejected, match="used before"):
        check(proof, checker)


def test_the_replay_cache_forgets_expired_entries_and_stays_bounded():
    cache = dpop.ReplayCache(capacity=2)
    assert cache.first_use("a", expires_at=10, now=0)
    assert not cache.first_use("a", expires_at=10, now=5)
    assert cache.first_use("a", expires_at=20, now=11)  # expired: forgotten
    assert cache.first_use("b", expires_at=30, now=12) and cache.first_use("c", expires_at=30, now=12)
    assert len(cache) == 2


def test_unknown_algorithms_are_a_config_error():
    with pytest.raises(ValueError, match="HS256"):
        dpop.parse_algorithms(["ES256", "HS256"])


CLIENT = """realm: r
clients:
  - client_id: svc
    service_account: true
{extra}"""


@pytest.mark.parametrize(("extra", "message"), [
    ("    auth: private_key_jwt\n", "exactly one of jwks_url or jwks"),
    ("    auth: private_key_jwt\n    secret: x\n    jwks_url: https://a.example/j\n", "sets secret"),
    ("    jwks_url: https://a.example/j\n", "does not authenticate with private_key_jwt"),
    ("    auth: private_key_jwt\n    jwks_url: file:///etc/j\n", "not an absolute http"),
    ("    auth: private_key_jwt\n    jwks:\n      keys:\n        - {kty: RSA, n: AQAB, e: AQAB, p: SECRETP}\n",
     "private key material (p)"),
])
def test_private_key_jwt_fields_are_checked_at_file_line(extra, message, tmp_path):
    path = tmp_path / "realm.yaml"
    path.write_text(CLIENT.format(extra=extra))
    with pytest.raises(SpecError) as caught:
        load_realm(path)
    text = str(caught.value)
    assert message in text and "realm.yaml:" in text and "SECRETP" not in text
