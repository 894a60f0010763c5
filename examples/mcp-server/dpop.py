"""DPoP proof checks (RFC 9449 §4.3, §7.1) for the reference MCP server.

A DPoP-bound access token is useless without the private key it is bound to:
every request carries a fresh proof, a JWT signed with that key, naming the
request's method and URL and the hash of the token. ``ProofChecker.check``
applies RFC 9449's list to one proof and returns the RFC 7638 thumbprint of its
key, which the caller compares with the token's ``cnf.jkt``:

* ``typ`` is ``dpop+jwt``; ``alg`` is one of the accepted asymmetric
  algorithms; ``jwk`` is a public key (a private member is refused), and the
  signature verifies with it (PyJWT);
* ``htm`` is the request method, ``htu`` the request URL, both compared after
  normalising (scheme and host lower case, default port dropped, no query or
  fragment: §4.3 says to ignore them);
* ``iat`` is at most ``max_age`` seconds old and at most ``leeway`` seconds
  ahead; ``jti`` was not seen before within that window (``ReplayCache``);
* ``ath`` is base64url(SHA-256(access token)).

Thumbprints come from jwcrypto; signatures from PyJWT. Nothing here logs or
echoes the proof or the token; a reason is short text chosen here.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt
from jwcrypto import jwk as jwcrypto_jwk
from jwt import PyJWK

#: What the server accepts unless configured otherwise (asymmetric only, as Keycloak issues for DPoP).
DEFAULT_ALGORITHMS = ("ES256", "ES384", "ES512", "PS256", "RS256", "EdDSA")
#: JWK members of private keys (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: Longest proof read (a proof is a few hundred bytes; an RSA key makes it ~1 KB).
MAX_PROOF_LENGTH = 8192
MAX_JTI_LENGTH = 256
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ProofRejected(Exception):
    """Why a proof was refused; the message is safe for a header or a log (no proof, no token)."""


def normalise_htu(url: str) -> str:
    """``url`` as RFC 9449 compares it: lower-case scheme and host, no default port, no query or fragment."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


def token_hash(access_token: str) -> str:
    """``ath``: base64url (no padding) of the SHA-256 of the token's ASCII bytes."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def thumbprint(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: what Keycloak puts in ``cnf.jkt``."""
    return jwcrypto_jwk.JWK(**public_jwk).thumbprint()


@dataclass
class ReplayCache:
    """``jti`` values seen within the proof window, bounded.

    Entries expire when their proof would be too old anyway. When full of live
    entries the oldest is dropped: a proof older than its successors then could
    be replayed until it expires, rather than every new proof being refused
    (a full cache must not lock every client out). Size it above the proofs a
    window holds at peak.
    """

    capacity: int = 10_000
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict, repr=False)

    def first_use(self, key: str, expires_at: float, now: float) -> bool:
        """Record ``key`` until ``expires_at``; False when it is already recorded (a replay)."""
        while self._seen:
            oldest, expiry = next(iter(self._seen.items()))
            if expiry > now:
                break
            del self._seen[oldest]
        expiry = self._seen.get(key)
        if expiry is not None and expiry > now:
            return False
        if len(self._seen) >= self.capacity:
            self._seen.popitem(last=False)
        self._seen[key] = expires_at
        return True

    def __len__(self) -> int:
        return len(self._seen)


@dataclass
class ProofChecker:
    """RFC 9449 §4.3 checks of one proof; see the module docstring."""

    algorithms: frozenset[str] = frozenset(DEFAULT_ALGORITHMS)
    #: Seconds after its ``iat`` a proof is still accepted.
    max_age: int = 60
    #: Seconds a proof's ``iat`` may be ahead of this server's clock.
    leeway: int = 5
    replay: ReplayCache = field(default_factory=ReplayCache)

    def check(self, proof: str, *, method: str, url: str, access_token: str, now: float | None = None) -> str:
        """Check ``proof`` for a request ``method url`` carrying ``access_token``; return the key's thumbprint."""
        now = time.time() if now is None else now
        if len(proof) > MAX_PROOF_LENGTH:
            raise ProofRejected("proof too long")
        try:
            header = jwt.get_unverified_header(proof)
        except jwt.PyJWTError:
            raise ProofRejected("proof is not a JWT") from None
        if header.get("typ") != "dpop+jwt":
            raise ProofRejected("proof typ is not dpop+jwt")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise ProofRejected("proof alg is not accepted")
        public_jwk = header.get("jwk")
        if not isinstance(public_jwk, dict):
            raise ProofRejected("proof header has no jwk")
        if PRIVATE_MEMBERS.intersection(public_jwk):
            raise ProofRejected("proof jwk holds a private key")
        try:
            key = PyJWK(public_jwk, algorithm=alg)
            claims = jwt.decode(proof, key.key, algorithms=[alg],
                                options={"require": ["iat", "jti", "htm", "htu"], "verify_iat": False})
        except jwt.PyJWTError:
            raise ProofRejected("proof signature or claims are invalid") from None
        except (ValueError, TypeError):  # a key PyJWK cannot build (wrong kty for alg, bad coordinates)
            raise ProofRejected("proof jwk is not a usable public key") from None

        if claims["htm"] != method:
            raise ProofRejected("proof htm does not match the request method")
        if not isinstance(claims["htu"], str) or normalise_htu(claims["htu"]) != normalise_htu(url):
            raise ProofRejected("proof htu does not match the request URL")
        iat = claims["iat"]
        if isinstance(iat, bool) or not isinstance(iat, (int, float)):
            raise ProofRejected("proof iat is not a number")
        if iat > now + self.leeway:
            raise ProofRejected("proof iat is in the future")
        if iat < now - self.max_age:
            raise ProofRejected("proof is too old")
        if claims.get("ath") != token_hash(access_token):
            raise ProofRejected("proof ath does not match the access token")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise ProofRejected("proof jti is missing or too long")
        try:
            jkt = thumbprint(public_jwk)
        except Exception:  # jwcrypto's own errors for members PyJWT ignored
            raise ProofRejected("proof jwk is not a usable public key") from None
        if not self.replay.first_use(f"{jkt} {jti}", iat + self.max_age, now):
            raise ProofRejected("proof was used before")
        return jkt


def parse_algorithms(names: Iterable[str]) -> frozenset[str]:
    """Accepted proof algorithms; only the asymmetric ones PyJWT knows."""
    known = set(DEFAULT_ALGORITHMS) | {"ES256K", "PS384", "PS512", "RS384", "RS512", "Ed25519"}
    chosen = frozenset(names)
    unknown = sorted(chosen - known)
    if unknown:
        raise ValueError(f"unsupported DPoP algorithm(s): {', '.join(unknown)}")
    return chosen
