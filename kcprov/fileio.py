"""Reading files kcprov is given, and writing files that may hold secrets.

Reading: every file a user names (realm files, var files, saved plans, CA
bundles) may be hostile or simply wrong: a FIFO that never ends, /dev/zero, a
directory, a symlink loop, a 2 GB log. `read_input` opens without blocking,
accepts only regular files, and reads at most a size cap, so each of these is
one clear error instead of a hang, an out-of-memory kill or a traceback.

Writing: files with secrets (dev state, env files, saved plans) are written
atomically (temp file in the same folder, fsync, rename) so a reader never
sees half a file, and created with mode 0600 so no other user can read them,
not even for the moment between create and chmod.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from kcprov.errors import KcprovError

MAX_INPUT_BYTES = 10 * 1024 * 1024
"""Default cap on an input file: far above any realm file (1,000 clients are ~560 KiB)."""


class InputFileError(KcprovError):
    """An input file cannot be read as a regular file within the size cap."""


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str | None:
    """What a non-regular file is, for messages; None for a regular file."""
    return next((label for test, label in _KINDS if test(mode)), None if stat.S_ISREG(mode) else "not a regular file")


def read_input(path: str | os.PathLike[str], limit: int = MAX_INPUT_BYTES, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes; InputFileError otherwise.

    The file is opened with O_NONBLOCK so that opening a FIFO cannot hang, and
    its type is checked on the open descriptor (no race with a swapped path).
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise InputFileError(f"{name}: cannot read the {what}: {_reason(exc)}.", hint=_hint(exc)) from None
    try:
        info = os.fstat(fd)
        kind = file_kind(info.st_mode)
        if kind:
            raise InputFileError(f"{name}: the {what} is {kind}, not a regular file.",
                                 hint="name a regular file (kcprov never reads from pipes or devices)")
        if info.st_size > limit:
            raise InputFileError(f"{name}: the {what} is {info.st_size:,} bytes, over the {limit:,}-byte limit.",
                                 hint="check it is the right file; --max-input-size raises the limit")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # grew while we read it
            raise InputFileError(f"{name}: the {what} is over the {limit:,}-byte limit.",
                                 hint="check it is the right file; --max-input-size raises the limit")
        return b"".join(chunks)
    except OSError as exc:
        raise InputFileError(f"{name}: cannot read the {what}: {_reason(exc)}.", hint=_hint(exc)) from None
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links (a symlink loop?)"
    return (exc.strerror or type(exc).__name__).lower()


def _hint(exc: OSError) -> str | None:
    return {
        errno.ENOENT: "check the path (relative paths start at the current directory)",
        errno.EACCES: "check the file's permissions",
        errno.EISDIR: "name a file, not a directory",
    }.get(exc.errno)


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
