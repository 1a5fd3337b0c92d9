"""One run at a time per config: an OS-level ``flock`` on a file in the config's journal directory.

Two runs on the same deployment would drain, stop and migrate against each other. The lock is
``flock(LOCK_EX | LOCK_NB)`` on ``run.lock``: the kernel drops it when the holder's file is
closed or the holder dies (``kill -9`` included), so a stale lock file never blocks anyone.
The file's contents only *describe* the holder (pid, user, host, since, command) for the
one-line refusal; they are never trusted to decide whether the lock is held.
Read-only commands (check, status, plan, dry runs) do not take it.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import os
import socket
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from glance_tui.errors import GlanceTuiError
from glance_tui.secrets import redact
from glance_tui.statedir import make_dir, unusable

LOCK_NAME = "run.lock"


class RunLocked(GlanceTuiError):
    """Another glance-tui run holds this config's lock (exit code 1: the cluster is busy, the command was right)."""


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as the holder wrote it."""

    pid: int | None
    user: str
    host: str
    since: float | None
    command: str

    @classmethod
    def read(cls, path: Path) -> "Holder | None":
        try:
            data = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not data:
            return None
        pid = data.get("pid")
        since = data.get("since")
        return cls(pid if isinstance(pid, int) else None, str(data.get("user") or "?"), str(data.get("host") or "?"),
                   float(since) if isinstance(since, (int, float)) else None, str(data.get("command") or "?"))

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since)) if self.since else "an unknown time"
        return f"pid {self.pid or '?'} ({self.user}@{self.host}) since {since}: {self.command}"


def _me() -> dict:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"pid": os.getpid(), "user": user, "host": socket.gethostname(), "since": round(time.time(), 3),
            "command": redact(" ".join(["glance-tui", *sys.argv[1:]]))}


class RunLock:
    """The lock of one config's journal directory; :meth:`acquire` refuses at once when it is held."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`RunLocked` naming the holder (never waits)."""
        if self._fd is not None:
            return
        make_dir(self.path.parent, "create the journal directory")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)  # not inherited by commands we spawn
        except OSError as exc:
            raise unusable(exc, self.path, "open the run lock") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self._refusal() from None
        except OSError as exc:
            os.close(fd)
            raise unusable(exc, self.path, "lock") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(_me()) + "\n").encode(), 0)
            os.fsync(fd)
        except OSError:
            pass  # the lock is what counts; the description is only for the refusal message
        self._fd = fd

    def _refusal(self) -> RunLocked:
        holder = Holder.read(self.path)
        who = holder.describe() if holder else "a process that has not written its details yet"
        return RunLocked(f"another glance-tui run holds this config's lock — {who}", where=str(self.path),
                         fix="wait for that run to finish or quit it (a killed run releases the lock by itself); "
                             "check/status/plan and --dry-run work meanwhile")

    def release(self) -> None:
        """Drop the lock (idempotent). The description is cleared first so it never names a dead holder."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the only descriptor releases the flock

    def holder(self) -> Holder | None:
        """Who holds the lock now, or None when it is free (probes with a non-blocking flock)."""
        if self._fd is not None:
            return Holder.read(self.path)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise unusable(exc, self.path, "read the run lock") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a directory opens read-only, and could never be locked for a run
                raise unusable(OSError(errno.EISDIR, "not a regular file"), self.path, "read the run lock")
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return Holder.read(self.path) or Holder(None, "?", "?", None, "?")
        finally:
            os.close(fd)
        return None

    def refuse_if_held(self) -> None:
        """Raise :class:`RunLocked` when another run holds the lock now (a quick check before opening a UI)."""
        if self._fd is None and self.holder() is not None:
            raise self._refusal()

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
