"""The drain view and the drain-timeout dialog name the work beside the LB's sessions: each kind's
count, and what each connection and import is (image, method, age, size)."""

from __future__ import annotations

from glance_tui.api import RUNNING, ActionStarted, DrainProgress, RunState
from screens.dialogs import DrainTimeoutScreen
from screens.drain import DrainView
from tests.ui_helpers import make, ready, wait_for

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
