"""HAProxy reloaded mid-run (issue 17.1), against a real HAProxy in master-worker mode.

A reload (SIGUSR2, as Kolla-Ansible and OpenStack-Ansible do on every configuration push)
starts a new worker that, without a server-state-file, has every server READY again, while the
old worker finishes its transfers unseen. The tool must see the restart, count what the old
worker may still carry as unknown (bounded by ``hard_stop_after``), and put every node it holds
out back out of rotation at once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from glance_tui.adapters.haproxy import LBProcess, parse_process_html
from glance_tui.adapters.lbset import LoadBalancers
from tests.fixtures.haproxy import SlowBackends, kolla_lab, make_lb_config
from tests.test_lbset import process_page

pytestmark = pytest.mark.services
# HAProxy's hard-stop-after in these tests: the old worker's lifetime after a reload. Every step of a
# test that must happen while it lives (a read that sees it lingering, a transfer it still carries)
# has this long, on a loaded machine too; 2 s left too little.
HARD_STOP = 5.0


@pytest.fixture
def reloadable(tmp_path: Path, slow_backends: SlowBackends):
    """A fresh HAProxy of its own (reloading the session's would disturb other tests)."""
    lab = kolla_lab(tmp_path / "lb", slow_backends.servers, hard_stop_after=HARD_STOP)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def test_process_identity_parsers_are_strict() -> None:
    assert parse_process_html(process_page(812, 3 * 3600 + 62), 100.0) == LBProcess(812, 10862.0, 100.0)
    for page in ("", "<b>pid = </b> 812 (process #1)", "<b>uptime = </b> 0d 0h00m02s", "<b>pid = </b> x (process #1)<b>uptime = </b> 0d 0h00m02s"):
        with pytest.raises(ValueError):
            parse_process_html(page, 0.0)
    a, b = LBProcess(5, 10.0, 100.0), LBProcess(5, 12.0, 102.4)
    assert a.same_process(b) and not a.same_process(LBProcess(6, 12.0, 102.0)) and not a.same_process(LBProcess(5, 1.0, 102.0))


@pytest.mark.parametrize("runtime", [True, False], ids=["with-runtime-socket", "stats-page-only"])
async def test_a_reload_is_seen_and_its_old_process_counts_as_unknown_until_hard_stop_after(reloadable, runtime: bool) -> None:
    cfg = make_lb_config(reloadable, backends=reloadable.backends, runtime=runtime).model_copy(update={"hard_stop_after": HARD_STOP})
    lbs = LoadBalancers([cfg])
    try:
        while (first := await lbs.read()).lingering:  # a fresh HAProxy is itself younger than hard_stop_after
            await asyncio.sleep(0.3)
        assert first.restarts_seen == 0 and first.view("glance-1").in_flight == 0
        old_pid = first.processes["lb"].pid
        await lbs.drain("glance-1")
        assert (await lbs.read()).view("glance-1").admin_out
        new_pid = await asyncio.to_thread(reloadable.reload)
        after = await lbs.read()
        assert after.processes["lb"].pid == new_pid != old_pid
        assert [(r.old.pid, r.new.pid) for r in after.restarts] == [(old_pid, new_pid)]
        view = after.view("glance-1")
        assert not view.admin_out  # the reload forgot the drain
        assert view.in_flight is None and view.unknown_only_from_reload and view.visible_in_flight == 0
        assert "hard_stop_after" in " ".join(view.problems)
        deadline = time.monotonic() + 4 * HARD_STOP
        while (later := await lbs.read()).lingering and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        assert later.view("glance-1").in_flight == 0 and later.restarts_seen == 1  # the old worker is gone by now
    finally:
        await lbs.aclose()


async def test_without_hard_stop_after_the_old_process_stays_unknown(reloadable) -> None:
    lbs = LoadBalancers([make_lb_config(reloadable, backends=reloadable.backends)])
    try:
        assert (await lbs.read()).view("glance-1").in_flight == 0
        await asyncio.to_thread(reloadable.reload)
        await asyncio.sleep(HARD_STOP + 0.5)  # the old worker is gone; only the config does not say so
        view = (await lbs.read()).view("glance-1")
        assert view.in_flight is None and view.unknown_only_from_reload
        assert "set this instance's hard_stop_after" in " ".join(view.problems)
    finally:
        await lbs.aclose()


async def test_a_transfer_still_on_the_old_worker_is_not_counted_as_zero(reloadable, slow_backends: SlowBackends) -> None:
    """What "0 in flight" would cut: a download still served by the reloaded-away worker."""
    cfg = make_lb_config(reloadable, backends=reloadable.backends).model_copy(update={"hard_stop_after": 30.0})
    lbs = LoadBalancers([cfg])
    try:
        await lbs.read()  # the process before the reload
        with slow_backends.holding():
            async with httpx.AsyncClient(timeout=30) as client:
                transfer = asyncio.create_task(client.get(f"{reloadable.frontend_url}/slow?s=20"))
                while not slow_backends.active:
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(reloadable.reload)
                read = await lbs.read()
                assert read.restarts_seen == 1
                # the new worker counts nothing, yet a request is in flight on the old one
                assert sum(read.view(s.name).visible_in_flight or 0 for s in slow_backends.servers) == 0
                assert all(read.view(s.name).in_flight is None for s in slow_backends.servers)
                slow_backends.release.set()
                assert (await transfer).status_code == 200
    finally:
        await lbs.aclose()


# ---------------------------------------------------------------- the run holds what it took out


def _lab_lb(sim_lab):
    return sim_lab.haproxies(sim_lab.load_layout())[0]


async def _admin(ctx, node: str) -> str:
    ctx.invalidate("lb")
    return (await ctx.lb_facts()).views[ctx.config.node(node).lb_server].admin_state


async def test_a_held_node_a_reload_put_back_is_taken_out_again_and_journaled(sim_lab, sim_config) -> None:
    from glance_tui.engine import Engine
    from glance_tui.holds import keep_out
    from glance_tui.journal import read_records
    from glance_tui.plan import lb_act, ready_action

    sim_lab.reset()
    engine = Engine.open(sim_config, resume=False)
    ctx = engine.ctx
    try:
        await lb_act(ctx, "glance-2", "drain")
        await lb_act(ctx, "glance-2", "maint")
        assert ctx.state.held == {"glance-2": "maint"}
        assert await _admin(ctx, "glance-2") == "MAINT"
        assert await keep_out(ctx) == []  # nothing to do while it is out
        await asyncio.to_thread(_lab_lb(sim_lab).reload)
        assert await _admin(ctx, "glance-2") == "READY"  # what the reload did
        done = await keep_out(ctx)
        assert any("restarted (HAProxy pid" in line for line in done)
        assert any(line.startswith("glance-2 was back in rotation") for line in done)
        assert await _admin(ctx, "glance-2") == "MAINT"
        assert await _admin(ctx, "glance-1") == "READY"  # not held: left alone
        records = list(read_records(engine.journal.path))
        assert [r["lb"] for r in records if r["event"] == "lb.restart"] == [ctx.config.lbs[0].name]
        assert any(r["event"] == "lb" and r["node"] == "glance-2" and r.get("why", "").startswith("re-asserted") for r in records)
        # the state record carries the hold: a resumed run keeps guarding it
        assert [r for r in records if r["event"] == "state"][-1]["held"] == {"glance-2": "maint"}
        # the run's own ready ends the hold, and is never skipped because a reload shows the node UP
        assert await ready_action("glance-2").needed(ctx) is True
        await lb_act(ctx, "glance-2", "ready")
        assert ctx.state.held == {}
    finally:
        await engine.close()


async def test_the_engine_guards_holds_by_itself_at_every_poll(sim_lab, sim_config) -> None:
    """No action runs (a node stopped and being upgraded, an operator reading a dialog): the
    guard alone re-asserts MAINT after a reload, within a few polls."""
    from glance_tui.engine import Engine
    from glance_tui.events import Notice
    from glance_tui.operator import Unattended
    from glance_tui.plan import lb_act

    sim_lab.reset()
    engine = Engine.open(sim_config, resume=False)
    notices: list[str] = []
    engine.subscribe(lambda e: notices.append(e.text) if isinstance(e, Notice) else None)
    ctx = engine.ctx
    try:
        assert await engine.run_step(engine.plan.step("preflight"), Unattended(None)) == "done"  # the run is open
        await lb_act(ctx, "glance-3", "maint")
        await ctx.lb_facts()
        await asyncio.to_thread(_lab_lb(sim_lab).reload)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(n.startswith("glance-3 was back in rotation") for n in notices):
            await asyncio.sleep(0.2)
        assert any(n.startswith("glance-3 was back in rotation") for n in notices), notices
        assert await _admin(ctx, "glance-3") == "MAINT"
        await lb_act(ctx, "glance-3", "ready")
    finally:
        await engine.close()
