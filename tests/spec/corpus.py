"""The realm-file corpus (bad/ and good/) and the expectation headers of its files.

A header is the file's leading `#` lines. Files whose bytes are not UTF-8
(UTF-16, UTF-32) keep their header in a sidecar `NAME.yaml.expect`; other
files are read as bytes (a NUL, a Latin-1 byte or CR line ends do not hide
the header).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kcprov.fileio import MAX_INPUT_BYTES

HERE = Path(__file__).parent
BAD = sorted((HERE / "bad").glob("*.yaml"))
GOOD = sorted((HERE / "good").glob("*.yaml"))
SECRET_VALUE = "hunter2"  # every inline secret in the corpus; must never appear in a message


@dataclass
class Expectation:
    line: int
    message: str
    hints: list[str] = field(default_factory=list)


@dataclass
class Header:
    """What a corpus file declares in its leading comments."""

    expects: list[Expectation]
    strict_secrets: bool
    vars: dict[str, str]
    max_input_size: int = MAX_INPUT_BYTES


def header_text(path: Path) -> str:
    sidecar = path.with_name(path.name + ".expect")
    if sidecar.exists():
        return sidecar.read_text(encoding="utf-8")
    return path.read_bytes().decode("utf-8-sig", errors="replace")


def read_header(path: Path) -> Header:
    """`# expect: LINE: text`, `# hint: text` (for the expect above), `# options: strict-secrets`,
    `# options: max-input-size=BYTES`, `# var: k=v`."""
    header = Header([], False, {})
    for line in header_text(path).splitlines():
        if not line.startswith("#"):
            break
        if m := re.match(r"# expect: (\d+): (.+)$", line):
            header.expects.append(Expectation(int(m[1]), m[2]))
        elif m := re.match(r"# hint: (.+)$", line):
            header.expects[-1].hints.append(m[1])
        elif line.strip() == "# options: strict-secrets":
            header.strict_secrets = True
        elif m := re.match(r"# options: max-input-size=(\d+)$", line):
            header.max_input_size = int(m[1])
        elif m := re.match(r"# var: ([^=]+)=(.*)$", line):
            header.vars[m[1]] = m[2]
    return header
