"""Reading the operator's local files with a bound: a config, a password, known_hosts, a key.

``-c /dev/zero`` or ``password_file = "/dev/urandom"`` must fail at once with a clear line, not
grow memory until the process dies. Only regular files are read (a FIFO is opened without
blocking, then refused), and never more than the caller's limit. Each failure names its real
cause: a symbolic link loop, a link to nothing, a permission, not only "not found".
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB

BOM = b"\xef\xbb\xbf"


class FileProblem(ValueError):
    """A file that cannot be used: ``str()`` is one line naming the file and the problem."""


class FileMissing(FileProblem):
    """Nothing at the path (a broken symbolic link included): some callers fall back to a default."""


def _problem(exc: OSError, path: Path, what: str) -> FileProblem:
    """One line for an ``open``/``stat`` failure that names the real cause (a link loop is not "not found")."""
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return FileMissing(f"{what} {path} is a symbolic link to a file that does not exist")
        return FileMissing(f"{what} {path} does not exist")
    if exc.errno == errno.ELOOP:
        return FileProblem(f"{what} {path} is a symbolic link loop (too many levels of symbolic links)")
    if exc.errno == errno.EACCES:
        return FileProblem(f"{what} {path} is not readable (permission denied)")
    if exc.errno == errno.ENOTDIR:
        return FileProblem(f"{what} {path} cannot be read (a part of the path is not a directory)")
    if exc.errno == errno.ENAMETOOLONG:
        return FileProblem(f"{what} path is too long ({len(str(path))} characters)")
    return FileProblem(f"{what} {path} cannot be read ({exc.strerror or exc.__class__.__name__})")


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit >= MIB and limit % MIB == 0 else f"{limit // KIB} KiB"


def _check_stat(info: os.stat_result, path: Path, limit: int, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a device, FIFO or socket"
        raise FileProblem(f"{what} {path} is not a regular file (it is {kind})")
    if info.st_size > limit:
        raise FileProblem(f"{what} {path} is larger than {_size(limit)}")


def read_bytes(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or :class:`FileProblem`."""
    path = Path(path).expanduser()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _problem(exc, path, what) from None
    try:
        _check_stat(os.fstat(fd), path, limit, what)
        chunks: list[bytes] = []
        left = limit + 1  # one byte more than allowed tells a file that grew meanwhile
        while left > 0:
            chunk = os.read(fd, min(left, 64 * KIB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise _problem(exc, path, what) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise FileProblem(f"{what} {path} is larger than {_size(limit)}")
    return data


def read_text(path: str | Path, limit: int, what: str) -> str:
    """UTF-8 text of a bounded regular file; a byte-order mark or other encoding is named."""
    data = read_bytes(path, limit, what)
    if data.startswith(BOM):
        raise FileProblem(f"{what} {Path(path).expanduser()} starts with a UTF-8 byte-order mark; save it without BOM")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileProblem(f"{what} {Path(path).expanduser()} is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8") from None
