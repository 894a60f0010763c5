"""The live state's fingerprint: what a saved plan compares to see that the realm moved."""

from __future__ import annotations

import hashlib
import json

from kcprov.secret import Secret, public
from kcprov.state import LiveState, RawRealm


def state(objects: dict, owned: dict | None = None) -> LiveState:
    return LiveState(realm="r", exists=True, objects=objects, owned=owned or {}, raw=RawRealm("r", {}))


def test_the_fingerprint_hashes_the_state_with_secrets_masked():
    objects = {"client": {"app": {"secret": Secret("s3cret"), "redirect_uris": ["b", "a"], "pair": ("x", 1)}}}
    expected = json.dumps({"exists": True, "objects": public(objects), "owned": {"client": ["app", "web"]}},
                          sort_keys=True, default=str)
    live = state(objects, {"client": {"web", "app"}})
    assert live.fingerprint == hashlib.sha256(expected.encode()).hexdigest()  # unchanged: older saved plans stay valid
    assert "s3cret" not in expected


def test_a_changed_field_moves_the_fingerprint_a_changed_secret_does_not():
    base = state({"client": {"app": {"secret": Secret("one"), "enabled": True}}}).fingerprint
    assert state({"client": {"app": {"secret": Secret("two"), "enabled": True}}}).fingerprint == base
    assert state({"client": {"app": {"secret": Secret("one"), "enabled": False}}}).fingerprint != base
