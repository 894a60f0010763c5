"""Writing files that may hold secrets.

Files with secrets (dev state, env files, saved plans) are written atomically
(temp file in the same folder, fsync, rename) so a reader never sees half a
file, and created with mode 0600 so no other user can read them, not even for
the moment between create and chmod.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: str | os.PathLike[str], content: str | bytes) -> bool:
    """Atomically write ``content`` to ``path`` with mode 0600.

    Returns False (and leaves the file untouched, mtime included) when the
    file already holds exactly ``content``, so reruns are byte-identical no-ops.
    """
    target = Path(path)
    data = content.encode() if isinstance(content, str) else content
    try:
        if target.read_bytes() == data:
            if (target.stat().st_mode & 0o777) != 0o600:
                os.chmod(target, 0o600)
            return False
    except FileNotFoundError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return True
