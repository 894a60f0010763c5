"""`python -m kcprov`: the same command line as the `kcprov` script (for a venv without it on PATH)."""

from kcprov.cli import run

run()
