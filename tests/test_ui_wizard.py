"""Pilot tests of the wizard against the scripted engine: fast, no services."""

from __future__ import annotations

import pytest
from textual.widgets import Button, Input, Sparkline

from glance_tui.api import DONE, FAILED
from screens.checklist import Checklist
from screens.dialogs import BlockedScreen, ConfirmScreen, DrainTimeoutScreen, FailureScreen, QuitScreen
from screens.drain import DrainView
from screens.journal import JournalScreen
from screens.summary import SummaryScreen
from tests.ui_helpers import answer_routine, drive_until, make, ready, wait_for


def notes(app) -> str:
    return "\n".join(n.message for n in app._notifications)


async def test_whole_wizard_from_preflight_to_contract(tmp_path):
    app, engine = make(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        main = await ready(pilot)
        checklist = main.query_one("#steps", Checklist)
        assert checklist.row_count == 9  # 0-6, the step-7 placeholder, 8
        seen_contract_word = False
        while engine.states.get("contract") != DONE:
            screen = app.screen
            if isinstance(screen, ConfirmScreen) and screen.word:
                # contract: enter without the typed word is refused
                await pilot.press("enter")
                await pilot.pause(0.05)
                assert app.screen is screen and "type 'contract' exactly" in notes(app)
                seen_contract_word = True
            await drive_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen) or app.screen.word is None or seen_contract_word
                              if engine.states.get("contract") != DONE else True)
            if not await answer_routine(pilot) and app.screen is main and main.can_continue:
                await pilot.press("c")
            await pilot.pause(0.02)
        assert seen_contract_word
        assert all(engine.states[s.id] == DONE for s in engine.plan.steps), engine.states
        assert engine.state.new_node == "glance-1" and engine.db_code == 0
        assert all(n.release == "2024.1" and n.running and n.state == "UP" for n in engine.sim.values())
        # the per-node loop appeared node by node once the NEW NODE was chosen
        assert [s.number for s in engine.plan.steps if s.group == "7"] == ["7.1", "7.2"]
        assert checklist.row_count == 10 and checklist.state_of("node:glance-3") == DONE
        await wait_for(pilot, lambda: main.query_one("#nodes").cell("glance-2", "role") == "upgraded")
        assert main.query_one("#nodes").cell("glance-1", "role") == "NEW NODE"
        assert main.query_one("#nodes").cell("glance-3", "release") == "target 28.2.0"
        await wait_for(pilot, lambda: not main.can_continue and main.next_id is None)
        await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen))  # the run ends on its summary
        await pilot.press("escape")
        await pilot.press("c")
        await wait_for(pilot, lambda: "upgrade is complete" in notes(app))


async def test_continue_refused_while_a_hard_gate_fails_then_allowed(tmp_path):
    app, engine = make(tmp_path)
    engine.gate("db-version", ok=False, reason="MariaDB 5.1 is older than 5.5", fix="upgrade the database server first")
    async with app.run_test(size=(80, 24)) as pilot:
        main = await ready(pilot)
        assert not main.can_continue
        binding = app.screen.active_bindings["c"]
        assert binding.binding.action == "continue" and binding.enabled is False  # dimmed in the footer
        assert main.query_one("#steps", Checklist).state_of("preflight") == "blocked"
        await pilot.press("c")
        await wait_for(pilot, lambda: "Continue is blocked" in notes(app))
        assert "fix: upgrade the database server first" in notes(app)
        assert "MariaDB 5.1 is older than 5.5" in str(main.query_one("#step-detail").render())
        # the palette path explains too
        app.clear_notifications()
        await main.run_palette_action("continue")
        await wait_for(pilot, lambda: "Continue is blocked" in notes(app))
        assert not any(c.startswith("run:") for c in engine.calls)
        # fixing the cause unblocks live, without a restart
        engine.gate("db-version")
        await wait_for(pilot, lambda: main.can_continue, what="gates re-evaluated")
        assert app.screen.active_bindings["c"].enabled is True
        await pilot.press("c")
        await wait_for(pilot, lambda: engine.states["preflight"] == DONE)
        assert "run:preflight" in engine.calls


async def test_soft_gate_override_needs_a_typed_reason(tmp_path):
    app, engine = make(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        main = await ready(pilot)
        await drive_until(pilot, lambda: engine.states["backup"] == DONE)
        engine.gate("new-node", ok=False, reason="scripted soft failure", fix="think twice", soft=True)
        await wait_for(pilot, lambda: main.next_id == "new-node" and main.can_continue)  # soft: continue stays enabled
        await pilot.press("c")
        await drive_until(pilot, lambda: isinstance(app.screen, BlockedScreen))
        assert app.screen.overridable
        assert isinstance(app.focused, Button) and app.focused.id == "recheck"  # r and a act as the buttons say
        await pilot.press("o")  # to the reason
        assert isinstance(app.focused, Input) and app.focused.id == "reason"
        await pilot.press("enter")  # empty reason: refused
        await pilot.pause(0.05)
        assert isinstance(app.screen, BlockedScreen)
        await pilot.press(*"maintenance window", "enter")
        await wait_for(pilot, lambda: engine.state.overrides)
        engine.gate("new-node")  # the engine re-checks gates per action; let the rest pass
        await drive_until(pilot, lambda: engine.states["new-node"] == DONE)
        assert engine.state.overrides[0]["reason"] == "maintenance window"


async def test_a_blocked_dialogs_keys_act_as_its_buttons_say(tmp_path):
    """The buttons, not the reason's input, have the focus: r rechecks at once (it used to type
    an r into the reason)."""
    app, engine = make(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        main = await ready(pilot)
        await drive_until(pilot, lambda: engine.states["backup"] == DONE)
        engine.gate("new-node", ok=False, reason="scripted soft failure", fix="think twice", soft=True)
        await wait_for(pilot, lambda: main.next_id == "new-node" and main.can_continue)
        await pilot.press("c")
        await drive_until(pilot, lambda: isinstance(app.screen, BlockedScreen))
        blocked = app.screen
        assert [str(b.label) for b in blocked.query(Button)] == ["Recheck (r)", "Override (o)", "Abort (a/esc)"]
        typed = blocked.query_one("#reason", Input)
        await pilot.press("r")
        await wait_for(pilot, lambda: "blocked:recheck" in engine.calls)
        assert typed.value == ""  # nothing typed into the reason


@pytest.mark.parametrize("choice", ["wait", "stop", "abort"])
async def test_drain_timeout_choices(tmp_path, choice):
    app, engine = make(tmp_path)
    engine.drain_script = [5, 4, 4, 3]  # never reaches 0: the 3 s timeout passes
    async with app.run_test(size=(120, 40)) as pilot:
        main = await ready(pilot)
        await drive_until(pilot, lambda: isinstance(app.screen, DrainTimeoutScreen))
        drain = main.query_one("#drain", DrainView)
        assert drain.display and drain.node == "glance-1"
        assert list(main.query_one("#drain-graph", Sparkline).data)[:4] == [5.0, 4.0, 4.0, 3.0]
        assert "time left 0s" in str(main.query_one("#drain-figures").render())
        if choice == "wait":
            engine.drain_script[:] = [0]  # the requests finish during the extra wait
            await pilot.press("w")
            await drive_until(pilot, lambda: engine.states["new-node"] == DONE)
            assert engine.sim["glance-1"].running is False
        elif choice == "stop":
            await pilot.press("s")
            # the form has the keys now: the buttons no longer advertise w and a
            assert [str(b.label) for b in app.screen.query(Button)] == ["Keep waiting", "Stop anyway (s)", "Back in rotation, abort (esc)"]
            await pilot.press(*"stop", "enter")
            await pilot.press("enter")  # no reason yet: refused
            await pilot.pause(0.05)
            assert isinstance(app.screen, DrainTimeoutScreen)
            await pilot.press(*"users warned", "enter")
            await drive_until(pilot, lambda: engine.states["new-node"] == DONE)
            assert engine.state.overrides == [{"gate": "drain-timeout", "node": "glance-1", "reason": "users warned"}]
        else:
            await pilot.press("a")
            await wait_for(pilot, lambda: not main.busy)
            assert engine.sim["glance-1"].state == "UP" and engine.sim["glance-1"].running
            assert engine.states["new-node"] != DONE
        assert f"drain:{choice}" in engine.calls


async def test_failed_action_panel_retry_and_rollback(tmp_path):
    app, engine = make(tmp_path)
    engine.fail_once[("upgrade-new", "upgrade")] = ("upgrading glance-1 failed: `apt-get install -y glance-api` exited 100", ["E: Unable to locate package glance-api"])
    async with app.run_test(size=(120, 40)) as pilot:
        main = await ready(pilot)
        await drive_until(pilot, lambda: isinstance(app.screen, FailureScreen))
        panel = app.screen
        assert panel.can_rollback and "Unable to locate package" in str(panel.query_one("#failure-output").render())
        await pilot.press("b")
        await wait_for(pilot, lambda: not main.busy)
        assert engine.rollbacks == ["glance-1"] and engine.states["upgrade-new"] == FAILED
        assert main.query_one("#steps", Checklist).state_of("upgrade-new") in ("failed", "ready")
        # retry path: fail once more, then retry succeeds
        engine.fail_once[("node:glance-2", "stop")] = ("stopping Glance on glance-2 failed", ["Failed to stop glance-api.service"])
        # the real plan's steps 3-7.1 lie in between (start-new alone: start, health, ready, wait-up)
        await drive_until(pilot, lambda: isinstance(app.screen, FailureScreen), timeout=40)
        await pilot.press("r")
        await drive_until(pilot, lambda: engine.states["node:glance-2"] == DONE, timeout=40)
        assert "failure:retry" in engine.calls


async def test_resume_on_start_shows_where_the_run_stands(tmp_path):
    from glance_tui.api import RunState
    from screens.app import GlanceApp
    from screens.dialogs import ResumeScreen
    from tests.ui_scripted import ScriptedEngine, scripted_config

    config = scripted_config(tmp_path)
    made: dict[bool, ScriptedEngine] = {}

    def factory(resume: bool) -> ScriptedEngine:
        eng = ScriptedEngine(config, tmp_path / "journal", state=RunState(new_node="glance-2", backup={"path": "x"}) if resume else None)
        if resume:
            eng.preflight_ok = True
            eng.sim["glance-2"].running = False
            eng.upgrade("glance-2")
        made[resume] = eng
        return eng

    for key, expect_resumed in (("r", True), ("n", False)):
        made.clear()
        app = GlanceApp(factory, config=config, pending=True, multiplexer=True, gate_interval=0.05)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ResumeScreen))
            summary = str(app.screen.query_one("#resume-summary").render())
            assert "NEW NODE: glance-2" in summary and "Next: step 4" in summary and "Steps done (probed now): 0, 1, 2, 3" in summary
            await pilot.press(key)
            main = await ready(pilot)
            assert app.engine is made[expect_resumed]
            if expect_resumed:
                assert main.next_id == "expand" and any(s.group == "7" for s in app.engine.plan.steps)
            else:
                assert made[True].closed and main.next_id == "preflight"


async def test_quit_mid_step_asks_and_says_what_the_cluster_is_left_in(tmp_path):
    app, engine = make(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        main = await ready(pilot)
        await drive_until(pilot, lambda: engine.states["new-node"] == "running" and isinstance(app.screen, ConfirmScreen) and app.screen.action_.id == "stop")
        await wait_for(pilot, lambda: main.query_one("#nodes").cell("glance-1", "lb") == "DRAIN")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen))
        text = str(app.screen.query_one("#quit-explanation").render())
        assert "Step 2" in text and "out of rotation: glance-1 (DRAIN)" in text and "resume" in text
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: engine.closed)
    assert app.return_code == 0


async def test_quit_when_idle_needs_no_question(tmp_path):
    app, engine = make(tmp_path)
    async with app.run_test() as pilot:
        await ready(pilot)
        await pilot.press("q")
        await wait_for(pilot, lambda: engine.closed)


async def test_dry_run_shows_commands_and_changes_nothing(tmp_path):
    app, engine = make(tmp_path, dry_run=True)
    async with app.run_test(size=(120, 40)) as pilot:
        main = await ready(pilot)
        assert "DRY RUN" in str(main.query_one("#banner").render())
        await drive_until(pilot, lambda: main.dry_run_over)
        assert all(n.release == "2023.1" and n.running and n.state == "UP" for n in engine.sim.values())
        assert engine.db_code == 3 and engine.state.backup is None
        await pilot.press("c")
        await wait_for(pilot, lambda: "dry run complete" in notes(app))


async def test_journal_screen_and_palette(tmp_path):
    app, engine = make(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen))
        await wait_for(pilot, lambda: any("run.start" in line.text for line in app.screen.query_one("#journal").lines))
        await pilot.press("escape")
        await ready(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"show the journal")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen))


async def test_not_in_tmux_warns_in_the_banner(tmp_path):
    from screens.app import in_multiplexer

    assert in_multiplexer({"TMUX": "/tmp/tmux-0/default,1,0"}) and in_multiplexer({"STY": "1.pts-0"}) and in_multiplexer({"TERM": "screen-256color"})
    assert not in_multiplexer({"TERM": "xterm-256color"})
    app, _ = make(tmp_path)
    app.multiplexer = False
    async with app.run_test() as pilot:
        main = await ready(pilot)
        assert "not inside tmux/screen" in str(main.query_one("#banner").render())


async def test_declining_a_confirmation_changes_nothing_and_the_run_goes_on(tmp_path):
    """"n" at a confirmation is "not now": no summary screen, the step is pending again, and
    c asks again."""
    app, engine = make(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        main = await ready(pilot)
        await drive_until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.action_.id == "backup")
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is main and not main.busy and not main.activity.active)
        assert not isinstance(app.screen, SummaryScreen)
        assert engine.states["backup"] not in (DONE, FAILED)
        assert "declined:backup:backup" in engine.calls
        await wait_for(pilot, lambda: main.can_continue)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.action_.id == "backup")
