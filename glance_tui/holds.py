"""Keep out of rotation what this run took out, whatever happens to HAProxy meanwhile.

Kolla-Ansible and OpenStack-Ansible reload HAProxy whenever they push configuration, and
keepalived can move the VIP to an instance that never saw the drain. Without a
``server-state-file`` the new process starts every server READY: a node this run drained,
stopped or is upgrading would take traffic again — with a package that starts the service, new
code before ``db expand``. The run records what it holds (``RunState.held``, set by ``lb_act``
before the change is sent); :func:`keep_out`, called at every load-balancer poll while a run is
open, journals each HAProxy restart it sees and re-asserts the held state on every instance at
once, telling the operator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from glance_tui.adapters.lbset import OUT_STATES
from glance_tui.context import RunState
from glance_tui.events import Notice

if TYPE_CHECKING:
    from glance_tui.context import Context
    from glance_tui.probes import LBFacts

def readies_cut_off(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    """node -> the hold (drain/maint) the run had on it when its own ``ready`` began and never
    ended ok (a forward action, or a rollback's). ``lb_act`` saves the hold's drop before it sends
    the ready, so a kill between the two leaves the node out of rotation on every instance yet no
    longer held: resumed, the run would drain it again as if someone else had. Which of the two
    happened is read from the load balancer on resume (:func:`retake_hold`), never assumed."""
    held: dict[str, str] = {}
    open_: dict[Any, tuple[str, str]] = {}  # (step, "ready") or ("rollback", node) -> (node, hold)
    for r in records:
        event, node = r.get("event"), r.get("node")
        if event == "state":
            held = RunState.from_dict(r).held  # read as a resumed run reads it
        elif event == "action.start" and r.get("action") == "ready" and isinstance(node, str) and node in held:
            open_[(r.get("step"), "ready")] = (node, held[node])
        elif event == "action.end" and r.get("action") == "ready" and r.get("ok") is True:
            open_.pop((r.get("step"), "ready"), None)
        elif event == "rollback.action" and r.get("action") == "ready" and isinstance(node, str) and node in held:
            open_[("rollback", node)] = (node, held[node])
        elif event == "rollback.end" and r.get("ok") is True:
            open_.pop(("rollback", node), None)
    return {node: hold for node, hold in open_.values() if node not in held}


async def retake_hold(ctx: "Context", node: str) -> bool:
    """The caller saw ``node`` out of rotation on every instance and not held: if this run's own
    ``ready`` for it was cut off before it took effect, the node is still this run's — hold it
    again (saved) so the hold guard keeps it out and the step's own ``ready`` ends it. True then."""
    hold = ctx.cut_off_ready.pop(node, None)
    if hold is None:
        return False
    async with ctx.lb_lock:
        if node not in ctx.state.held:
            ctx.state.held[node] = hold
            ctx.hold_asserted[node] = ctx.cluster.lb.restarts_seen
            ctx.save_state()
    ctx.emit(Notice("info", f"{node}: this run's ready was cut off before it took effect (still {hold.upper()} everywhere); "
                            "the run holds it out again and readies it when its step ends"))
    return True


async def keep_out(ctx: "Context", facts: "LBFacts | None" = None) -> list[str]:
    """Journal the restarts not yet journaled; put every held node that some instance shows
    READY (or, after a restart of that instance, with its admin state hidden) back to what the
    run set. Returns what was done, one line each (also emitted as notices)."""
    from glance_tui.plan import send_lb_action  # plan imports this module's callers, not this module

    facts = facts if facts is not None else await ctx.lb_facts()
    done: list[str] = []
    for restart in facts.restarts[ctx.restarts_journaled:]:
        ctx.journal.write("lb.restart", lb=restart.lb, old_pid=restart.old.pid, new_pid=restart.new.pid, uptime=restart.new.uptime)
        done.append(restart.describe())
        ctx.emit(Notice("warning", f"{restart.describe()}: a reload forgets DRAIN/MAINT; re-checking every node this run holds out"))
    ctx.restarts_journaled = max(ctx.restarts_journaled, len(facts.restarts))
    for node, action in list(ctx.state.held.items()):
        view = facts.views.get(ctx.config.node(node).lb_server)
        if view is None:
            continue  # not readable anywhere now: the next poll (and every gate) sees it unknown
        # instances restarted since the hold was last set: there a hidden admin state (DOWN) may be READY
        restarted = {r.lb for r in facts.restarts[ctx.hold_asserted.get(node, 0):]}
        back = sorted(p for p, r in view.rows.items()
                      if r.admin_state == "READY" or (r.admin_state not in OUT_STATES and p.split("/", 1)[0] in restarted))
        if not back:
            continue
        async with ctx.lb_lock:
            if ctx.state.held.get(node) != action:
                continue  # the run readied it (or changed the hold) meanwhile
            why = f"re-asserted: {', '.join(back)} showed it {'/'.join(sorted({view.rows[p].admin_state for p in back}))}"
            await send_lb_action(ctx, node, action, why)
            ctx.hold_asserted[node] = len(facts.restarts)
        line = f"{node} was back in rotation on {', '.join(back)} while this run holds it out; set {action.upper()} again everywhere"
        done.append(line)
        ctx.emit(Notice("warning", line))
    return done
