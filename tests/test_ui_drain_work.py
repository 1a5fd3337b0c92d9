"""The drain view and the drain-timeout dialog name the work beside the LB's sessions: each kind's
count, and what each connection and import is (image, method, age, size)."""

from __future__ import annotations

import asyncio
import time

import pytest

from glance_tui.api import DONE, RUNNING, ActionStarted, DrainProgress, Engine, RunState
from glance_tui.journal import read_records
from screens.app import GlanceApp
from screens.dialogs import ConfirmScreen, DrainTimeoutScreen
from screens.drain import DrainView
from tests.ui_helpers import answer_routine, make, ready, wait_for

IMPORT = "import 5d1c0e64-7f0a-4a2b-9c1e-2f3a4b5c6d7e (web-download; task processing, image importing; 95s old; 12.0 MiB so far; any node)"
PEER = "connection from 127.0.0.12:40112 to 127.0.0.11:9292"


async def test_drain_view_shows_each_kind_and_what_it_is(tmp_path) -> None:
    app, engine = make(tmp_path, state=RunState(new_node="glance-1", backup={"path": "/var/backups/glance/glance.sql"}))
    engine.preflight_ok = True
    async with app.run_test(size=(120, 40)) as pilot:
        main = await ready(pilot)
        main.busy = True
        engine._set(engine.plan.step("new-node"), RUNNING)
        engine.emit(ActionStarted("new-node", "wait-drained", "Wait until glance-1 has no request in flight", ()))
        engine.emit(DrainProgress("glance-1", 2, 30.0, 600.0, "DRAIN", "LB 0 · connections 1 · imports 1", (PEER, IMPORT)))
        drain = main.query_one("#drain", DrainView)
        await wait_for(pilot, lambda: drain.last is not None and drain.last.elapsed == 30.0)
        shown = str(main.query_one("#drain-figures").render())
        assert "in flight: 2" in shown and "LB 0 · connections 1 · imports 1" in shown
        assert "5d1c0e64-7f0a-4a2b-9c1e-2f3a4b5c6d7e (web-download" in shown and "12.0 MiB so far" in shown and "95s old" in shown
        assert "127.0.0.12:40112" in shown
        # an unknown part says why, and the count is unknown, never 0
        engine.emit(DrainProgress("glance-1", None, 31.0, 600.0, "DRAIN", "LB 0 · connections 0 · imports ?",
                                  ("unknown: cannot read Glance's import work from the database: access denied",)))
        await wait_for(pilot, lambda: drain.last.elapsed == 31.0)
        shown = str(main.query_one("#drain-figures").render())
        assert "in flight: unknown" in shown and "imports ?" in shown and "access denied" in shown


async def test_drain_timeout_dialog_lists_the_work_that_would_fail(tmp_path) -> None:
    app, engine = make(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        app.push_screen(DrainTimeoutScreen("glance-1", 1, 600.0, (IMPORT,)))
        await wait_for(pilot, lambda: isinstance(app.screen, DrainTimeoutScreen) and bool(app.screen.query("Static")))
        await pilot.pause(0.1)
        text = "\n".join(str(s.render()) for s in app.screen.query("Static"))
        assert "still has 1 request(s) in flight after 600s" in text and IMPORT in text and "imports WILL FAIL" in text


@pytest.mark.services
async def test_an_import_started_while_the_stop_dialog_sat_open_sends_the_stop_back_to_the_drain(sim_lab, sim_config) -> None:
    """The assistant on the real engine: the operator confirms the stop after a client's import
    began on the node; the re-read finds it, the drain view waits for it, and the stop runs once it ends."""
    from tests.test_drain_work import clear, finish_imports, start_import

    sim_lab.reset()
    clear(sim_lab)
    engine = Engine.open(sim_config, resume=False)
    app = GlanceApp(engine, config=sim_config, multiplexer=True, gate_interval=1.0)
    started: list[str] = []
    shown: list[DrainProgress] = []
    engine.subscribe(lambda e: shown.append(e) if isinstance(e, DrainProgress) and started else None)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            main = await ready(pilot, timeout=60)
            deadline = time.monotonic() + 300
            while engine.states.get("new-node") != DONE:
                assert time.monotonic() < deadline, f"stuck on {app.screen!r}; states {engine.states}"
                screen = app.screen
                if isinstance(screen, ConfirmScreen) and screen.action_.id == "stop" and not started:
                    started.append(start_import(sim_lab, "glance-direct"))  # while the dialog sits open
                if started and len(started) == 1 and any(started[0] in line for p in shown for line in p.work):
                    await asyncio.to_thread(finish_imports, sim_lab)  # the drain view showed it: it ends now
                    started.append("finished")
                if not await answer_routine(pilot) and app.screen is main and main.can_continue and engine.states.get("new-node") != DONE:
                    await pilot.press("c")
                await pilot.pause(0.05)
            assert (await engine.cluster.probe_node("glance-1")).running is False
    finally:
        await engine.close()
        clear(sim_lab)
    assert started[1:] == ["finished"]
    records = list(read_records(engine.journal.path))
    rewait = next(r for r in records if r["event"] == "drain.rewait")
    assert rewait["node"] == "glance-1" and started[0] in str(rewait["found"])
    stop = next(r for r in records if r["event"] == "action.end" and r.get("action") == "stop")
    assert stop["ok"] is True and stop["ts"] > rewait["ts"]
