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
