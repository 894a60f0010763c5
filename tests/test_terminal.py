"""What reaches the terminal shows what is there: no escape sequence from a file or from Keycloak runs."""

from __future__ import annotations

import pytest

from kcprov.terminal import printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("ok\x1b]0;pwned\x07", "ok\\x1b]0;pwned\\x07"),  # retitles the window
        ("\x1b[1A\x1b[2K- realm.prod", "\\x1b[1A\\x1b[2K- realm.prod"),  # rewrites the line above
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),  # bidi override
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("two\nlines\r", "two\\x0alines\\x0d"),
        ("c1\x9bcontrol", "c1\\x9bcontrol"),
        ("tab\tkept, café, 日本", "tab\tkept, café, 日本"),
    ],
)
def test_printable(raw, shown):
    assert printable(raw) == shown


def test_messages_keep_their_lines():
    assert printable("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"


def test_a_plan_shows_hostile_names_escaped():
    """A client registered anonymously through DCR names itself; its name must not drive the terminal."""
    import io

    from rich.console import Console

    from kcprov.plan.changes import Change, FieldDiff, Plan
    from kcprov.plan.render import render_text

    evil = "dcr-\x1b[2K\x1b[1A[red]x[/red]\u202e"
    plan = Plan("r", True, [Change("update", "client", evil, 2, (FieldDiff("name", "a\x1b]0;t\x07", "b"),))],
                managed_count=1, live_fingerprint="f", unmanaged=[("client", evil)])
    buffer = io.StringIO()
    render_text([plan], Console(file=buffer, width=200, color_system=None))
    text = buffer.getvalue()
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "dcr-\\x1b[2K\\x1b[1A[red]x[/red]\\u202e" in text  # markup shown literally, escapes visible


def test_emoji_codes_in_names_stay_text():
    """A client id `app:fire:1` (ids may hold ':') printed through kcprov's consoles is not turned into an emoji."""
    from kcprov.cli import err_console, out

    for console in (out, err_console):
        with console.capture() as captured:
            console.print("client.app:fire:1")
        assert captured.get().strip() == "client.app:fire:1"
