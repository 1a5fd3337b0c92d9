"""Where glance-tui keeps its state (journals, the run lock, crash.log), and what to say when it cannot.

``$XDG_STATE_HOME/glance-tui`` (default ``~/.local/state/glance-tui``). A state directory that
cannot be used — ``XDG_STATE_HOME`` a file, a read-only or full file system, ``HOME`` unset or
not writable, the journal directory a file, ``run.lock`` a directory — is one line naming the
path, what is wrong with it and the fix (exit 2), never an errno from deep inside.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from glance_tui.errors import GlanceTuiError


class StateDirProblem(GlanceTuiError):
    """The state directory (or a file in it) cannot be used: exit 2, the path and the fix."""

    exit_code = 2


def state_home() -> Path:
    base = os.environ.get("XDG_STATE_HOME")
    if base and not os.path.isabs(base):  # the runs would be recorded (and looked for) under whatever directory this starts in
        raise StateDirProblem(f"XDG_STATE_HOME is a relative path ({base})",
                              fix="set it to an absolute path (e.g. XDG_STATE_HOME=\"$PWD/...\"), or unset it for ~/.local/state")
    if not base:
        try:
            base = str(Path.home() / ".local" / "state")
        except RuntimeError:  # no HOME and no passwd entry
            raise StateDirProblem("no state directory: HOME is not set and this user has no home directory",
                                  fix="set XDG_STATE_HOME (or HOME) to a writable directory") from None
    return Path(base) / "glance-tui"


def _blocking_file(path: Path) -> Path | None:
    """The first part of ``path`` that exists and is not a directory (why mkdir says ENOTDIR/EEXIST)."""
    for part in [*reversed(path.parents), path]:
        if part.exists() and not part.is_dir():
            return part
        if not part.exists():
            return None
    return None


def _fix_base() -> str:
    where = os.environ.get("XDG_STATE_HOME")
    return f"point XDG_STATE_HOME (now {where}) at a writable directory" if where else "set XDG_STATE_HOME to a writable directory"


def unusable(exc: OSError, path: Path, doing: str) -> StateDirProblem:
    """The one line for ``exc``, raised while ``doing`` (e.g. "create the journal directory") at ``path``."""
    code = exc.errno
    if code in (errno.ENOTDIR, errno.EEXIST) and (blocker := _blocking_file(path)) is not None:
        return StateDirProblem(f"cannot {doing} {path}: {blocker} is a file, not a directory",
                               fix=f"move {blocker} aside, or {_fix_base()}")
    if code == errno.EISDIR:
        return StateDirProblem(f"cannot {doing} {path}: it is a directory", fix=f"remove it (`rmdir {path}`) or move it aside")
    if code == errno.EROFS:
        return StateDirProblem(f"cannot {doing} {path}: the file system is read-only", fix=_fix_base())
    if code in (errno.ENOSPC, errno.EDQUOT):
        return StateDirProblem(f"cannot {doing} {path}: no space left on its file system",
                               fix=f"free space there (`df -h {path.parent}`), or {_fix_base()}")
    if code in (errno.EACCES, errno.EPERM):
        return StateDirProblem(f"cannot {doing} {path}: permission denied", fix=f"make it writable for this user, or {_fix_base()}")
    return StateDirProblem(f"cannot {doing} {path}: {exc.strerror or exc}", fix=f"check that path, or {_fix_base()}")


def make_dir(directory: Path, doing: str = "create the state directory") -> Path:
    """``mkdir -p`` with mode 0700, or :class:`StateDirProblem`."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise unusable(exc, directory, doing) from None
    return directory
