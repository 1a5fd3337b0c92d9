"""An append-only, fsync'd JSON-lines journal of everything a run does.

It records intent (``action.start``) before a change and the outcome (``action.end``) after,
plus gate results and operator decisions. On restart it tells *what was attempted*; the
engine then re-probes the cluster to learn *what is true* — it never re-runs a step merely
because the journal says it started.
"""

from __future__ import annotations

import errno
import getpass
import hashlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from glance_tui.errors import GlanceTuiError
from glance_tui.journal_read import TORN, JournalProblem, scan, strip_line_numbers, trusted
from glance_tui.secrets import redact_value
from glance_tui.statedir import make_dir, state_home, unusable

__all__ = ["Journal", "JournalProblem", "JournalWriteFailed", "NullJournal", "read_records", "state_home"]


class JournalWriteFailed(GlanceTuiError):
    """A record could not be written (full or read-only disk, I/O error): the run stops before its next change.

    The journal refuses every later write too, so nothing that must be journaled first can run."""

    exit_code = 2


def config_key(config_path: Path | None) -> str:
    """Journals are grouped per config file, so each deployment resumes its own run."""
    text = str(config_path.resolve()) if config_path else "<no config>"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: Path | None) -> str | None:
    """The config's digest, so the run's record names exactly which file drove it."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def run_origin(config_path: Path | None) -> dict[str, Any]:
    """Who started the run and where (``run.start``): a change record must name them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER
        user = f"uid {os.getuid()}"
    origin: dict[str, Any] = {"user": user, "host": socket.gethostname()}
    if os.environ.get("SUDO_USER"):
        origin["sudo_user"] = os.environ["SUDO_USER"]
    origin["config_sha256"] = file_sha256(config_path)
    from glance_tui import __version__

    origin["tool_version"] = __version__
    return origin


@dataclass
class Journal:
    path: Path
    run_id: str

    broken: str = ""  # why a write failed: every later write is refused
    read: list[dict[str, Any]] | None = field(default=None, repr=False, compare=False)  # records as opened

    @classmethod
    def create(cls, directory: Path, *, config_path: Path | None, target_release: str) -> "Journal":
        """A new run's journal, its ``run.start`` written; :class:`StateDirProblem` (nothing left behind) if it cannot be."""
        make_dir(directory, "create the journal directory")
        run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        journal = cls(directory / f"{run_id}.jsonl", run_id)
        try:
            journal.write("run.start", config=str(config_path or ""), target_release=target_release, pid=os.getpid(), **run_origin(config_path))
        except JournalWriteFailed as exc:
            try:
                journal.path.unlink()  # never a 0-byte or torn journal that a later run would have to refuse
            except OSError:
                pass
            raise unusable(exc.__cause__ if isinstance(exc.__cause__, OSError) else OSError(errno.EIO, exc.what),
                           journal.path, "start the journal") from None
        return journal

    @classmethod
    def open(cls, path: Path, records: list[dict[str, Any]] | None = None) -> "Journal":
        """The journal at ``path``; ``records``: as already read (a look that skipped bad lines reads those)."""
        journal = cls(path, path.stem)
        journal.read = records
        return journal

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one record, fsync'd; :class:`JournalWriteFailed` when it cannot be (then, and from then on)."""
        self.read = None  # from now on the file is the truth
        if self.broken:
            raise JournalWriteFailed(f"the journal {self.path} cannot be written ({self.broken})", fix=_WRITE_FIX)
        record = {"ts": round(time.time(), 3), "run": self.run_id, "event": event, **redact_value(fields)}
        data = (json.dumps(record, sort_keys=False, default=str, allow_nan=False) + "\n").encode("utf-8")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    # a crash tore the last line: end it and mark it torn, never glue a record onto it
                    torn = {"ts": record["ts"], "run": self.run_id, "event": TORN}
                    data = b"\n" + json.dumps(torn).encode() + b"\n" + data
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.broken = exc.strerror or str(exc)
            raise JournalWriteFailed(f"the journal {self.path} cannot be written ({self.broken})", fix=_WRITE_FIX) from exc
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record: as read when opened, then from the file again once this run writes."""
        return iter(self.read) if self.read is not None else read_records(self.path)

    def last(self, event: str, **match: Any) -> dict[str, Any] | None:
        found = None
        for rec in self.records():
            if rec.get("event") == event and all(rec.get(k) == v for k, v in match.items()):
                found = rec
        return found

    @property
    def finished(self) -> bool:
        return self.last("run.end") is not None


_WRITE_FIX = ("the run stopped before its next change; free space or fix the file system, then `glance-tui run` "
              "resumes from what the cluster shows")


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The journal's records, for a run that decides from them: a torn line (crash mid-write) is
    dropped, any other bad line raises :class:`JournalProblem` (file, line, what to do)."""
    if not os.path.lexists(path):
        return iter(())
    return iter(trusted(path, what=f"the journal {path}"))


def journal_dir(config_path: Path | None, base: Path | None = None) -> Path:
    return (base or state_home()) / "runs" / config_key(config_path)


def _journal_paths(directory: Path) -> list[Path]:
    """The journals in ``directory``, newest first (run ids start with their UTC start time)."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.jsonl"), reverse=True)


Warn = Callable[[str], None]


def _records(path: Path, warn: Warn | None) -> list[dict[str, Any]] | None:
    """Strict (``warn`` None): a bad journal raises. For a look (``warn`` given): a bad file is
    named and passed over (None), a bad line is named and skipped."""
    if warn is None:
        return trusted(path)
    try:
        result = scan(path)
    except JournalProblem as exc:
        warn(f"{exc.what} (skipped)")
        return None
    if why := result.not_a_journal:
        warn(f"{path} is not a glance-tui journal: {why} (skipped)")
        return None
    for bad in result.bad:
        warn(f"{bad} (line skipped)")
    return strip_line_numbers(result.records)


def unfinished_journal(directory: Path, warn: Warn | None = None) -> Journal | None:
    """The most recent journal in ``directory`` without a ``run.end`` record.

    A resume decides from it, so a journal that cannot be trusted raises :class:`JournalProblem`;
    a look (``warn``) names it and reads the next one instead."""
    for path in _journal_paths(directory):
        records = _records(path, warn)
        if records is None:
            continue
        if any(r.get("event") == "run.end" for r in records):
            return None  # the newest run finished: nothing to resume
        return Journal.open(path, records)
    return None


def latest_journal(directory: Path, warn: Warn | None = None) -> Journal | None:
    """The most recent journal in ``directory``, finished or not (what a new run carries over from)."""
    for path in _journal_paths(directory):
        if (records := _records(path, warn)) is not None:
            return Journal.open(path, records)
    return None


# ---------------------------------------------------------------- what a run leaves behind
#
# A changing remote command is journaled as ``command.start`` (node, tag, command) before it is
# sent and ``command.end`` after. A start without an end — the tool was killed, or the SSH
# connection dropped (``command.end`` with ``lost``) — may still be running on the node; it stays
# open until a later look at the node settles it (``command.settled``).


def unfinished_commands(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``command.start`` records whose command may still run on its node, oldest first."""
    pending: dict[str, dict[str, Any]] = {}
    for rec in records:
        tag = rec.get("tag")
        event = rec.get("event")
        if not tag:
            continue
        if event == "command.start":
            pending[tag] = rec
        elif event == "command.settled" or (event == "command.end" and not rec.get("lost")):
            pending.pop(tag, None)
    return list(pending.values())


def binlog_trust_to_restore(records: Iterable[dict[str, Any]]) -> bool | None:
    """``False`` when a run set ``log_bin_trust_function_creators`` from 0 and has not restored it.

    Read from the ``db.variable`` records as well as the ``state`` ones, so a crash between
    changing the variable and saving the state still leaves the restore due.
    """
    old: bool | None = None
    for rec in records:
        event = rec.get("event")
        if event == "state":
            old = rec.get("log_bin_trust_old")
        elif event == "carry" and rec.get("what") == "log_bin_trust_function_creators":
            old = rec.get("old")
        elif event == "db.variable" and rec.get("name") == "log_bin_trust_function_creators":
            old = None if rec.get("why") == "restored" else rec.get("old") if rec.get("new") is True else old
    return old if old is False else None


def carry_over(previous: Journal | None, journal: Journal) -> bool | None:
    """Copy into a new run's journal what the previous run left undone; returns the binlog restore due.

    Unfinished remote commands are re-journaled (same tag, ``carried_from``) so the new run
    looks for them on the nodes before acting, exactly as a resumed run would.
    """
    if previous is None or previous.path == journal.path:
        return None
    records = list(previous.records())
    for rec in unfinished_commands(records):
        fields = {k: v for k, v in rec.items() if k not in ("ts", "run", "event")}
        fields["carried_from"] = fields.get("carried_from") or previous.run_id
        journal.write("command.start", **fields)
    restore = binlog_trust_to_restore(records)
    if restore is not None:
        journal.write("carry", what="log_bin_trust_function_creators", old=restore, carried_from=previous.run_id)
    return restore


class NullJournal(Journal):
    """For read-only commands (check, status, plan): records nothing."""

    def __init__(self) -> None:
        super().__init__(Path("/dev/null"), "read-only")

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        return {"event": event, **fields}

    def records(self) -> Iterator[dict[str, Any]]:
        return iter(())
