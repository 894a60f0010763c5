"""Fixtures for the realm-file tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_test_env(monkeypatch):
    """Corpus files name REALM_TEST_* variables that must be unset unless a test sets them."""
    for name in [n for n in os.environ if n.startswith("REALM_TEST_")]:
        monkeypatch.delenv(name)
