"""Writing output files so that a reader never sees half of one, and nothing else is harmed.

What happens depends on what the path names (issue 12):

* A regular file, or nothing yet: the text goes to a temporary file beside it, is
  ``fsync``-ed, then ``os.replace``-d over the path, so readers see the old file or the
  new one, never half. A new file gets the mode a plain ``open()`` gives under the
  umask (0o666 less the umask, applied by the kernel); a replaced file keeps its mode,
  as ``open(path, "w")`` would keep it, so a report a user made world-readable (or
  private) stays so. Missing parent directories are created.
* A symlink is followed (through chains) and the rule applied to its target; the link
  stays a link. A dangling link creates its target, as the shell's ``>`` does, but only
  in a directory that already exists: creating directories where a link points is never
  what a user asked for.
* A FIFO, a character device, or a name for a descriptor this process holds
  (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``): the text is written through.
  Such a target is never replaced, unlinked, truncated, or given a temporary file
  beside it. A FIFO nobody reads is :class:`NoReaderError` at once, not a hang.
* A directory is :class:`IsADirectoryError`; a socket or a block device is refused too:
  neither is a place a report can mean to go.

Every refusal is an :class:`OSError` whose ``strerror`` is one line for the user.
This module imports nothing of the package (layer 0).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

__all__ = ["NoReaderError", "write_atomic", "write_atomic_chunks", "writes_through"]

#: What ``open(path, "w")`` asks for; the kernel takes the umask off, as for any new file.
NEW_FILE_MODE = 0o666
#: A name for a descriptor a process already holds: /dev/stdout links to /proc/self/fd/1.
#: A string, compiled by re's cache when a path is first checked, not at import.
_DESCRIPTOR_NAME = r"^/(?:dev|proc/[^/]+)/fd/\d+$"
#: Links followed before giving up, as Linux does (MAXSYMLINKS).
_MAX_LINKS = 40
#: Room left in a 255-byte file name for the temporary name's prefix and suffix.
_TEMP_STEM_CHARS = 200


class NoReaderError(OSError):
    """A FIFO that no process is reading: opening it to write would wait forever."""


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half."""
    write_atomic_chunks(path, (text,))


def write_atomic_chunks(path: Path, chunks: Iterable[str]) -> None:
    """Write the ``chunks`` one after another to ``path``, by the rules of this module.

    The chunks are streamed, so a large results file is never one string in memory.
    If they raise part way, a regular file is left as it was; a stream has received
    what was written before.
    """
    if _names_a_descriptor(path):
        # The shell opened it: append, so nothing it already wrote is overwritten.
        _write_through(path, chunks, append=True)
        return
    try:
        info = os.stat(path)
    except FileNotFoundError:
        _write_new(path, chunks)
        return
    kind = info.st_mode
    if stat.S_ISDIR(kind):
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file path", str(path))
    if stat.S_ISREG(kind):
        _replace(Path(os.path.realpath(path)), chunks, mode=stat.S_IMODE(kind) & 0o777)
        return
    if stat.S_ISSOCK(kind) or stat.S_ISBLK(kind):
        what = "a socket" if stat.S_ISSOCK(kind) else "a block device"
        raise OSError(errno.EINVAL, f"is {what}, expected a file path", str(path))
    _write_through(path, chunks, append=False)


def writes_through(path: Path) -> bool:
    """Whether ``path`` is a stream written through (a FIFO, a device, ``/dev/stdout``).

    A stream's reader sees every write, so a caller that would rewrite a file
    (a checkpoint, then the final results) should write a stream once, at the end.
    """
    if _names_a_descriptor(path):
        return True
    try:
        kind = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(kind) or stat.S_ISCHR(kind)


# -- regular files --------------------------------------------------------------------------


def _write_new(path: Path, chunks: Iterable[str]) -> None:
    """Create the file at ``path``, or at the target of the dangling link ``path`` is."""
    if not os.path.islink(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, chunks, mode=None)
        return
    target = Path(os.path.realpath(path))
    if not target.parent.is_dir():
        message = f"is a symlink to {target}, whose directory does not exist"
        raise FileNotFoundError(errno.ENOENT, message, str(path))
    _replace(target, chunks, mode=None)


def _replace(target: Path, chunks: Iterable[str], mode: int | None) -> None:
    """A temporary file beside ``target``, written, synced, then renamed over it."""
    fd, temporary = _create_temporary(target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(target.parent)


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new empty file beside ``target``, created with the mode ``open()`` would give it.

    ``tempfile.mkstemp`` would make it 0600 whatever the umask, and changing the umask
    to compute the mode is not thread-safe; ``O_EXCL`` with 0o666 lets the kernel apply
    the umask (and any default ACL of the directory) exactly as for a plain ``open()``.
    """
    stem = target.name[:_TEMP_STEM_CHARS]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(100):
        temporary = target.parent / f".{stem}.{os.urandom(4).hex()}.tmp"
        try:
            return os.open(temporary, flags, NEW_FILE_MODE), temporary
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(target.parent))


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable; a file system that cannot sync a directory is fine."""
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- streams --------------------------------------------------------------------------------


def _names_a_descriptor(path: Path) -> bool:
    """Whether ``path``, or a link on its way, is /dev/stdout, /dev/fd/N or /proc/*/fd/N.

    Resolving such a name would give ``pipe:[1234]`` or the file the shell redirected
    to; either way the write must go through the descriptor, not replace a file.
    """
    current = os.path.abspath(path)
    for _ in range(_MAX_LINKS):
        if re.match(_DESCRIPTOR_NAME, current):
            return True
        if not os.path.islink(current):
            return False
        link = os.readlink(current)
        current = os.path.abspath(os.path.join(os.path.dirname(current), link))
    return False


def _write_through(path: Path, chunks: Iterable[str], *, append: bool) -> None:
    """Open ``path`` as it is, never truncated or replaced, and write the chunks to it."""
    # O_NONBLOCK only for the open: a FIFO without a reader fails with ENXIO at once
    # instead of blocking until one comes. The writes then block as usual.
    flags = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_APPEND if append else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise _unopenable(path) from None
        raise
    os.set_blocking(fd, True)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for chunk in chunks:
            handle.write(chunk)


def _unopenable(path: Path) -> OSError:
    """Why opening ``path`` to write gave ENXIO: a FIFO without a reader, or a socket."""
    with suppress(OSError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            return OSError(errno.ENXIO, "is a socket, expected a file path", str(path))
    message = "nothing is reading this FIFO; start its reader before writing to it"
    return NoReaderError(errno.ENXIO, message, str(path))
