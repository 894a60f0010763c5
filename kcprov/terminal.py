"""Text from outside made safe to show on a terminal or write into a one-line field.

Names and messages kcprov prints come from realm files and from Keycloak's
answers (a client registered anonymously through DCR chooses its own name).
A terminal interprets escape sequences: `\\x1b]0;...` retitles the window,
`\\x1b[2J` clears it, `\\x1b[1A` rewrites the line above (e.g. a plan's
`- delete` line), and bidi overrides (U+202E) show text reversed. `printable`
replaces every control, bidi-override and zero-width character with a
visible escape, so what is shown is what is there; `shown` also escapes
rich markup, for text put inside a markup string.
"""

from __future__ import annotations

import re

from rich.markup import escape

_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_UNSAFE_OR_NEWLINE = re.compile(_UNSAFE.pattern[:-1] + r"\n]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, keep_newlines: bool = False) -> str:
    """`text` with control, bidi and zero-width characters written as \\xNN / \\uNNNN escapes.

    Newlines are escaped too (a name is one line) unless `keep_newlines`
    (messages of several lines); tabs are kept.
    """
    pattern = _UNSAFE if keep_newlines else _UNSAFE_OR_NEWLINE
    return pattern.sub(_visible, str(text))


def shown(text: object) -> str:
    """Text from outside, to put inside rich markup: prints exactly it (no markup, no terminal escapes)."""
    return escape(printable(text))
