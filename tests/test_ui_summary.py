"""The summary screen that ends every run: after a failed step (snapshot at 80×24), after an
aborted drain (which node is out of rotation, the next safe action), and after the whole
upgrade (run.end journaled; ``w`` writes the report and shows its path)."""

from __future__ import annotations

import time
from pathlib import Path

from glance_tui.api import DONE, read_records
from screens.dialogs import DrainTimeoutScreen, FailureScreen
from screens.summary import SummaryScreen
from tests.ui_helpers import answer_routine, make, ready, wait_for


async def _until_summary(pilot, timeout: float = 60.0) -> SummaryScreen:
    """Drive the wizard (aborting whatever fails) until the run's summary is up and probed."""
    app = pilot.app
    main = app.main
    deadline = time.monotonic() + timeout
    while not isinstance(app.screen, SummaryScreen):
        assert time.monotonic() < deadline, f"no summary; screen {app.screen!r}, states {main.engine.states}"
        screen = app.screen
        if isinstance(screen, FailureScreen):
            await pilot.press("a")
        elif isinstance(screen, DrainTimeoutScreen):
            await pilot.press("a")
        elif not await answer_routine(pilot) and screen is main and main.can_continue:
            await pilot.press("c")
        await pilot.pause(0.02)
    await wait_for(pilot, lambda: app.screen.end is not None, what="summary probes")
    return app.screen


def test_summary_after_a_failed_step_80x24(snap_compare, tmp_path):
    app, engine = make(tmp_path)
    engine.fail_once[("upgrade-new", "upgrade")] = (
        "upgrading glance-1 failed: `apt-get install -y glance-api` on glance-1 exited 100", ["E: Unable to locate package glance-api"])

    async def before(pilot):
        await ready(pilot)
        await _until_summary(pilot)
        app.clear_notifications()
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


async def test_summary_after_an_aborted_drain_names_the_node_and_next_action(tmp_path):
    app, engine = make(tmp_path)
    engine.drain_script = [5, 4, 4, 3]  # never reaches 0: the drain times out, the operator aborts
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        summary = await _until_summary(pilot)
        end = summary.end
        assert end.outcome == "aborted" and "step 2" in end.detail
        assert any("Back up" in line for line in end.changed)
        assert any(line.startswith("step 2:") for line in end.left) and any(line.startswith("step 8:") for line in end.left)
        body = str(summary.query_one("#summary-body").render())
        assert "The run was aborted" in body and "Next safe action" in body and "What is left" in body
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main)


async def test_summary_after_the_whole_upgrade_writes_the_report(tmp_path):
    app, engine = make(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        summary = await _until_summary(pilot, timeout=120)
        assert engine.states["contract"] == DONE and summary.end.outcome == "finished"
        assert "The upgrade is complete" in str(summary.query_one("#summary-body").render())
        assert "Nothing is left to run" in summary.end.next_action and summary.end.out_of_rotation == []
        records = list(read_records(engine.journal.path))
        assert records[-1]["event"] == "run.end" and records[-1]["ok"] is True
        await pilot.press("w")
        await wait_for(pilot, lambda: summary.report_path is not None, what="report written")
        path = Path(summary.report_path)
        assert path.is_file() and path.suffix == ".html" and path.parent == engine.journal.path.parent
        assert path.read_text().startswith("<!DOCTYPE html>") and "FINISHED" in path.read_text()
        assert str(path) in str(summary.query_one("#summary-report").render())


async def test_summary_shows_unknown_when_the_lb_cannot_be_read(tmp_path):
    app, engine = make(tmp_path)
    engine.fail_once[("upgrade-new", "upgrade")] = ("upgrade failed", ["E: broken"])
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        engine.cluster.lb_error = "stats endpoint unreachable"
        summary = await _until_summary(pilot)
        assert summary.end.outcome == "failed"
        assert any("load balancer state unknown" in u for u in summary.end.unknown)
        assert "unknown" in summary.end.next_action


def test_summary_text_never_repeats_the_headline_or_shows_an_empty_heading():
    """It said "The upgrade is complete. upgrade complete" and showed "Next safe action" with nothing under it."""
    from glance_tui.api import RunEnd
    from screens.summary import summary_text

    for end in (RunEnd("finished", "upgrade complete"), RunEnd("finished", "Upgrade complete."), RunEnd("aborted", "", next_action="  "),
                RunEnd("failed", "the run failed", next_action="")):
        plain = summary_text(end).plain
        first = plain.splitlines()[0]
        assert first in ("The upgrade is complete.", "The run was aborted.", "The run failed."), first
        lines = plain.splitlines()
        for i, line in enumerate(lines):
            if line and not line.startswith(" ") and i > 0:  # a heading: something is under it
                assert i + 1 < len(lines) and lines[i + 1].strip(), f"empty heading {line!r} in:\n{plain}"
        assert "Next safe action" not in plain
    detailed = summary_text(RunEnd("failed", "stopped at step 3: failed", next_action="fix it, then resume")).plain
    assert detailed.startswith("The run failed. stopped at step 3: failed\n") and "Next safe action\n  fix it, then resume" in detailed


async def test_a_summary_that_cannot_be_built_says_so(tmp_path, monkeypatch):
    """Its worker failing is a message to the operator, never a "Probing…" that stays forever."""
    import screens.summary
    from screens.dialogs import MessageScreen

    def broken(*args, **kw):
        raise RuntimeError("a bug in run_end")

    monkeypatch.setattr(screens.summary, "run_end", broken)
    app, engine = make(tmp_path)
    engine.drain_script = [5, 4, 4, 3]
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        while not isinstance(app.screen, DrainTimeoutScreen):
            if not await answer_routine(pilot) and app.screen is app.main and app.main.can_continue:
                await pilot.press("c")
            await pilot.pause(0.02)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, MessageScreen), what="the failure's message")
        assert "the run's summary failed — RuntimeError: a bug in run_end" in str(app.screen.query_one("#message-text").render())
