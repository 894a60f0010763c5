"""Reading files kcprov is given, and writing files that may hold secrets.

Reading: every file a user names (realm files, var files, saved plans, CA
bundles) may be hostile or simply wrong: a FIFO that never ends, /dev/zero, a
directory, a symlink loop, a 2 GB log. `read_input` opens without blocking,
accepts only regular files, and reads at most a size cap, so each of these is
one clear error instead of a hang, an out-of-memory kill or a traceback.

Writing: a path to write comes from someone, and who chose it decides what it
may name (`resolve_output`, `write_output`). This is the path policy:

* Who chose the path (`origin`). ``"realm-file"``: an MCP server's `env_file`.
  In GitOps a pull request controls the realm file while kcprov runs with admin
  credentials, so the path must resolve (symlinks followed, ``..`` resolved)
  to a place under the current working directory (the working tree), or under
  a directory the operator allowed with ``--allow-outside DIR``. An absolute
  path is outside unless it resolves under one of those. ``"command-line"``:
  an operator's explicit ``-o PATH``; any place is allowed, because the
  operator typed it, but the type checks below still apply.
* What the target is. kcprov writes only regular files. It refuses, naming
  the path and what it is: a directory, a FIFO (a write would block forever),
  a character or block device (``/dev/null``, ``/dev/full``: to discard a plan,
  leave out ``-o``), a socket, a symlink to any of those, a symlink loop, and
  anything under /dev, /proc or /sys (``-o /dev/stdout`` would replace the
  file the shell redirected stdout to; ``-o -`` writes to stdout instead).
  A symlink to a regular file is followed: the file it names is rewritten and
  the symlink stays a symlink. Names with control characters (newlines,
  terminal escapes) are refused, so every path kcprov prints is shown as is.
* Directories. None is ever created outside the working tree. For an
  env_file under the working tree, missing parent directories are created
  (an MCP server's folder may not exist before its first env file); every
  other missing directory is an error ("directory /missing/dir does not
  exist"), never created.
* How. Temp file in the target's directory (created 0600 by `mkstemp`, so no
  other user can read it, not even for a moment), fsync, rename over the
  target, fsync the directory: a reader, or a run killed at any point, sees
  the old file or the new one, never half of one. A killed run may leave its
  temp file (``.NAME.*.tmp``, mode 0600) beside the target. When the write
  fails (no space, read-only filesystem, no permission, file size limit) the
  temp file is removed, the target is untouched, and the error is one
  OutputFileError with the reason.

Checks and writes are separate steps so a caller can check every target
before changing anything (`kcprov apply` checks the env files before it
touches Keycloak). The policy defends against a hostile realm file and a
mistyped command line, not against a local user racing kcprov to swap
directories for symlinks between the check and the write: such a user can
write those files without kcprov.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

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


def _open_nonblocking(name: str | os.PathLike[str]) -> tuple[int, os.stat_result, str | None]:
    """A read-only descriptor of `name`, its stat, and what it is when not a regular file (`file_kind`).

    O_NONBLOCK so that opening a FIFO cannot hang; O_NOCTTY so that a terminal
    never becomes ours. The type comes from the open descriptor, so it is that
    of the file read, not of a path swapped in between. The caller closes the
    descriptor; OSError as os.open raises it.
    """
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    return fd, info, file_kind(info.st_mode)


def read_input(path: str | os.PathLike[str], limit: int = MAX_INPUT_BYTES, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes; InputFileError otherwise.

    Opened by `_open_nonblocking`: a FIFO cannot hang it.
    """
    name = os.fspath(path)
    try:
        fd, info, kind = _open_nonblocking(name)
    except OSError as exc:
        raise InputFileError(f"{name}: cannot read the {what}: {_reason(exc)}.", hint=_hint(exc)) from None
    try:
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
        errno.ELOOP: "check where the symlinks on that path point",
        errno.ENOTDIR: "a part of the path is a file, not a directory: check the path",
        errno.EPERM: "check the file's and its directory's permissions",
        errno.ENOSPC: "free space on that filesystem, or write the file elsewhere",
        errno.EDQUOT: "free space within your disk quota, or write the file elsewhere",
        errno.EROFS: "the filesystem is read-only: write the file elsewhere",
        errno.EFBIG: "the file is over the size limit of this process (ulimit -f)",
    }.get(exc.errno)


# ---------------------------------------------------------------- writing

Origin = Literal["realm-file", "command-line"]
"""Who chose a path to write: a realm file (untrusted) or the operator's command line."""

_SPECIAL_ROOTS = (Path("/dev"), Path("/proc"), Path("/sys"))
"""Device and process filesystems: their names are handles, not files to keep."""


class OutputFileError(KcprovError):
    """A file kcprov was asked to write is refused by the path policy, or could not be written."""


def name_problem(name: str) -> tuple[str, str] | None:
    """What is wrong with a path to write as text alone, as (message, hint); None when nothing is.

    Wrong in any directory and with any --allow-outside, so `kcprov validate`
    reports it offline: empty, a control character (a newline or a terminal
    escape would reach every message that shows the path), or a name that
    can only be a directory (ends in '/', '.' or '..').
    """
    if not name or not name.isprintable():
        return "is empty or holds a control character", "name the file in printable characters"
    if os.path.basename(name) in ("", ".", ".."):
        return "names a directory", "name a file: the path must not end in '/', '.' or '..'"
    return None


def resolve_output(
    path: str | os.PathLike[str],
    *,
    origin: Origin,
    allow_outside: Iterable[str | os.PathLike[str]] = (),
    what: str = "file",
) -> Path:
    """The real path (symlinks resolved) kcprov may write for `path`; OutputFileError if the policy refuses it.

    Changes nothing. The returned path's directory exists, except for an
    env_file under the working tree whose missing directories `write_output`
    creates. `allow_outside` only widens where a realm file may write.
    """
    name = os.fspath(path)
    problem = name_problem(name)
    if problem:
        raise OutputFileError(f"{name!r}: the {what} path {problem[0]}.", hint=problem[1])
    real = Path(os.path.realpath(name))
    tree = Path.cwd().resolve()
    if origin == "realm-file" and not _inside(real, tree, allow_outside):
        where = "is" if name == str(real) else f"resolves to {real},"
        raise OutputFileError(
            f"{name}: the {what} {where} outside the working directory {tree}.",
            hint="env files are written under the current directory: use a relative path that stays inside it, "
                 "or pass --allow-outside DIR to allow a directory outside it",
        )
    _check_target(name, what, origin)
    for place in (Path(os.path.abspath(name)), real):
        if any(place.is_relative_to(root) for root in _SPECIAL_ROOTS):
            raise OutputFileError(f"{name}: the {what} would be on {place}, a device or process filesystem, "
                                  "not a file kcprov can keep.", hint=_special_hint(origin))
    _check_directory(name, real, what, creatable=origin == "realm-file" and real.is_relative_to(tree))
    return real


def write_output(
    path: str | os.PathLike[str],
    content: str | bytes,
    *,
    origin: Origin,
    allow_outside: Iterable[str | os.PathLike[str]] = (),
    what: str = "file",
) -> bool:
    """Check `path` with `resolve_output`, create an env file's missing directories in the tree, write privately.

    Returns what `write_private` returns: False when the file already held `content`.
    """
    target = resolve_output(path, origin=origin, allow_outside=allow_outside, what=what)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFileError(f"{os.fspath(path)}: cannot create directory {target.parent} for the {what}: "
                              f"{_reason(exc)}.", hint=_hint(exc)) from None
    return write_private(target, content)


def write_private(path: str | os.PathLike[str], content: str | bytes) -> bool:
    """Atomically write `content` to the regular file `path` with mode 0600, in a directory that exists.

    Returns False (and leaves the file untouched, mtime included) when the
    file already holds exactly `content`, so reruns are byte-identical no-ops.
    Raises OutputFileError when `path` is not a regular file or the write fails;
    the target is then unchanged and no temp file is left.
    """
    target = Path(path)
    data = content.encode() if isinstance(content, str) else content
    if _holds(target, data):
        try:
            if stat.S_IMODE(target.stat().st_mode) != 0o600:
                os.chmod(target, 0o600)
        except OSError as exc:
            raise OutputFileError(f"cannot make {target} private (mode 0600): {_reason(exc)}.", hint=_hint(exc)) from None
        return False
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(target, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _write_error(target, exc) from None
        raise
    _sync_directory(target.parent)
    return True


def _inside(real: Path, tree: Path, allow_outside: Iterable[str | os.PathLike[str]]) -> bool:
    return real.is_relative_to(tree) or any(real.is_relative_to(os.path.realpath(d)) for d in allow_outside)


def _special_hint(origin: Origin) -> str:
    if origin == "command-line":
        return "use `-o -` to write to standard output, or leave out -o to save nothing"
    return "name a regular file under the current directory"


def _check_target(name: str, what: str, origin: Origin) -> None:
    """Refuse an existing target (symlinks followed, as a write would) that is not a regular file."""
    try:
        info = os.stat(name)
    except FileNotFoundError:
        return  # a new file, or a symlink to one: `_check_directory` checks where it goes
    except OSError as exc:
        raise OutputFileError(f"{name}: cannot write the {what}: {_reason(exc)}.", hint=_hint(exc)) from None
    kind = file_kind(info.st_mode)
    if kind is None:
        return
    if kind == "a directory":
        hint = "name a file inside it"
    elif origin == "command-line":
        hint = f"kcprov writes only regular files; {_special_hint(origin)}"
    else:
        hint = "kcprov writes only regular files: remove it or name another file"
    real = os.path.realpath(name)
    shown = name if real == os.path.abspath(name) else f"{name} (a symlink to {real})"
    raise OutputFileError(f"{shown}: the {what} is {kind}, not a regular file.", hint=hint)


def _check_directory(name: str, real: Path, what: str, creatable: bool) -> None:
    """The directory of `real` exists, or may be created (`creatable`); its nearest existing ancestor is a directory."""
    ancestor = real.parent
    while not os.path.lexists(ancestor):
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputFileError(f"{name}: cannot write the {what}: {ancestor} is not a directory.", hint="check the path")
    if ancestor != real.parent and not creatable:
        raise OutputFileError(f"{name}: cannot write the {what}: directory {real.parent} does not exist.",
                              hint="create it first, or name a file in an existing directory")


def _holds(target: Path, data: bytes) -> bool:
    """Whether the regular file `target` holds exactly `data` (False if missing); refuses a non-regular file.

    Opened by `_open_nonblocking`, so a FIFO put in the file's place is refused, not waited on.
    """
    try:
        fd, info, kind = _open_nonblocking(target)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _write_error(target, exc) from None
    try:
        if kind:
            raise OutputFileError(f"{target}: the file is {kind}, not a regular file.",
                                  hint="kcprov writes only regular files: remove it or name another file")
        return info.st_size == len(data) and b"".join(iter(lambda: os.read(fd, 1 << 20), b"")) == data
    except OSError as exc:
        raise _write_error(target, exc) from None
    finally:
        os.close(fd)


def _sync_directory(directory: Path) -> None:
    """Make the rename durable: a crash after it must not bring the old file back."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass  # some filesystems cannot sync a directory; the file itself is written and synced


def _write_error(target: Path, exc: OSError) -> OutputFileError:
    return OutputFileError(f"cannot write {target}: {_reason(exc)}; the file is unchanged.", hint=_hint(exc))
