"""What the app is doing for the operator right now, with a spinner ("checking gates…").

A key that starts something shows this at once (the next frame), so a key is never met with
nothing while probes run; it animates only while shown (idle screens send no bytes).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Activity(Static):
    def __init__(self, **kw) -> None:
        super().__init__("", **kw)
        self.what = ""
        self._frame = 0

    def on_mount(self) -> None:
        self.display = False
        self._timer = self.set_interval(0.1, self._tick, pause=True)

    @property
    def active(self) -> bool:
        return bool(self.what)

    def start(self, what: str) -> None:
        self.what = what
        self._frame = 0
        self._show()
        self.display = True
        self._timer.resume()

    def stop(self) -> None:
        self.what = ""
        self._timer.pause()
        self.display = False

    def _tick(self) -> None:
        self._frame = (self._frame + 1) % len(FRAMES)
        self._show()

    def _show(self) -> None:
        self.update(Text(f"{FRAMES[self._frame]} {self.what}", style="bold"))
