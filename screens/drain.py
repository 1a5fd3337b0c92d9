"""The drain view: a node's in-flight requests live, their history, and the time left."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from glance_tui.api import DrainProgress


SHOWN_WORK = 3  # lines of non-LB work shown (the timeout dialog lists more)


def drain_text(p: DrainProgress) -> Text:
    """Two short lines (they fit the 80-column layout), then each kind's count and what the work
    beside the LB's sessions is (a connection's peer; an import's image, method, age, size)."""
    left = max(0.0, p.timeout - p.elapsed)
    text = Text()
    text.append(f"in flight: {p.in_flight_text}", style="bold")
    text.append(f" (LB {p.state or '?'})")
    if left == 0:
        text.append("  TIMEOUT", style="bold red")
    text.append(f"\nelapsed {p.elapsed:.0f}s · time left {left:.0f}s of {p.timeout:.0f}s")
    if p.parts:
        text.append(f"\n{p.parts}")
    for line in p.work[:SHOWN_WORK]:
        text.append(f"\n· {line}", style="yellow" if line.startswith("unknown") else "")
    if len(p.work) > SHOWN_WORK:
        text.append(f"\n· … and {len(p.work) - SHOWN_WORK} more")
    return text


class DrainView(Vertical):
    """Shown while ``DrainProgress`` events arrive; hidden otherwise."""

    def __init__(self, history: int = 60, **kw) -> None:
        super().__init__(**kw)
        self.samples: deque[float] = deque(maxlen=history)
        self.node = ""
        self.last: DrainProgress | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="drain-figures")
        yield Sparkline([], id="drain-graph")

    def progress(self, p: DrainProgress) -> None:
        if p.node != self.node:
            self.node = p.node
            self.samples.clear()
        if p.in_flight is not None:  # an unknown reading is shown as text, not plotted as 0
            self.samples.append(float(p.in_flight))
        self.last = p
        self.border_title = f"Draining {p.node}"
        self.query_one("#drain-figures", Static).update(drain_text(p))
        self.query_one("#drain-graph", Sparkline).data = list(self.samples)
        self.display = True
