"""The live node list and the database panel.

Cells are updated in place (``update_cell``) and only when their text changes, so the cursor
and scroll never jump and a slow SSH link carries no needless redraws. Stale data is labelled
as stale, never silently frozen.
"""

from __future__ import annotations

import time
from typing import Callable

from rich.text import Text
from textual.widgets import DataTable, Static

from glance_tui.api import DBState, DbCheck, LBFacts, NodeFacts, ServerStats

# Most important first: at 80 columns the table scrolls horizontally for the rest.
COLUMNS = (("name", "Node"), ("lb", "LB"), ("inflight", "In-flight"), ("release", "Release"), ("running", "Running"),
           ("role", "Role"), ("rate", "Rate"), ("address", "Address"))


def clock_text(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def lb_cells(stats: ServerStats | None, stale: bool) -> dict[str, str]:
    """LB columns for one server; stale values keep the last reading, marked with '?'."""
    if stats is None:
        return {"lb": "stale" if stale else "absent", "inflight": "?", "rate": "?"}
    mark = "?" if stale else ""
    state = f"{stats.state} stale" if stale else stats.state
    return {"lb": state, "inflight": f"{stats.in_flight}{mark}", "rate": f"{stats.rate}{mark}"}


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


class NodeTable(DataTable):
    """One row per node; rows keyed by node name, columns by field."""

    def __init__(self, nodes: list[tuple[str, str]], **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self._node_rows = nodes
        self._cells: dict[tuple[str, str], str] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        for name, address in self._node_rows:
            row = {"name": name, "lb": "…", "inflight": "…", "rate": "…", "running": "…", "release": "probing…", "role": "", "address": address}
            self.add_row(*[row[k] for k, _ in COLUMNS], key=name)
            self._cells.update({(name, k): v for k, v in row.items()})

    def set_cells(self, name: str, values: dict[str, str]) -> int:
        """Update changed cells only; returns how many changed."""
        changed = 0
        for key, value in values.items():
            if self._cells.get((name, key)) != value:
                self._cells[(name, key)] = value
                self.update_cell(name, key, value, update_width=True)
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


def db_text(db: DBState | None, check: DbCheck | None, checked: bool) -> Text:
    """The database panel: flavour/version, heads, log_bin and what ``db check`` means."""
    text = Text()
    if db is None:
        text.append("probing the database…")
    elif db.facts is None:
        text.append("UNREACHABLE\n", style="bold red")
        text.append(db.error)
    else:
        f = db.facts
        onoff = lambda flag: "ON" if flag else "OFF"  # noqa: E731
        text.append(f"{f.flavour} {'.'.join(map(str, f.version))}", style="bold")
        text.append(f" SUPER {'yes' if f.has_super else 'no'}\n")
        text.append(f"log_bin {onoff(f.log_bin)} trust_fn {onoff(f.log_bin_trust_function_creators)}\n")
        text.append(f"heads {' '.join(f.alembic_heads) or '(none)'}\n")
    if check is not None:
        text.append(f"db check: {check.meaning}", style="bold")
        code = "?" if check.code is None else str(check.code)
        text.append(f"\nexit {code} on {check.node}{' ' + check.release if check.release else ''}")
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
        self._shown = ""

    def show(self, db: DBState | None = None, check: DbCheck | None = None, *, checked: bool = False) -> None:
        if db is not None:
            self.db = db
        if checked:
            self.check, self.checked = check, True
        text = db_text(self.db, self.check, self.checked)
        if text.plain != self._shown:
            self._shown = text.plain
            self.update(text)
