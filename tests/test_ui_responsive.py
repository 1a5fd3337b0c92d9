"""No keypress is lost, nothing fails silently: Pilot tests against the scripted engine.

A key that starts something shows "checking gates…" before the key handler returns (so on
the next frame); "continue" pressed while gates are still being checked runs the step when
they pass or explains the blocking gate; a failing poller reaches the operator once.
"""

from __future__ import annotations

from screens.dialogs import ConfirmScreen, MessageScreen
from tests.ui_helpers import make, ready, wait_for


def notes(app) -> str:
    return "\n".join(n.message for n in app._notifications)


async def _checking(pilot, main, engine) -> None:
    """Make the gates slow and wait until a check is under way."""
    engine.gate_delay = 2.0
    calls = len(engine.calls)  # an evaluation that starts from now on is slow
    await wait_for(pilot, lambda: len(engine.calls) > calls and main._probe_lock.locked(), what="a slow gate check under way")


async def test_continue_while_gates_are_checked_runs_the_step_when_they_pass(tmp_path):
    app, engine = make(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        main = await ready(pilot)
        await _checking(pilot, main, engine)
        await pilot.press("c")
        # feedback before anything else happens: the indicator is up, the key is queued
        assert main.activity.display and main.activity.what == "checking gates…"
        assert main.continuing and not main.can_continue
        await pilot.press("c")  # a second press is answered too, not swallowed
        assert "continue is on its way" in notes(app)
        engine.gate_delay = 0.0
        await wait_for(pilot, lambda: engine.calls.count("run:preflight") == 1, what="the step to run")
        await wait_for(pilot, lambda: engine.states["preflight"] == "done" and not main.activity.display)
        await wait_for(pilot, lambda: main.can_continue, what="the next step to be ready")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the backup's confirmation")
        assert engine.calls.count("run:preflight") == 1


async def test_continue_while_gates_are_checked_explains_a_blocking_gate(tmp_path):
    app, engine = make(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        main = await ready(pilot)
        await _checking(pilot, main, engine)
        engine.gate("ssh", ok=False, reason="glance-2: connection refused", fix="start sshd on glance-2")
        await pilot.press("c")
        assert main.activity.display and main.activity.what == "checking gates…"
        engine.gate_delay = 0.0
        await wait_for(pilot, lambda: "Continue is blocked" in notes(app), what="the explanation")
        assert "start sshd on glance-2" in notes(app)
        assert "run:preflight" not in engine.calls and not main.continuing and not main.activity.display


async def test_recheck_shows_activity_at_once(tmp_path):
    app, engine = make(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        main = await ready(pilot)
        engine.gate_delay = 3.0  # far longer than a key press takes to be handled, even on a loaded CI machine
        await pilot.press("r")
        assert main.activity.display and "re-checking" in main.activity.what
        engine.gate_delay = 0.0
        await wait_for(pilot, lambda: not main.activity.display, what="the re-check to finish")


async def test_a_failing_poller_reaches_the_operator_once(tmp_path):
    app, engine = make(tmp_path)
    calls = 0

    async def broken():
        nonlocal calls
        calls += 1
        raise RuntimeError("ps output had no header")

    async with app.run_test(size=(80, 24)) as pilot:
        main = await ready(pilot)
        engine.cluster.probe_nodes = broken
        await wait_for(pilot, lambda: "node poll failed — RuntimeError: ps output had no header" in notes(app), what="the failure notice")
        await wait_for(pilot, lambda: calls >= 3, what="the poller to keep being re-armed")
        assert notes(app).count("node poll failed") == 1, "a repeating failure is shown once"
        assert app.screen is main


async def test_a_failed_step_worker_opens_a_message(tmp_path):
    app, engine = make(tmp_path)

    async def crash(step, operator):
        raise KeyError("a bug in the engine")

    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        engine.run_step = crash
        await wait_for(pilot, lambda: app.main.can_continue)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, MessageScreen), what="the error message")
        assert "KeyError" in str(app.screen.query_one("#message-text").render())


async def test_roles_come_from_the_real_engines_bookkeeping(tmp_path):
    from glance_tui.api import BLOCKED, FAILED
    from glance_tui.step_states import StepStates

    app, engine = make(tmp_path)
    assert isinstance(engine.book, StepStates)
    engine.state.new_node = "glance-1"
    engine.book.add(["node:glance-2"])
    engine.book.set("node:glance-2", BLOCKED)
    assert engine.role_of("glance-2") == "pending"  # as the product shows it (it said "current")
    engine.book.set("node:glance-2", FAILED)
    assert engine.role_of("glance-2") == "current"
    assert engine.role_of("glance-1") == "NEW NODE"
