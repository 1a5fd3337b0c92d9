"""HAProxy's stats CSV and ``show servers state``, parsed strictly.

The upgrade decides whether a node may be stopped from these numbers, so a page that is not a
well-formed HAProxy stats CSV is an error that names the problem, and a counter that is
missing, empty, negative, fractional or not a number is *unknown* (None), never 0. Columns are
read by name because their order changes between HAProxy versions.

HAProxy's ``status`` column hides the admin state of a server that a health check marked DOWN
(verified on 2.6: a drained server whose check fails shows ``DOWN``, weight unchanged), so
``admin_state`` is READY/DRAIN/MAINT only where the status proves it; the runtime API's
``show servers state`` (field ``srv_admin_state``) gives it exactly.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field, replace

from glance_tui.errors import clipped, quoted

STATES = ("UP", "DOWN", "DRAIN", "MAINT", "NOLB", "NOCHECK", "UNKNOWN")
ADMIN_STATES = ("READY", "DRAIN", "MAINT", "UNKNOWN")
REQUIRED_COLUMNS = ("pxname", "svname")
COUNTERS = ("scur", "qcur", "rate", "weight")
TOTAL_ROWS = ("FRONTEND", "BACKEND")

# srv_admin_state bits (HAProxy's SRV_ADMF_*): forced/inherited/config/resolution/hostname maint, forced/inherited drain.
_MAINT_BITS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
_DRAIN_BITS = 0x08 | 0x10
_COUNTER = re.compile(r"[0-9]{1,18}")


class StatsFormatError(ValueError):
    """The text is not a well-formed HAProxy stats CSV (the message names the problem)."""


@dataclass(frozen=True)
class ServerStats:
    """One server row of one backend; a counter is None when the page did not give a usable value."""

    server: str
    status: str
    state: str
    scur: int | None
    qcur: int | None
    rate: int | None
    check_status: str
    weight: int | None
    backend: str = ""
    admin_state: str = ""  # READY / DRAIN / MAINT / UNKNOWN; "" = derive from ``state``
    problems: tuple[str, ...] = field(default=(), compare=False)  # why a counter or state is unknown
    backup: bool | None = None  # a `backup` server (the `bck` column): serves only when no active one is up; None = unknown

    def __post_init__(self) -> None:
        if not self.admin_state:
            object.__setattr__(self, "admin_state", admin_from_state(self.state))

    @property
    def in_flight(self) -> int | None:
        """scur + qcur, or None when either is unknown."""
        if self.scur is None or self.qcur is None:
            return None
        return self.scur + self.qcur

    @property
    def in_rotation(self) -> bool | None:
        """True when HAProxy sends it new requests; None when the weight that decides is unknown."""
        if self.state not in ("UP", "NOCHECK"):
            return False
        if self.weight is None:
            return None
        return self.weight > 0

    @property
    def admin_out(self) -> bool:
        """Taken out by an operator (DRAIN or MAINT), not merely failing its health check."""
        return self.admin_state in ("DRAIN", "MAINT")

    def with_admin_state(self, admin_state: str) -> "ServerStats":
        return replace(self, admin_state=admin_state)

    @classmethod
    def from_row(cls, row: dict[str, str]) -> "ServerStats":
        problems: list[str] = []
        if "status" in row:
            status = row["status"].strip()
            if not status:
                problems.append("status is empty")
        else:
            status = ""
            problems.append("the stats CSV has no status column")
        counters = {}
        for name in COUNTERS:
            counters[name], problem = parse_counter(row, name)
            if problem:
                problems.append(problem)
        state = normalise_status(status)
        return cls(
            server=row.get("svname", ""),
            status=status,
            state=state,
            check_status=row.get("check_status", "").lstrip("* ").strip(),
            backend=row.get("pxname", ""),
            admin_state=admin_from_state(state),
            problems=tuple(problems),
            backup={"0": False, "1": True}.get(row.get("bck", "").strip()),
            **counters,
        )


def parse_counter(row: dict[str, str], name: str) -> tuple[int | None, str]:
    """A non-negative whole number, or (None, why not)."""
    if name not in row:
        return None, f"the stats CSV has no {name} column"
    raw = row[name].strip()
    if not _COUNTER.fullmatch(raw):
        return None, f"{name} is {quoted(raw, 20)}, not a whole number ≥ 0"
    return int(raw), ""


def normalise_status(status: str) -> str:
    """``"UP 1/2"`` → UP, ``"MAINT (via b/s)"`` → MAINT, ``"no check"`` → NOCHECK, else UNKNOWN."""
    text = status.strip().upper()
    if text.startswith("NO CHECK"):
        return "NOCHECK"
    head = text.split(" ", 1)[0]
    return head if head in STATES else "UNKNOWN"


def admin_from_state(state: str) -> str:
    """What the normalised status proves about the admin state.

    HAProxy reports MAINT before anything else, DRAIN before UP, and DOWN before DRAIN: so UP,
    NOLB and "no check" mean READY, but DOWN says nothing about it.
    """
    if state in ("MAINT", "DRAIN"):
        return state
    if state in ("UP", "NOLB", "NOCHECK"):
        return "READY"
    return "UNKNOWN"


def admin_from_bits(value: str) -> str:
    """``srv_admin_state`` of ``show servers state`` (a bit field) → READY / DRAIN / MAINT / UNKNOWN."""
    if not _COUNTER.fullmatch(value.strip()):
        return "UNKNOWN"
    bits = int(value)
    if bits & _MAINT_BITS:
        return "MAINT"
    if bits & _DRAIN_BITS:
        return "DRAIN"
    return "READY" if bits == 0 else "UNKNOWN"


def _csv_error(exc: csv.Error, line: int) -> StatsFormatError:
    """csv's own wording ("field larger than field limit (131072)") is not for operators."""
    text = str(exc)
    if "field larger than field limit" in text:
        return StatsFormatError(f"line {line} has a field longer than {csv.field_size_limit()} characters")
    if "end of data" in text or "quote" in text:
        return StatsFormatError(f"line {line} has an unbalanced quote")
    return StatsFormatError(f"line {line} is not valid CSV")


def parse_csv(text: str) -> list[dict[str, str]]:
    """Rows of HAProxy's stats CSV keyed by column name; StatsFormatError names what is wrong.

    Well-formed means: a ``# `` header naming pxname and svname, every row as wide as the header,
    at least one row, and no (pxname, svname) pair twice (a duplicated server row would otherwise
    silently replace the first one).
    """
    if not text.strip():
        raise StatsFormatError("the page is empty")
    if not text.startswith("# "):
        raise StatsFormatError("the first line must start with '# '")
    if "\x00" in text:  # never in HAProxy's output; Python ≥ 3.11's csv would take it as data
        raise StatsFormatError(f"line {text.count(chr(10), 0, text.index(chr(0))) + 1} contains a NUL byte")
    lines = text[2:].splitlines()
    reader = csv.reader(lines, strict=True)
    try:
        first = next(reader, None)  # never a bare next(): StopIteration inside a coroutine is a RuntimeError
    except csv.Error as exc:
        raise _csv_error(exc, 1) from None
    if first is None:
        raise StatsFormatError("the header line '# ' names no columns")
    header = [name.strip() for name in first]
    named = [n for n in header if n and n != "-"]
    dupes = sorted({n for n in named if named.count(n) > 1})
    if dupes:
        raise StatsFormatError(f"the header names column(s) twice: {clipped(', '.join(dupes))}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise StatsFormatError(f"the header has no {' and no '.join(missing)} column")
    rows: list[dict[str, str]] = []
    seen: dict[tuple[str, str], int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row or row == [""]:
                continue
            if len(row) != len(header):
                raise StatsFormatError(f"line {line} has {len(row)} fields, the header has {len(header)}")
            record = {k: v for k, v in zip(header, row) if k and k != "-"}
            key = (record["pxname"], record["svname"])
            if not key[0] or not key[1]:
                raise StatsFormatError(f"line {line} has an empty pxname or svname")
            if key in seen:
                raise StatsFormatError(f"{clipped(key[0] + '/' + key[1])} appears twice (lines {seen[key]} and {line})")
            seen[key] = line
            rows.append(record)
    except csv.Error as exc:
        raise _csv_error(exc, reader.line_num) from None
    if not rows:
        raise StatsFormatError("the stats CSV has a header but no rows")
    return rows


def servers_of(rows: list[dict[str, str]], backend: str) -> dict[str, ServerStats] | None:
    """The server rows of ``backend`` keyed by name, or None if the page has no such backend."""
    mine = [r for r in rows if r["pxname"] == backend]
    if not mine:
        return None
    return {r["svname"]: ServerStats.from_row(r) for r in mine if r["svname"] not in TOTAL_ROWS}


def backends_in(rows: list[dict[str, str]]) -> list[str]:
    return sorted({r["pxname"] for r in rows if r["svname"] == "BACKEND"})


def parse_servers_state(text: str, backend: str) -> dict[str, str]:
    """``show servers state BACKEND`` → {server: admin state}; StatsFormatError if it is not that answer.

    The answer is a version line ("1"), a ``# be_id be_name ...`` header, then one
    space-separated line per server.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines and lines[0].startswith(("Can't find backend", "No such backend")):
        raise StatsFormatError(f"HAProxy has no backend {backend!r}")
    if len(lines) < 2 or lines[0].strip() != "1" or not lines[1].startswith("# "):
        raise StatsFormatError(f"unexpected answer to `show servers state`: {quoted(lines[0] if lines else '', 80)}")
    header = lines[1][2:].split()
    try:
        i_be, i_srv, i_admin = header.index("be_name"), header.index("srv_name"), header.index("srv_admin_state")
    except ValueError:
        raise StatsFormatError("`show servers state` has no be_name, srv_name or srv_admin_state field") from None
    out: dict[str, str] = {}
    for ln in lines[2:]:
        fields = ln.split()
        if len(fields) <= max(i_be, i_srv, i_admin):
            raise StatsFormatError(f"`show servers state` line is too short: {quoted(ln, 80)}")
        if fields[i_be] != backend:
            continue
        if fields[i_srv] in out:
            raise StatsFormatError(f"`show servers state` lists {backend}/{fields[i_srv]} twice")
        out[fields[i_srv]] = admin_from_bits(fields[i_admin])
    return out
