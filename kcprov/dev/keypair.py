"""A key pair for a `private_key_jwt` client (RFC 7523), for development.

The private key goes to a PEM file (PKCS#8, unencrypted) written atomically with
mode 0600 in a directory only its owner can enter; it is never printed. What is
printed is the public JWK Set, the `jwks:` value a realm file takes (the realm
file refuses any JWK with private members). Keys come from jwcrypto (already
installed with python-keycloak), which uses `cryptography`: no crypto here.

The `kid` is the key's RFC 7638 thumbprint, so the same key always gets the same
id and a client can sign assertions with `kid` = that value. An existing key
file is never replaced: a client whose key is overwritten stops working, and
the old key would be gone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from jwcrypto import jwk

from kcprov.errors import KcprovError
from kcprov.fileio import write_private

#: JWS algorithm -> jwcrypto key parameters. Keycloak's client-jwt authenticator accepts all of them.
ALGORITHMS = {
    "ES256": {"kty": "EC", "crv": "P-256"},
    "ES384": {"kty": "EC", "crv": "P-384"},
    "RS256": {"kty": "RSA", "size": 3072},
    "PS256": {"kty": "RSA", "size": 3072},
}


class KeyFileExists(KcprovError):
    """The private key file is there already; kcprov does not replace a key."""


@dataclass(frozen=True)
class KeyPair:
    """A fresh key pair: the private key as PEM (kept out of repr) and the public JWK."""

    private_pem: bytes = field(repr=False)
    public_jwk: dict

    @property
    def kid(self) -> str:
        return self.public_jwk["kid"]

    def jwks(self) -> dict:
        """The JWK Set for the realm file's `jwks:` (public members only)."""
        return {"keys": [self.public_jwk]}


def generate(alg: str = "ES256") -> KeyPair:
    """A new key pair for `alg` (one of ALGORITHMS); `kid` = RFC 7638 thumbprint."""
    key = jwk.JWK.generate(**ALGORITHMS[alg])
    public = json.loads(key.export_public())
    public.update(kid=key.thumbprint(), alg=alg, use="sig")
    return KeyPair(private_pem=key.export_to_pem(private_key=True, password=None), public_jwk=public)


def write_key(pair: KeyPair, out_dir: Path, name: str) -> Path:
    """Write the private key to `out_dir/<name>.pem` (0600, atomic); the directory is made 0700 if absent."""
    target = out_dir / f"{name}.pem"
    if target.exists() or target.is_symlink():
        raise KeyFileExists(f"{target} exists; kcprov does not replace a private key.",
                            hint="choose another --name or --out, or delete the old key first if no client uses it")
    try:
        out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KcprovError(f"cannot create {out_dir}: {os.strerror(exc.errno or 0)}.") from None
    write_private(target, pair.private_pem)
    return target
