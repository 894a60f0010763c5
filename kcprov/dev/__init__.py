"""A real Keycloak on this machine for development and tests (native or Docker).

Progress goes to stderr so that stdout stays clean for results and ``--json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


@contextmanager
def progress_status(text: str, enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """Show a spinner with ``text`` while a slow step runs; yields an updater.

    Off a terminal (CI logs) the text is printed once instead of animated.
    """
    if not enabled:
        yield lambda _text: None
    elif not err_console.is_terminal:
        err_console.print(text, markup=False)
        yield lambda _text: None
    else:
        with err_console.status(text) as status:
            yield status.update
