"""The realm-file corpus (bad/ and good/) and the expectation headers of its files."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

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


def read_header(path: Path) -> Header:
    """`# expect: LINE: text`, `# hint: text` (for the expect above), `# options: strict-secrets`, `# var: k=v`."""
    expects: list[Expectation] = []
    strict, variables = False, {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if m := re.match(r"# expect: (\d+): (.+)$", line):
            expects.append(Expectation(int(m[1]), m[2]))
        elif m := re.match(r"# hint: (.+)$", line):
            expects[-1].hints.append(m[1])
        elif line.strip() == "# options: strict-secrets":
            strict = True
        elif m := re.match(r"# var: ([^=]+)=(.*)$", line):
            variables[m[1]] = m[2]
    return Header(expects, strict, variables)
