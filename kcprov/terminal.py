"""Text from outside made safe to show on a terminal or write into a one-line field.

Names and messages kcprov prints come from realm files and from Keycloak's
answers (a client registered anonymously through DCR chooses its own name).
A terminal interprets escape sequences: `\\x1b]0;...` retitles the window,
`\\x1b[2J` clears it, `\\x1b[1A` rewrites the line above (e.g. a plan's
`- delete` line), and bidi overrides (U+202E) show text reversed. `printable`
replaces every control, bidi-override and zero-width character with a
visible escape, so what is shown is what is there; `shown` also escapes
rich markup, for text put inside a markup string.

Long messages (a plan's warnings run to 300 characters) are broken between
words to the terminal's width, continuation lines indented under the text
(`wrapped`); into a file or a pipe each stays one line, for grep and CI
logs. `QUIET` is the CLI's `-q`: the printing code shows only errors and
the final summary then.
"""

from __future__ import annotations

import re
import textwrap
from contextvars import ContextVar

from rich.markup import escape

QUIET: ContextVar[bool] = ContextVar("QUIET", default=False)

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


def wrapped(text: str, width: int | None, indent: int) -> str:
    """`text` broken between words into lines of at most `width` columns, each after the first indented by
    `indent` spaces; `width` None: one line. Never inside a word: a word longer than a line (a URL) stays
    whole, and hyphenated words (resource-indicators) are not split at the hyphen."""
    if width is None:
        return text
    return "\n".join(textwrap.wrap(text, width=max(width, indent + 20), subsequent_indent=" " * indent,
                                   break_long_words=False, break_on_hyphens=False))
