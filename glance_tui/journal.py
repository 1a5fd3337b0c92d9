"""An append-only, fsync'd JSON-lines journal of everything a run does.

It records intent (``action.start``) before a change and the outcome (``action.end``) after,
plus gate results and operator decisions. On restart it tells *what was attempted*; the
engine then re-probes the cluster to learn *what is true* — it never re-runs a step merely
because the journal says it started.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from glance_tui.secrets import redact_value


def state_home() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "glance-tui"


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

    @classmethod
    def create(cls, directory: Path, *, config_path: Path | None, target_release: str) -> "Journal":
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        journal = cls(directory / f"{run_id}.jsonl", run_id)
        journal.write("run.start", config=str(config_path or ""), target_release=target_release, pid=os.getpid(), **run_origin(config_path))
        return journal

    @classmethod
    def open(cls, path: Path) -> "Journal":
        return cls(path, path.stem)

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"ts": round(time.time(), 3), "run": self.run_id, "event": event, **redact_value(fields)}
        line = json.dumps(record, sort_keys=False, default=str) + "\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line  # a crash tore the last line: never glue a record onto it
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        return read_records(self.path)

    def last(self, event: str, **match: Any) -> dict[str, Any] | None:
        found = None
        for rec in self.records():
            if rec.get("event") == event and all(rec.get(k) == v for k, v in match.items()):
                found = rec
        return found

    @property
    def finished(self) -> bool:
        return self.last("run.end") is not None


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Yield records; a torn last line (crash mid-write) is skipped, not fatal."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        return


def journal_dir(config_path: Path | None, base: Path | None = None) -> Path:
    return (base or state_home()) / "runs" / config_key(config_path)


def unfinished_journal(directory: Path) -> Journal | None:
    """The most recent journal in ``directory`` without a ``run.end`` record."""
    if not directory.is_dir():
        return None
    for path in sorted(directory.glob("*.jsonl"), reverse=True):
        journal = Journal.open(path)
        if not journal.finished:
            return journal
        return None  # the newest run finished: nothing to resume
    return None


def latest_journal(directory: Path) -> Journal | None:
    """The most recent journal in ``directory``, finished or not (what a new run carries over from)."""
    if not directory.is_dir():
        return None
    paths = sorted(directory.glob("*.jsonl"))
    return Journal.open(paths[-1]) if paths else None


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
