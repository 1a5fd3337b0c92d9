"""Measured, not assumed: what the app sends to its terminal (e.g. over a slow SSH link).

The app runs against the scripted engine with a driver that takes no input but tells Textual
it is a real terminal, so every screen update is encoded exactly as for a terminal and written
to the driver, which counts the bytes; ``App._display`` is wrapped to count screen updates.
Scenarios, each for ``SECONDS`` of LB polls every ``LB_POLL`` s after start-up has settled:
nothing changes; one node's in-flight count changes every poll; the LB is unreachable.

Run: ``python -m pytest -m benchmark -s tests/test_benchmarks.py`` (deselected by default).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from textual.drivers.headless_driver import HeadlessDriver

from screens.app import GlanceApp
from tests.ui_helpers import ready, wait_for
from tests.ui_scripted import ScriptedEngine, scripted_config

pytestmark = pytest.mark.benchmark

SIZES = [(80, 24), (120, 40)]
SECONDS = 10.0
LB_POLL = 0.2


class MeteredDriver(HeadlessDriver):
    """No terminal, but Textual encodes and writes every update here as if there were one."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.bytes_written = 0

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        self.bytes_written += len(data.encode())


async def measure(tmp_path, size: tuple[int, int], scenario: str) -> dict[str, float]:
    """Bytes/s and screen updates/s written to the terminal, and LB polls/s, for one scenario."""
    config = scripted_config(tmp_path, lb_poll_interval=LB_POLL, node_poll_interval=1.0)
    engine = ScriptedEngine(config, tmp_path / "journal")
    app = GlanceApp(engine, config=config, multiplexer=True)  # the app's own gate interval (2.5 s)
    app.driver_class = MeteredDriver
    updates = 0
    display = app._display

    def counted(screen: Any, renderable: Any) -> None:
        nonlocal updates
        updates += renderable is not None
        display(screen, renderable)

    app._display = counted  # type: ignore[method-assign]
    async with app.run_test(headless=False, size=size) as pilot:
        main = await ready(pilot)
        table = main.query_one("#nodes")
        await wait_for(pilot, lambda: table.cell("glance-3", "release") != "probing…" and main.query_one("#db").checked)
        if scenario == "stale":
            engine.cluster.lb_error = "connection refused (127.0.0.1:8404)"
            await wait_for(pilot, lambda: main.query_one("#lb-status").stale)
        await pilot.pause(1.0)  # let start-up (first gate cycles, layout) settle
        driver = app._driver
        assert isinstance(driver, MeteredDriver) and driver.bytes_written > 0, "the driver saw no output at all"
        bytes0, updates0, polls0 = driver.bytes_written, updates, engine.cluster.lb_calls
        begin = time.monotonic()
        node = engine.sim["glance-2"]
        while (elapsed := time.monotonic() - begin) < SECONDS:
            if scenario == "changing":
                node.in_flight = engine.cluster.lb_calls % 7  # a new value (almost) every poll
            await pilot.pause(LB_POLL / 4)
        figures = {"bytes/s": (driver.bytes_written - bytes0) / elapsed, "updates/s": (updates - updates0) / elapsed,
                   "LB polls/s": (engine.cluster.lb_calls - polls0) / elapsed}
    figures["bytes/update"] = figures["bytes/s"] / figures["updates/s"] if figures["updates/s"] else 0.0
    print(f"\n{scenario:>9} {size[0]}x{size[1]}: " + "  ".join(f"{v:7.1f} {k}" for k, v in figures.items()))
    assert figures["LB polls/s"] > 0.5 / LB_POLL, "the LB was not polled as configured"
    return figures


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("scenario", ["steady", "stale"])
async def test_unchanging_data_sends_nothing(tmp_path, size, scenario):
    figures = await measure(tmp_path, size, scenario)
    assert figures["bytes/s"] < 50, "needless redraws while nothing changes"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_one_changing_in_flight_count(tmp_path, size):
    figures = await measure(tmp_path, size, "changing")
    assert figures["updates/s"] > 0.5 / LB_POLL, "the changes were not shown"
    assert figures["bytes/update"] < 400, "a one-cell change should repaint one row, not the table"
