"""A run killed inside its own ``ready``: ``lb_act`` saves the hold's drop before it sends the
change, so the kill can land between the two. Resumed, the run reads the load balancer: still
out everywhere, the node is this run's again (no second drain, the step's ready ends the hold);
already back in rotation, nothing is held and nothing is put out again.

Seen in CI as a flake of test_resume_hazards' kill-at-every-action.start: a resumed run drained
again a node it had drained itself."""

from __future__ import annotations

import pytest

from glance_tui.engine import Engine
from glance_tui.events import Notice
from glance_tui.holds import keep_out, readies_cut_off
from glance_tui.journal import read_records
from glance_tui.operator import Unattended

pytestmark = pytest.mark.services


class Killed(BaseException):
    """The process dying (nothing in the engine catches it, as nothing survives a kill -9)."""


def kill_at_ready(monkeypatch: pytest.MonkeyPatch, *, after_send: bool) -> None:
    import glance_tui.plan as plan

    real = plan.send_lb_action

    async def send(ctx, node, action, why=""):
        if action == "ready" and not after_send:
            raise Killed()
        await real(ctx, node, action, why)
        if action == "ready":
            raise Killed()

    monkeypatch.setattr(plan, "send_lb_action", send)


async def admin(ctx, node: str) -> str:
    ctx.invalidate("lb")
    return (await ctx.lb_facts()).views[ctx.config.node(node).lb_server].admin_state


STEP = "node:glance-2"  # drain, wait, stop, upgrade, start, health, ready, wait-up


async def killed_in_ready(sim_config, *, after_send: bool) -> Engine:
    """The run up to glance-2's step, killed inside that step's ready."""
    engine = Engine.open(sim_config, resume=False)
    operator = Unattended("glance-1")
    for step in ("preflight", "backup", "new-node", "upgrade-new", "expand", "migrate", "start-new"):
        assert await engine.run_step(engine.plan.step(step), operator) == "done", step
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        kill_at_ready(patch, after_send=after_send)
        await engine.run_step(engine.plan.step(STEP), operator)
    await engine.close()  # as a kill leaves it: no action.end, no run.end
    return engine


async def test_a_ready_cut_off_before_its_send_is_not_drained_again_on_resume(sim_lab, sim_config) -> None:
    sim_lab.reset()
    first = await killed_in_ready(sim_config, after_send=False)
    records = list(read_records(first.journal.path))
    assert [r for r in records if r["event"] == "state"][-1]["held"] == {}  # the drop was saved; the ready never sent
    assert readies_cut_off(records) == {"glance-2": "maint"}  # pinned with MAINT once stopped

    resumed = Engine.open(sim_config, resume=True)
    notices: list[str] = []
    resumed.subscribe(lambda e: notices.append(e.text) if isinstance(e, Notice) else None)
    try:
        assert resumed.journal.path == first.journal.path
        assert await admin(resumed.ctx, "glance-2") == "MAINT"
        assert await resumed.run_step(resumed.plan.step(STEP), Unattended("glance-1")) == "done"
        assert await admin(resumed.ctx, "glance-2") == "READY" and resumed.ctx.state.held == {}
    finally:
        await resumed.close()
    leg = list(read_records(first.journal.path))[len(records):]
    skipped = {r["action"] for r in leg if r["event"] == "action.skip"}
    started = [r["action"] for r in leg if r["event"] == "action.start"]
    assert "drain" in skipped and "drain" not in started, started
    assert started[-1:] == ["ready"] and any(r["event"] == "action.end" and r["action"] == "ready" and r["ok"] for r in leg)
    assert {"glance-2": "maint"} in [r["held"] for r in leg if r["event"] == "state"]  # held again before the ready
    assert any("ready was cut off before it took effect" in n for n in notices), notices


async def test_a_ready_cut_off_after_its_send_is_not_held_out_again(sim_lab, sim_config) -> None:
    sim_lab.reset()
    first = await killed_in_ready(sim_config, after_send=True)
    records = list(read_records(first.journal.path))
    assert readies_cut_off(records) == {"glance-2": "maint"}  # the journal alone cannot tell: the LB does

    resumed = Engine.open(sim_config, resume=True)
    try:
        ctx = resumed.ctx
        assert await admin(ctx, "glance-2") == "READY"
        assert ctx.state.held == {} and await keep_out(ctx) == []  # the hold guard puts nothing out
        assert await resumed.run_step(resumed.plan.step(STEP), Unattended("glance-1")) in ("done", "failed", "blocked")
        assert await admin(ctx, "glance-2") == "READY" and ctx.state.held == {}
    finally:
        await resumed.close()


def test_which_readies_were_cut_off_is_read_from_the_journal_alone() -> None:
    def state(**held):
        return {"event": "state", "held": held}

    def start(step, node):
        return {"event": "action.start", "step": step, "action": "ready", "node": node}

    def end(step, ok=True):
        return {"event": "action.end", "step": step, "action": "ready", "ok": ok}

    assert readies_cut_off([state(n1="drain"), start("s", "n1"), state()]) == {"n1": "drain"}
    assert readies_cut_off([state(n1="maint"), start("s", "n1"), state(), end("s")]) == {}
    assert readies_cut_off([state(n1="drain"), start("s", "n1"), state(), end("s", ok=False)]) == {"n1": "drain"}  # failed: still the LB's word
    assert readies_cut_off([state(n1="drain"), start("s", "n1")]) == {}  # killed before the drop was saved: still held
    assert readies_cut_off([state(), start("s", "n1")]) == {}  # not held by this run: nothing to take back
    assert readies_cut_off([state(n2="drain"), {"event": "rollback.action", "node": "n2", "action": "ready"}, state()]) == {"n2": "drain"}
    assert readies_cut_off([state(n2="drain"), {"event": "rollback.action", "node": "n2", "action": "ready"}, state(),
                            {"event": "rollback.end", "node": "n2", "ok": True}]) == {}
    assert readies_cut_off([{"event": "state", "held": ["n1"]}, {"event": "action.start", "action": "ready", "node": None}]) == {}
