"""Writing a document the operator named with ``-o`` (and every report the tool writes) without clobbering.

What is at the path decides how it is written:

* ``-``: standard output.
* nothing, or a regular file: atomically. A temporary file is created exclusively
  (``O_EXCL|O_NOFOLLOW``: a link planted at its name is never followed) in the same
  directory, written, flushed to disk, given the old file's mode and owner (a new file is
  0600: a record names hosts and paths), then renamed over the path. Any failure — a full
  disk, a quota, Ctrl-C, SIGTERM/SIGHUP — removes it: the old file stays as it was.
* a symbolic link: followed, as a shell redirect follows it; the file it names is replaced
  atomically and the link stays a link (the answer says where the text went). A link that
  names nothing is refused: creating a file wherever a link points is how a planted link
  redirects a write.
* a FIFO, a terminal, a character device (``/dev/null``) and the names of this process's
  streams (``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``, anything under ``/proc``): opened
  for writing the way a shell redirect opens it, nothing created, nothing replaced. A missing
  name directly under ``/dev`` is refused (a typo of a device must not become a file there).
* a directory, a block device or a socket: refused in one line.
"""

from __future__ import annotations

import errno
import os
import secrets
import signal
import stat
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from glance_tui.errors import UsageError

NEW_FILE_MODE = 0o600
STDOUT = "-"
_STREAM_NAMES = ("/dev/stdout", "/dev/stderr", "/dev/stdin")
_STREAM_PREFIXES = ("/dev/fd/", "/proc/")  # names of open streams, never files to replace
_RETRIES = 16  # temporary names tried before giving up (each is random: a clash means someone is playing)


class _Signalled(BaseException):
    """SIGTERM or SIGHUP arrived while a temporary file existed: remove it, then die of the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _refuse(path: str | Path, why: str, where: str, fix: str = "choose another path with -o (or - for standard output)") -> UsageError:
    return UsageError(f"cannot write {path}: {why}", where=where, fix=fix)


def _strerror(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def check_output(target: str | Path, *, where: str = "-o", inputs: dict[str, str | Path | None] | None = None) -> None:
    """Refuse now what :func:`write_output` would refuse later (before minutes of work whose result would be lost):
    an empty name, a directory, a block device or socket, a link to nothing, a missing name in ``/dev``, a missing directory;
    and a file the command reads (``inputs``: what names it → its path; a directory there: anything inside it) — the
    document would replace the config, a key or the run's journal. A path that passes can still fail at the write (a
    full disk): that is still one line."""
    if str(target) == "":  # never "the default file" nor standard output: the operator typed something else
        raise UsageError("an empty path", where=where, fix="name a file, or - for standard output")
    if str(target) == STDOUT:
        return
    path = Path(target).expanduser()
    absolute = os.path.abspath(path)
    if absolute in _STREAM_NAMES or absolute.startswith(_STREAM_PREFIXES):
        return
    real = os.path.realpath(path)
    for what, given in (inputs or {}).items():  # e.g. "the config (-c)": its path
        held = os.path.realpath(Path(given).expanduser()) if given else None
        if held and (real == held or real.startswith(held.rstrip("/") + "/")):
            raise UsageError(f"{target} is {what}" if real == held else f"{target} is inside {what} ({given})", where=where,
                             fix="write the document to another file")
    try:
        info = os.stat(path)  # through a link: what the write would reach
    except FileNotFoundError:
        if os.path.lexists(path):
            raise _refuse(path, "it is a symbolic link to nothing (a write through it would create a file where the link points)", where,
                          fix="remove the link or name the file itself with -o") from None
        if os.path.dirname(absolute) == "/dev":
            raise _refuse(path, "there is no such device (nothing is created in /dev)", where) from None
        parent = Path(os.path.realpath(os.path.dirname(absolute)))
        if not parent.is_dir():
            raise _refuse(path, f"its directory {parent} does not exist" if not parent.exists() else f"{parent} is not a directory",
                          where, fix="create the directory first, or choose another path") from None
        return
    except OSError as exc:
        raise _refuse(path, _strerror(exc), where) from None
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise _refuse(path, "it is a directory", where, fix="name a file inside it with -o")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
        raise _refuse(path, f"it is {'a block device' if stat.S_ISBLK(mode) else 'a socket' if stat.S_ISSOCK(mode) else 'not a file'}", where)


def write_output(target: str | Path, text: str, *, where: str = "-o", inputs: dict[str, str | Path | None] | None = None) -> Path | None:
    """Write ``text`` to ``target`` as described above; the file written, or None for a stream or device."""
    check_output(target, where=where, inputs=inputs)  # the same words whether the path is refused before the work or at the write
    if str(target) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    path = Path(target).expanduser()
    data = text.encode("utf-8")
    absolute = os.path.abspath(path)
    if absolute in _STREAM_NAMES or absolute.startswith(_STREAM_PREFIXES):
        _write_redirect(path, data, where, stream_name=True)
        return None
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if os.path.dirname(absolute) == "/dev":
            raise _refuse(path, "there is no such device (nothing is created in /dev)", where) from None
        return _write_atomic(path, data, None, where)
    except OSError as exc:
        raise _refuse(path, _strerror(exc), where) from None
    if stat.S_ISLNK(info.st_mode):
        return _write_through_link(path, data, where)
    return _write_by_kind(path, info, data, where)


def _write_through_link(link: Path, data: bytes, where: str) -> Path | None:
    try:
        info = os.stat(link)
    except FileNotFoundError:
        raise _refuse(link, "it is a symbolic link to nothing (a write through it would create a file where the link points)", where,
                      fix="remove the link or name the file itself with -o") from None
    except OSError as exc:
        raise _refuse(link, f"{_strerror(exc)} (following the symbolic link)", where) from None
    if stat.S_ISREG(info.st_mode):
        return _write_atomic(Path(os.path.realpath(link)), data, info, where)
    return _write_by_kind(link, info, data, where, follow=True)


def _write_by_kind(path: Path, info: os.stat_result, data: bytes, where: str, *, follow: bool = False) -> Path | None:
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return _write_atomic(path, data, info, where)
    if stat.S_ISDIR(mode):
        raise _refuse(path, "it is a directory", where, fix="name a file inside it with -o")
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        _write_redirect(path, data, where, follow=follow)
        return None
    kind = "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file"
    raise _refuse(path, f"it is {kind}", where)


def _write_redirect(path: Path, data: bytes, where: str, *, stream_name: bool = False, follow: bool = False) -> None:
    """What ``> path`` does to an existing stream or device (never creating anything).

    A FIFO or device is opened without ``O_TRUNC`` (it means nothing to them) and, unless reached
    through a link the operator named, without following a link; what was opened must still be a
    FIFO or a character device — a path swapped for a regular file meanwhile is neither truncated
    nor written. Only this process's stream names (``/dev/stdout`` of a redirected shell) truncate."""
    flags = os.O_WRONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_TRUNC if stream_name else (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise _refuse(path, "it does not exist (a stream or device is never created)", where) from None
    except OSError as exc:
        raise _refuse(path, _strerror(exc), where) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISBLK(mode) or not (stream_name or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
            raise _refuse(path, "it changed while being opened (it is no FIFO or character device now)", where)
        _write_all(fd, data)
    except OSError as exc:
        raise _refuse(path, _strerror(exc), where) from None
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _create_temp(directory: Path, name: str) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_RETRIES):
        tmp = directory / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, NEW_FILE_MODE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"{_RETRIES} temporary names in {directory} already exist")


def _write_atomic(path: Path, data: bytes, old: os.stat_result | None, where: str) -> Path:
    tmp: Path | None = None
    try:
        with _signals_raise():
            fd, tmp = _create_temp(path.parent, path.name)
            try:
                _write_all(fd, data)
                if old is not None:
                    _keep_owner_and_mode(fd, old)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            tmp = None
    except OSError as exc:
        raise _refuse(path, _strerror(exc), where) from None
    except _Signalled as sig:
        _remove(tmp)
        tmp = None
        signal.signal(sig.signum, signal.SIG_DFL)
        os.kill(os.getpid(), sig.signum)
        raise SystemExit(128 + sig.signum) from None
    finally:
        _remove(tmp)
    return path


def _keep_owner_and_mode(fd: int, old: os.stat_result) -> None:
    """The replacement keeps the old file's owner and mode (a shell redirect would not change them)."""
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) != (old.st_uid, old.st_gid):
        try:
            os.fchown(fd, old.st_uid, old.st_gid)
        except PermissionError:
            raise PermissionError(errno.EPERM, "it belongs to another user; replacing it would change its owner") from None
    os.fchmod(fd, stat.S_IMODE(old.st_mode))


def _remove(tmp: Path | None) -> None:
    if tmp is not None:
        try:
            os.unlink(tmp)
        except OSError:
            pass


@contextmanager
def _signals_raise() -> Iterator[None]:
    """While a temporary file exists, SIGTERM and SIGHUP unwind (so it is removed) instead of killing at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; the caller's own handling applies
        return

    def unwind(signum: int, _frame: object) -> None:
        raise _Signalled(signum)

    saved = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        try:
            saved[signum] = signal.signal(signum, unwind)
        except (ValueError, OSError):
            pass
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
