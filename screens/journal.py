"""The journal, readable: every record of the run, newest at the bottom."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static

from glance_tui.api import GlanceTuiError, one_line, read_records

_SKIP = {"ts", "run", "event"}


def record_line(rec: dict[str, Any]) -> Text:
    ts = rec.get("ts")
    when = time.strftime("%H:%M:%S", time.localtime(ts)) if isinstance(ts, (int, float)) else "--:--:--"
    rest = " ".join(f"{k}={json.dumps(v, default=str) if not isinstance(v, str) else v}" for k, v in rec.items() if k not in _SKIP)
    text = Text(f"{when} ")
    text.append(one_line(str(rec.get("event", "?"))), style="bold")  # a record may hold a node's output: shown escaped
    text.append(f" {one_line(rest)}")
    return text


class JournalScreen(Screen[None]):
    """Reads the journal file off the event loop; r reloads, escape goes back."""

    BINDINGS = [Binding("escape,l", "app.pop_screen", "Back"), Binding("r", "reload", "Reload")]

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Journal: {self.path}"), id="journal-title")
        yield RichLog(id="journal", wrap=True, highlight=False, markup=False)
        yield Footer()

    async def on_mount(self) -> None:
        await self.action_reload()

    async def action_reload(self) -> None:
        log = self.query_one("#journal", RichLog)
        try:
            records = await asyncio.to_thread(lambda: list(read_records(self.path)))
        except GlanceTuiError as exc:  # a bad line: named, as `glance-tui report` would
            log.clear()
            log.write(Text(exc.message, style="bold red"))
            return
        log.clear()
        for rec in records:
            log.write(record_line(rec))
        if not records:
            log.write(Text("(the journal is empty)"))
