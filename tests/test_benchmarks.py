"""Measured, not assumed: what the app sends to its terminal, and how fast it answers.

The app runs with a driver that takes no input but tells Textual it is a real terminal, so
every screen update is encoded exactly as for a terminal and written to the driver, which
counts the bytes and notes when each write happened; ``App._display`` is wrapped to count
screen updates.

- Terminal output (scripted engine), each for ``SECONDS`` of LB polls every ``LB_POLL`` s after
  start-up has settled: nothing changes; one node's in-flight count changes every poll; the LB
  is unreachable.
- Responsiveness on the simulated cluster with real MariaDB, HAProxy and sshd and the real
  engine: key → first visible response (the frame that shows it), and "continue" → the
  confirmation dialog when no ``glance-manage`` call is due.
- ``check`` on three nodes against one ``glance-manage db check`` (simulated cluster).
- 100 scripted nodes polled at 1 Hz: resident memory, key → frame, first frame.
- Key → the frame that shows its effect for the keys of every screen (scripted engine, 80×24):
  n, l, escape, a confirmation's y and n, a character typed into an override reason, the
  summary's w.

Figures are printed, never asserted as timings in the normal suite (deselected by default).
Run: ``python -m pytest -m benchmark -s tests/test_benchmarks.py``.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from pathlib import Path
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
        self.writes: deque[tuple[float, str]] = deque(maxlen=500)  # (perf_counter, data) of the latest writes

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        self.bytes_written += len(data.encode())
        self.writes.append((time.perf_counter(), data))


def metered(app: GlanceApp) -> GlanceApp:
    app.driver_class = MeteredDriver
    return app


def driver_of(app: GlanceApp) -> MeteredDriver:
    driver = app._driver
    assert isinstance(driver, MeteredDriver)
    return driver


async def frame_after(pilot: Any, since: float, showing: str | tuple[str, ...] = "", timeout: float = 10.0) -> float:
    """Seconds from ``since`` to the first write after it that contains ``showing`` (any of them, if several)."""
    driver = driver_of(pilot.app)
    deadline = time.perf_counter() + timeout
    wanted = (showing,) if isinstance(showing, str) else showing
    while True:
        for at, data in list(driver.writes):
            if at >= since and any(w in data for w in wanted):
                return at - since
        assert time.perf_counter() < deadline, f"no frame showing {showing!r} within {timeout}s"
        await pilot.pause(0.005)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:6.1f} ms  p95 {p95(values) * 1000:6.1f} ms  max {max(values) * 1000:6.1f} ms  (n={len(values)})"


def rss_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak (VmRSS, VmHWM), in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def measure(tmp_path, size: tuple[int, int], scenario: str) -> dict[str, float]:
    """Bytes/s and screen updates/s written to the terminal, and LB polls/s, for one scenario."""
    config = scripted_config(tmp_path, lb_poll_interval=LB_POLL, node_poll_interval=1.0)
    engine = ScriptedEngine(config, tmp_path / "journal")
    app = metered(GlanceApp(engine, config=config, multiplexer=True))  # the app's own gate interval (2.5 s)
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
        driver = driver_of(app)
        assert driver.bytes_written > 0, "the driver saw no output at all"
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


# ---------------------------------------------------------------- responsiveness on the simulated cluster

KEY_ROUNDS = 15


@pytest.mark.services
async def test_key_response_and_confirmation_on_the_sim_cluster(sim_lab, sim_config):
    """Key → first visible response (r, down, c) and c → confirmation dialog, real engine and services."""
    from glance_tui.api import DONE, Engine
    from screens.dialogs import ConfirmScreen

    sim_lab.reset()
    engine = Engine.open(sim_config, resume=False)
    app = metered(GlanceApp(engine, config=sim_config, multiplexer=True))
    first: dict[str, list[float]] = {"r": [], "down/up": [], "c": []}
    confirm: list[float] = []
    async with app.run_test(headless=False, size=(120, 40)) as pilot:
        main = await ready(pilot, timeout=120)
        table = main.query_one("#nodes")
        await wait_for(pilot, lambda: table.cell("glance-1", "lb").startswith("UP") and main.query_one("#db").checked, timeout=60)
        await wait_for(pilot, lambda: main.can_continue, timeout=60, what="preflight ready")
        await pilot.press("c")  # preflight: gates only, nothing to confirm
        await wait_for(pilot, lambda: engine.states.get("preflight") == DONE and main.can_continue, timeout=120, what="preflight done")
        asked_before = engine.ctx.verdicts.asked
        steps = engine.plan.steps
        for i in range(KEY_ROUNDS):
            await wait_for(pilot, lambda: not main.activity.active and main.can_continue, timeout=60)
            t0 = time.perf_counter()
            await pilot.press("r")
            first["r"].append(await frame_after(pilot, t0, "re-checking"))
            await wait_for(pilot, lambda: not main.activity.active, timeout=120, what="the re-check to finish")

            key, index = ("down", 1) if i % 2 == 0 else ("up", 0)
            main.query_one("#steps").select(steps[1 - index].id)
            await pilot.pause(0.3)
            t0 = time.perf_counter()
            await pilot.press(key)
            first["down/up"].append(await frame_after(pilot, t0, f"Step {steps[index].number} · "))

            await wait_for(pilot, lambda: main.can_continue, timeout=60)
            await pilot.pause(0.3)
            t0 = time.perf_counter()
            await pilot.press("c")
            # "checking gates…", or — when the gates answer within a frame — the confirmation itself
            first["c"].append(await frame_after(pilot, t0, ("checking gates", "Step 1: Back up the Glance database")))
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=60, what="the confirmation")
            confirm.append(await frame_after(pilot, t0, "Step 1: Back up the Glance database"))
            await pilot.press("n")  # declined: nothing runs, the step can be continued again
            await wait_for(pilot, lambda: app.screen is main and not main.busy, timeout=60)
        asked = engine.ctx.verdicts.asked - asked_before
    await engine.close()
    print("\nsim cluster (3 nodes, real MariaDB/HAProxy/sshd, simulated Glance), 120x40:")
    for key, values in first.items():
        print(f"  key {key:>7} → first visible response: {ms(values)}")
    print(f"  c → confirmation dialog (backup):    {ms(confirm)}")
    print(f"  glance-manage db check runs during the {KEY_ROUNDS} rounds: {asked}")
    assert len(confirm) == KEY_ROUNDS


@pytest.mark.services
def test_check_against_one_db_check(sim_lab, sim_config, capsys):
    """``glance-tui check`` (every preflight gate, three nodes) against one ``glance-manage db check``."""
    import asyncio

    from glance_tui.cli import main as cli_main
    from glance_tui.probes import Cluster

    sim_lab.reset()

    async def one_db_check() -> float:
        cluster = Cluster(sim_config)  # a fresh connection, as `check` has
        try:
            start = time.perf_counter()
            result = await cluster.run(cluster.commands("glance-1").db_check())
            took = time.perf_counter() - start
            assert result.exit_status == 0, result.tail()
            return took
        finally:
            await cluster.close()

    def one_check() -> float:
        start = time.perf_counter()
        code = cli_main(["check", "-c", str(sim_lab.config_path)])
        took = time.perf_counter() - start
        assert code == 0, capsys.readouterr().out
        return took

    rounds = 5
    db_checks = [asyncio.run(one_db_check()) for _ in range(rounds)]
    checks = [one_check() for _ in range(rounds)]
    capsys.readouterr()
    ratio = statistics.median(checks) / statistics.median(db_checks)
    with capsys.disabled():
        print(f"\none glance-manage db check over SSH: {ms(db_checks)}")
        print(f"glance-tui check (3 nodes, 8 gates):  {ms(checks)}")
        print(f"check / db check (medians): {ratio:.2f}x")


# ---------------------------------------------------------------- 100 nodes

BIG = int(__import__("os").environ.get("BENCH_NODES", "100"))


async def test_a_hundred_nodes_polled_every_second(tmp_path):
    """100 scripted nodes, LB and nodes polled at 1 Hz: memory, first frame, key → frame."""
    config = scripted_config(tmp_path, nodes=BIG, lb_poll_interval=1.0, node_poll_interval=1.0)
    engine = ScriptedEngine(config, tmp_path / "journal")
    app = metered(GlanceApp(engine, config=config, multiplexer=True))
    rss_before, _ = rss_mb()
    start = time.perf_counter()
    keys: list[float] = []
    async with app.run_test(headless=False, size=(120, 40)) as pilot:
        first_frame = await frame_after(pilot, start)
        main = await ready(pilot)
        main_frame = time.perf_counter() - start
        table = main.query_one("#nodes")
        await wait_for(pilot, lambda: table.cell(f"glance-{BIG}", "release") != "probing…", what="every node probed")
        ready_at = time.perf_counter() - start
        polls0, node_polls0 = engine.cluster.lb_calls, engine.cluster.node_calls
        began = time.perf_counter()
        steps = engine.plan.steps
        for i in range(40):
            node = engine.sim[f"glance-{1 + i % BIG}"]
            node.in_flight = i % 5  # the data keeps changing too
            key, index = ("down", 1) if i % 2 == 0 else ("up", 0)
            await pilot.pause(0.2)
            t0 = time.perf_counter()
            await pilot.press(key)
            keys.append(await frame_after(pilot, t0, f"Step {steps[index].number} · "))
        elapsed = time.perf_counter() - began
        rss_now, rss_peak = rss_mb()
        polls = (engine.cluster.lb_calls - polls0) / elapsed, (engine.cluster.node_calls - node_polls0) / elapsed
    print(f"\n{BIG} scripted nodes, LB + nodes polled at 1 Hz, 120x40:")
    print(f"  first frame {first_frame * 1000:.0f} ms; main screen ready {main_frame * 1000:.0f} ms; every node shown {ready_at * 1000:.0f} ms")
    print(f"  key → frame: {ms(keys)}")
    print(f"  resident memory of the test process: {rss_now:.0f} MB now, {rss_peak:.0f} MB peak (before the app: {rss_before:.0f} MB)")
    print(f"  polls/s: LB {polls[0]:.2f}, nodes {polls[1]:.2f}")
    assert polls[0] > 0.5 and polls[1] > 0.5, "not polled at about 1 Hz"


# ---------------------------------------------------------------- every screen's keys (scripted engine)

SCREEN_ROUNDS = 8


async def test_key_to_visible_effect_on_every_screen(tmp_path):
    """Key → the first frame showing its effect, for the keys an operator presses on each screen."""
    from screens.dialogs import BlockedScreen, ConfirmScreen
    from screens.journal import JournalScreen
    from screens.summary import SummaryScreen
    from tests.ui_helpers import drive_until, make

    figures: dict[str, list[float]] = {}

    async def timed(pilot: Any, name: str, key: str, showing: str | tuple[str, ...]) -> None:
        await pilot.pause(0.2)  # the previous frame is out: what follows is the key's
        t0 = time.perf_counter()
        await pilot.press(key)
        figures.setdefault(name, []).append(await frame_after(pilot, t0, showing))

    for round_ in range(SCREEN_ROUNDS):
        (tmp_path / str(round_)).mkdir()
        app, engine = make(tmp_path / str(round_))
        metered(app)
        async with app.run_test(headless=False, size=(80, 24)) as pilot:
            main = await ready(pilot)
            steps = engine.plan.steps
            main.query_one("#steps").select(steps[3].id)
            await timed(pilot, "main: n (next step's panel)", "n", f"Step {steps[0].number} · ")
            await timed(pilot, "main: l (journal)", "l", ("Journal:", "run.start"))
            await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen))
            await timed(pilot, "journal: escape (main screen)", "escape", "Checklist")
            await drive_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await timed(pilot, "confirmation: n (the dialog closes)", "n", "Checklist")
            await wait_for(pilot, lambda: app.screen is main and main.can_continue)
            engine.gate("db-version", ok=False, reason="scripted soft failure", soft=True)
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, BlockedScreen))
            await pilot.press("o")  # to the reason (the buttons have the focus)
            await timed(pilot, "blocked: a character of the reason", "ж", "ж")
            await pilot.press("escape")  # abort: the run's summary
            await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen))
            await timed(pilot, "summary: w (report written)", "w", "Report written")
            await pilot.press("escape")
            engine.gate("db-version")
            await wait_for(pilot, lambda: app.screen is main and main.can_continue)
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await timed(pilot, "confirmation: y (the action starts)", "y", "▶ Back up")
    print("\nkey → first frame showing its effect, scripted engine, 80x24:")
    for name, values in figures.items():
        print(f"  {name:<40} {ms(values)}")
    assert all(len(v) == SCREEN_ROUNDS for v in figures.values())
