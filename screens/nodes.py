"""The live node list and the database panel.

Cells are updated in place (``update_cell``) and only when their text changes, repainting only
their row, so the cursor and scroll never jump and a slow SSH link carries no needless redraws.
Stale data is labelled as stale, never silently frozen. Below 100 columns the table uses short
column labels and the database panel becomes a strip under it, so every column fits in 80.
"""

from __future__ import annotations

import time
from typing import Callable

from rich.text import Text
from textual.widgets import Static

from glance_tui.api import DBState, DbCheck, LBFacts, NodeFacts, ServerStats
from screens.table import InPlaceTable

# (key, label, compact label) most important first; the compact labels keep all of them in 80 columns.
COLUMNS = (("name", "Node", "Node"), ("lb", "LB", "LB"), ("inflight", "In-flight", "In-fl"), ("release", "Release", "Release"),
           ("running", "Running", "Run"), ("role", "Role", "Role"), ("rate", "Rate", "Rate"), ("address", "Address", "Address"))


def clock_text(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def lb_cells(stats: ServerStats | None, stale: bool) -> dict[str, str]:
    """LB columns for one server; stale values keep the last reading, marked with '?'."""
    if stats is None:
        return {"lb": "stale" if stale else "absent", "inflight": "?", "rate": "?"}
    mark = "?" if stale else ""
    state = f"{stats.state} stale" if stale else stats.state
    inflight = "?" if stats.in_flight is None else f"{stats.in_flight}{mark}"
    rate = "?" if stats.rate is None else f"{stats.rate}{mark}"
    return {"lb": state, "inflight": inflight, "rate": rate}


def node_cells(facts: NodeFacts | None, target: str) -> dict[str, str]:
    """Node columns: release as old/target + version, running yes/no, or why unknown."""
    if facts is None:
        return {"running": "…", "release": "probing…"}
    if facts.error:
        return {"running": "?", "release": "unreachable"}
    if facts.release is None:
        release = "unknown"
    else:
        release = f"{'target' if facts.release == target else 'old'} {facts.version}"
    running = {True: "yes", False: "no", None: "?"}[facts.running]
    return {"running": running, "release": release}


class NodeTable(InPlaceTable):
    """One row per node; rows keyed by node name, columns by field."""

    def __init__(self, nodes: list[tuple[str, str]], *, compact: bool = False, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self._node_rows = nodes
        self._cells: dict[tuple[str, str], str] = {}
        self.compact = compact

    def on_mount(self) -> None:
        for key, label, short in COLUMNS:
            self.add_column(short if self.compact else label, key=key)
        for name, address in self._node_rows:
            row = {"name": name, "lb": "…", "inflight": "…", "rate": "…", "running": "…", "release": "probing…", "role": "", "address": address}
            self.add_row(*[row[k] for k, _, _ in COLUMNS], key=name)
            self._cells.update({(name, k): v for k, v in row.items()})

    def set_compact(self, compact: bool) -> None:
        """Short or full column labels; the columns are re-measured, the rows stay put."""
        if compact == self.compact:
            return
        self.compact = compact
        if not self.columns or not self._node_rows:
            return  # not mounted yet: on_mount uses the flag
        first = self._node_rows[0][0]
        for key, label, short in COLUMNS:
            self.columns[key].label = Text(short if compact else label)  # type: ignore[index]
            self.update_cell(first, key, self._cells[(first, key)], update_width=True)

    def set_cells(self, name: str, values: dict[str, str]) -> int:
        """Update changed cells only; returns how many changed."""
        changed = 0
        for key, value in values.items():
            old = self._cells.get((name, key))
            if old != value:
                self._cells[(name, key)] = value
                self.put(name, key, value, old or "")
                changed += 1
        return changed

    def cell(self, name: str, key: str) -> str:
        return self._cells.get((name, key), "")


class LBStatus(Static):
    """One line: LB freshness. Explicit 'stale — last seen' with the error when unreachable."""

    def __init__(self, clock: Callable[[], float] = time.time, **kw) -> None:
        super().__init__("LB: waiting for the first read…", **kw)
        self.clock = clock
        self.last_ok: float | None = None
        self.error = ""
        self._shown = ""

    def record(self, lb: LBFacts) -> None:
        if lb.error:
            self.error = lb.error
        else:
            self.error, self.last_ok = "", lb.read_at
        self._render_line()

    @property
    def stale(self) -> bool:
        return bool(self.error)

    def _render_line(self) -> None:
        if self.error:
            seen = clock_text(self.last_ok) if self.last_ok else "never"
            line = f"LB stale — last seen {seen} — {self.error}"
        else:
            line = "LB live"
        if line != self._shown:
            self._shown = line
            self.set_class(bool(self.error), "stale")
            self.update(Text(line))


def verdict_is_stale(db: DBState | None, check: DbCheck | None) -> bool:
    """``check`` answered for other heads than the panel shows: the schema changed since Glance answered
    (right after contract, or while a step runs and db check waits) — it must not be shown as current."""
    if check is None or not check.heads or db is None or db.facts is None:
        return False
    return sorted(check.heads) != sorted(db.facts.alembic_heads)


def db_text(db: DBState | None, check: DbCheck | None, checked: bool, compact: bool = False) -> Text:
    """The database panel: flavour/version, heads, log_bin and what ``db check`` means.

    Every part ends its own line (a reading never runs into the next label); a verdict given for
    other heads than the ones shown is replaced by what is happening. ``compact``: three
    full-width lines (a strip under the node list) instead of a narrow column."""
    text = Text()
    sep = " · " if compact else "\n"
    if compact:
        text.append("Database ", style="bold")
    if db is None:
        text.append("probing the database…\n")
    elif db.facts is None:
        text.append("UNREACHABLE", style="bold red")
        text.append(f"{sep}{db.error}\n")
    else:
        f = db.facts
        onoff = lambda flag: "ON" if flag else "OFF"  # noqa: E731
        text.append(f"{f.flavour} {'.'.join(map(str, f.version))}", style="bold")
        text.append(f"{' · ' if compact else ' '}SUPER {'yes' if f.has_super else 'no'}{sep}")
        text.append(f"log_bin {onoff(f.log_bin)}{' · ' if compact else ' '}trust_fn {onoff(f.log_bin_trust_function_creators)}\n")
        text.append(f"heads {' '.join(f.alembic_heads) or '(none)'}\n")
    if verdict_is_stale(db, check):
        text.append("db check: asking Glance again — the heads changed since it answered", style="bold")
    elif check is not None:
        text.append(f"db check: {check.meaning}", style="bold")
        code = "?" if check.code is None else str(check.code)
        text.append(f"{sep}exit {code} on {check.node}{' ' + check.release if check.release else ''}")
    elif checked:
        text.append("db check: no node has Glance to run it")
    return text


class DbPanel(Static):
    """Beside the node list: the database facts and ``db check``; redraws only on change."""

    def __init__(self, **kw) -> None:
        super().__init__(db_text(None, None, False), **kw)
        self.db: DBState | None = None
        self.check: DbCheck | None = None
        self.checked = False
        self.compact = False
        self._shown = ""

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            self.compact = compact
            self.show()

    def show(self, db: DBState | None = None, check: DbCheck | None = None, *, checked: bool = False) -> None:
        if db is not None:
            self.db = db
        if checked:
            self.check, self.checked = check, True
        text = db_text(self.db, self.check, self.checked, self.compact)
        if text.plain != self._shown:
            self._shown = text.plain
            self.update(text)
