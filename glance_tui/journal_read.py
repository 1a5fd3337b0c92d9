"""Reading a journal back: every line is a record of a known shape, or it is named.

A resume decides from the journal (which commands may still run, which database variable to
restore), so a line it cannot read is never skipped silently there: :func:`scan` names the
file, the line number and what is wrong, and the strict readers refuse. Only a *torn* line is
dropped: the last line without its newline (a crash mid-write), or a line a later write marked
torn (``journal.torn``, written by :meth:`~glance_tui.journal.Journal.write` when it finds the
file's last line unfinished). Looks that change nothing (``runs``, ``report``, ``status``,
``check``) skip a bad line or file and say so in one line.

Records are checked field by field where a reader uses the field, so a wrong type (``"ts":
"x"``, ``"step": []``) is refused here instead of crashing later code; ``NaN``/``Infinity`` are
not JSON and are refused too (a report's JSON stays strict JSON). Only regular files are
opened, without blocking (a FIFO named ``*.jsonl`` is refused, not waited on), and never more
than :data:`JOURNAL_LIMIT` bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from glance_tui.errors import GlanceTuiError
from glance_tui.files import MIB, FileProblem, read_bytes

JOURNAL_LIMIT = 128 * MIB  # a long run journals a few MB; more is not a journal this tool wrote
TORN = "journal.torn"  # the event a write adds after a torn line it found


class JournalProblem(GlanceTuiError):
    """A journal (or a file named like one) that cannot be trusted: exit 2, with the file and what to do."""

    exit_code = 2


@dataclass(frozen=True)
class BadLine:
    """One unusable line (``line`` 0: the file as a whole)."""

    path: Path
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}: line {self.line}: {self.what}" if self.line else f"{self.path}: {self.what}"


@dataclass
class Scan:
    """What a journal file holds: its valid records, its bad lines, and the torn lines dropped."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    torn: list[int] = field(default_factory=list)

    @property
    def not_a_journal(self) -> str:
        """Why the file is not a glance-tui journal ('' when it is one): its first line must be ``run.start``."""
        if not self.records and not self.bad:
            return "it is empty" if not self.torn else "it holds only a torn line"
        first_bad = self.bad[0].line if self.bad else None
        first_good = self.records[0]["_line"] if self.records else None
        if first_bad is not None and (first_good is None or first_bad < first_good):
            return f"line {first_bad}: {self.bad[0].what}"
        if self.records[0]["event"] != "run.start":
            return f"its first record is {self.records[0]['event']!r}, not 'run.start'"
        return ""


# ---------------------------------------------------------------- the shape of a record

BIG = 1e15  # no duration, count or epoch second this tool writes comes near it; sums of such stay finite


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= BIG


def _epoch(v: Any) -> bool:
    return _number(v) and 0 <= v <= 1e11  # 1970 … year 5138


def _opt(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _dict_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, dict) and all(isinstance(k, str) and check(x) for k, x in v.items())


_str = lambda v: isinstance(v, str)  # noqa: E731
_bool = lambda v: isinstance(v, bool)  # noqa: E731
_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
_dict = lambda v: isinstance(v, dict)  # noqa: E731
_pair = lambda v: isinstance(v, list) and len(v) == 2 and all(x is None or _number(x) for x in v)  # noqa: E731

def _object(fields: dict[str, Callable[[Any], bool]], *, exact: bool = False) -> Callable[[Any], bool]:
    """An object with these fields, each passing its check (``exact``: and no other field)."""
    def check(v: Any) -> bool:
        if not isinstance(v, dict) or (exact and set(v) != set(fields)):
            return False
        return all(ok(v.get(k)) for k, ok in fields.items())
    return check


# what a resumed run rebuilds from a ``state`` record (BackupRecord(**backup), overrides, own_start)
_BACKUP = _object({"path": lambda v: isinstance(v, str), "size": lambda v: isinstance(v, int) and not isinstance(v, bool),
                   "sha256": lambda v: isinstance(v, str), "has_images_table": lambda v: isinstance(v, bool),
                   "where": lambda v: isinstance(v, str)}, exact=True)
_OVERRIDE = _object({"step": lambda v: v is None or isinstance(v, str), "reason": lambda v: v is None or isinstance(v, str),
                     "gate": lambda v: v is None or isinstance(v, str), "node": lambda v: v is None or isinstance(v, str),
                     "gates": lambda v: v is None or (isinstance(v, list) and all(isinstance(g, str) for g in v))})
_SEEN = _object({"installed_at": lambda v: v is None or _number(v), "stopped_at": lambda v: v is None or _number(v)})

_STAGING = _object({"dir": lambda v: isinstance(v, str), "existed": lambda v: isinstance(v, bool),
                    "files": lambda v: isinstance(v, list) and all(isinstance(f, str) for f in v)})

_TEXT = ("staging_dir", "step", "action", "node", "tag", "command", "title", "why", "reason", "detail", "error", "outcome", "what", "gate",
         "name", "version", "purpose", "carried_from", "when", "config", "target_release", "user", "host", "sudo_user",
         "tool_version", "config_sha256", "next", "new_node", "start_release", "choice")

# field -> (what it must be, the check); a field a reader uses is checked wherever it appears
FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "ts": ("seconds since 1970", _epoch),
    "run": ("a string", _str),
    "event": ("a non-empty string", lambda v: isinstance(v, str) and bool(v)),
    **{k: ("a string or null", _opt(_str)) for k in _TEXT},
    **{k: ("true, false or null", _opt(_bool)) for k in ("ok", "lost", "timed_out", "aborted", "log_bin_trust_old", "old", "new")},
    **{k: ("an integer or null", _opt(_int)) for k in ("exit", "pid", "check", "readings")},
    **{k: ("a number (at most 1e15) or null", _opt(_number)) for k in ("duration", "waited", "t", "quiet", "timeout", "in_flight")},
    **{k: ("a list of strings or null", _opt(_list_of(_str))) for k in ("commands", "tail", "heads")},
    "results": ("a list of objects or null", _opt(_list_of(_dict))),
    "overrides": ("a list of overrides ({step, gates} or {gate, node}, a reason) or null", _opt(_list_of(_OVERRIDE))),
    "samples": ("a list of [seconds, in flight] pairs or null", _opt(_list_of(_pair))),
    "nodes": ("an object of node → version (string or null)", _opt(_dict_of(_opt(_str)))),
    "backup": ("{path, size, sha256, has_images_table, where} or null", _opt(_BACKUP)),
    "states": ("an object or null", _opt(_dict)),
    "started": ("an object of node → {installed_at, stopped_at} or null", _opt(_dict_of(_SEEN))),
    "pids": ("a list or null", _opt(lambda v: isinstance(v, list))),
    "processes": ("a list or null", _opt(lambda v: isinstance(v, list))),
    # drain.work (glance_tui.inflight.WaitLedger) and staged (glance_tui.staging)
    "held_by": ("an object of kind → seconds or null", _opt(_dict_of(_number))),
    "imports": ("a list of objects or null", _opt(_list_of(_dict))),
    "expired_imports": ("a list of objects or null", _opt(_list_of(_dict))),
    "connections": ("a list of strings or null", _opt(_list_of(_str))),
    "files": ("a list of strings or null", _opt(_list_of(_str))),
    "found": ("a list of strings or null", _opt(_list_of(_str))),  # drain.rewait: the work found right before a stop
    "dir_exists": ("true, false or null", _opt(_bool)),
    "staging": ("an object of node → {dir, existed, files} or null", _opt(_dict_of(_STAGING))),
    "prior_images": ("an object of node → image id or null", _opt(_dict_of(_str))),
}

REQUIRED = ("ts", "run", "event")
# the fields a record kind cannot do without (its readers key on them)
BY_EVENT: dict[str, tuple[str, ...]] = {
    "run.start": ("target_release",),
    "step.start": ("step",),
    "step.end": ("step",),
    "action.start": ("step", "action"),
    "action.end": ("step", "action"),
    "action.skip": ("step", "action"),
    "command.start": ("node", "tag", "command"),
    "command.end": ("tag",),
    "command.settled": ("tag",),
    "lb": ("node", "action"),
    "drain.sample": ("node",),
    "drain.work": ("node",),
    "db.variable": ("name",),
}


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(type(v), type(v).__name__)


def shape_problem(rec: Any) -> str:
    """What is wrong with ``rec``'s shape ('' when nothing is)."""
    if not isinstance(rec, dict):
        return f"not a record (a JSON {_kind(rec).removeprefix('a ').removeprefix('an ')}, not an object)"
    for key in REQUIRED + BY_EVENT.get(rec.get("event") if isinstance(rec.get("event"), str) else "", ()):
        if rec.get(key) is None:
            return f"the field {key!r} is missing"
    for key, value in rec.items():
        rule = FIELDS.get(key)
        if rule is not None and not rule[1](value):
            return f"the field {key!r} is {_kind(value)}, expected {rule[0]}"
    return ""


# ---------------------------------------------------------------- reading a file

def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def parse_line(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """One line's record, or ``(None, what is wrong)``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
    try:
        rec = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except ValueError as exc:
        return None, f"not a JSON record ({str(exc).splitlines()[0][:80]})"
    except RecursionError:
        return None, "not a JSON record (nested too deeply)"
    problem = shape_problem(rec)
    return (None, problem) if problem else (rec, "")


def file_data(path: Path) -> bytes:
    """The bytes of the journal at ``path``: a regular file, read without blocking, bounded."""
    try:
        return read_bytes(path, JOURNAL_LIMIT, "journal")
    except FileProblem as exc:
        raise JournalProblem(str(exc), fix=f"move it out of {path.parent} (e.g. `mv {path} {path}.bad`) if it is not a journal") from None


def scan(path: Path) -> Scan:
    """Every line of the journal at ``path``, sorted into records, bad lines and torn lines.

    Raises :class:`JournalProblem` when the file itself cannot be read (missing, not a regular
    file, unreadable, too large). Each record carries its line number as ``_line``.
    """
    result = Scan(path)
    lines = file_data(path).split(b"\n")
    unterminated = lines.pop()  # b"" when the file ends with a newline
    numbered = [(n, raw.strip()) for n, raw in enumerate(lines, 1)]
    if unterminated.strip():
        numbered.append((len(lines) + 1, unterminated.strip()))
    pending_bad: BadLine | None = None
    for n, raw in numbered:
        if not raw:
            continue
        rec, what = parse_line(raw)
        if rec is None:
            if pending_bad is not None:
                result.bad.append(pending_bad)
            pending_bad = BadLine(path, n, what)
            continue
        if pending_bad is not None:
            if rec["event"] == TORN:  # the write after a crash marked the line before it torn
                result.torn.append(pending_bad.line)
            else:
                result.bad.append(pending_bad)
            pending_bad = None
        rec["_line"] = n
        result.records.append(rec)
    if pending_bad is not None:
        if pending_bad.line == len(lines) + 1:  # the last line, without its newline: a crash mid-write
            result.torn.append(pending_bad.line)
        else:
            result.bad.append(pending_bad)
    return result


def strip_line_numbers(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for rec in records:
        rec.pop("_line", None)
    return records


RESUME_FIX = ("check the cluster with `glance-tui status`, then move the journal aside to start a new run: "
              "`mv {path} {path}.bad` (its history stays readable with `glance-tui report {path}.bad`)")


def trusted(path: Path, *, what: str = "the latest run's journal") -> list[dict[str, Any]]:
    """Every record of a journal a run will decide from; :class:`JournalProblem` on any bad line."""
    try:
        result = scan(path)
    except JournalProblem as exc:
        raise JournalProblem(f"{what} cannot be used: {exc.what}", fix=RESUME_FIX.format(path=path)) from None
    if result.bad:
        extra = f" (and {len(result.bad) - 1} more bad line(s))" if len(result.bad) > 1 else ""
        raise JournalProblem(f"{what} cannot be trusted: {result.bad[0]}{extra}", fix=RESUME_FIX.format(path=path))
    if why := result.not_a_journal:
        raise JournalProblem(f"{what} {path} is not a glance-tui journal: {why}", fix=RESUME_FIX.format(path=path))
    return strip_line_numbers(result.records)
