"""Snapshots of the main screen, the drain view and a failed-step panel at 80×24 and 120×40.

The scripted engine's values and the clock are frozen, so the pictures are deterministic.
Update baselines with ``pytest tests/test_ui_snapshots.py --snapshot-update`` and review the diff.
"""

from __future__ import annotations

import pytest

from glance_tui.api import RUNNING, ActionFinished, ActionStarted, DrainProgress, RunState
from screens.dialogs import ConfirmScreen, FailureScreen
from tests.ui_helpers import make, ready, wait_for

SIZES = [(80, 24), (120, 40)]


def _mid_run(tmp_path, **kw):
    """NEW NODE glance-1 chosen, backed up; glance-1 stopped and upgraded."""
    app, engine = make(tmp_path, state=RunState(new_node="glance-1", backup={"path": "/var/backups/glance/glance.sql"}), **kw)
    engine.preflight_ok = True
    return app, engine


async def _settle(pilot) -> None:
    main = await ready(pilot)
    table = main.query_one("#nodes")
    await wait_for(pilot, lambda: table.cell("glance-3", "release") != "probing…" and table.cell("glance-3", "lb") != "…")
    await wait_for(pilot, lambda: main.query_one("#db").checked)
    pilot.app.clear_notifications()
    await pilot.pause(0.1)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen_blocked_on_a_gate(snap_compare, tmp_path, size):
    app, engine = _mid_run(tmp_path)
    engine.sim["glance-1"].running = False
    engine.upgrade("glance-1")
    engine.gate("binlog", ok=False, reason="log_bin is ON and the glance user lacks SUPER; log_bin_trust_function_creators is 0",
                fix="SET GLOBAL log_bin_trust_function_creators = 1 (the assistant offers it)")

    async def before(pilot):
        await _settle(pilot)
        await pilot.press("n")
        await wait_for(pilot, lambda: app.main.query_one("#steps").selected_id == "expand" and not app.main.can_continue)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_drain_view(snap_compare, tmp_path, size):
    app, engine = _mid_run(tmp_path)
    engine.sim["glance-1"].state, engine.sim["glance-1"].in_flight = "DRAIN", 2

    async def before(pilot):
        await _settle(pilot)
        main = app.main
        main.busy = True  # as while the step's worker runs
        engine._set(engine.plan.step("new-node"), RUNNING)
        engine.emit(ActionStarted("new-node", "drain", "Drain glance-1 (take it out of rotation)", ("[lb http://127.0.0.1:8404/stats] POST b=glance_api&s=glance-1&action=drain",)))
        engine.emit(ActionFinished("new-node", "drain", True))
        engine.emit(ActionStarted("new-node", "wait-drained", "Wait until glance-1 has no request in flight", ("[lb] poll scur+qcur of glance-1 every 1s (timeout 600s)",)))
        for i, n in enumerate([7, 7, 6, 6, 5, 5, 4, 4, 4, 3, 3, 2, 2, 2]):
            engine.emit(DrainProgress("glance-1", n, float(i * 5), 600.0, "DRAIN"))
        await wait_for(pilot, lambda: main.query_one("#drain").last is not None and main.query_one("#drain").last.elapsed == 65.0)
        main.sync_bindings()
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_failed_step_panel(snap_compare, tmp_path, size):
    app, engine = _mid_run(tmp_path)
    engine.sim["glance-1"].running = False
    engine.fail_once[("upgrade-new", "upgrade")] = (
        "upgrading glance-1 failed: `apt-get install -y glance-api` on glance-1 exited 100 — fix: look at the package manager output, fix, then retry",
        ["Reading package lists...", "Building dependency tree...", "E: Unable to locate package glance-api"],
    )

    async def before(pilot):
        await _settle(pilot)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, FailureScreen))
        app.clear_notifications()
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=before)


def test_main_screen_at_60x20(snap_compare, tmp_path):
    """The smallest terminal an operator might have: the selected step's panel stays readable."""
    app, engine = _mid_run(tmp_path)
    engine.sim["glance-1"].running = False
    engine.upgrade("glance-1")

    async def before(pilot):
        await _settle(pilot)
        await pilot.press("n")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(60, 20), run_before=before)
