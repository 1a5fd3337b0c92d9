"""Shared helpers for the UI tests: a frozen clock, app factory, polling waits, a wizard driver."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from screens.app import GlanceApp
from screens.dialogs import ChooseNodeScreen, ConfirmScreen
from screens.summary import SummaryScreen
from tests.ui_scripted import ScriptedEngine, scripted_config

FROZEN = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def make(tmp: Path, **engine_kw: Any) -> tuple[GlanceApp, ScriptedEngine]:
    config = scripted_config(tmp)
    engine = ScriptedEngine(config, tmp / "journal", clock=lambda: FROZEN, **engine_kw)
    app = GlanceApp(engine, config=config, dry_run=engine.dry_run, multiplexer=True, clock=lambda: FROZEN, gate_interval=0.2)
    return app, engine


# How long a wait gives up after: generous, as a loaded 2-core CI machine renders frames slowly. A wait
# ends as soon as its condition holds, so a passing test takes no longer; only a failing one does.
DEADLINE = 30.0


async def wait_for(pilot: Any, cond: Callable[[], Any], timeout: float = DEADLINE, what: str = "") -> None:
    """Poll a condition while the app runs (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}; screen is {pilot.app.screen!r}")
        await pilot.pause(0.02)


async def ready(pilot: Any, timeout: float = DEADLINE) -> Any:
    app = pilot.app
    await wait_for(pilot, lambda: app.main is not None and app.screen is app.main and app.main.next_gates is not None, timeout, what="main screen")
    return app.main


async def answer_routine(pilot: Any) -> bool:
    """Answer the routine questions as an operator would; False when the screen is something else."""
    screen = pilot.app.screen
    if isinstance(screen, ChooseNodeScreen):
        await pilot.press("enter")
    elif isinstance(screen, ConfirmScreen):
        if screen.word:
            await pilot.press(*screen.word, "enter")
        else:
            await pilot.press("y")
    elif isinstance(screen, SummaryScreen):  # a stopped run's summary: back to the checklist
        await pilot.press("escape")
    else:
        return False
    return True


async def drive_until(pilot: Any, done: Callable[[], bool], timeout: float = 2 * DEADLINE) -> None:
    """Press continue whenever allowed and answer routine questions until ``done()``."""
    main = pilot.app.main
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"wizard stuck on {pilot.app.screen!r}; states {main.engine.states}"
        if not await answer_routine(pilot) and pilot.app.screen is main and main.can_continue:
            await pilot.press("c")
        await pilot.pause(0.02)
