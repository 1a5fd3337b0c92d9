"""The guide's procedure as data: ordered steps, each with gates, actions and a verification.

A step's ``done`` is decided by probing the cluster, and each action has a ``needed`` probe,
so a resumed run picks up exactly where the cluster is — a drained node is not drained
twice, an upgraded node is not upgraded again — whatever the journal says was started.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable

import httpx

from glance_tui import gates as G
from glance_tui import staging
from glance_tui.command_tags import settle_database
from glance_tui.errors import GlanceTuiError
from glance_tui.adapters.lbset import ServerView
from glance_tui.events import DrainProgress, Notice
from glance_tui.holds import keep_out, retake_hold
from glance_tui.inflight import InFlight, WaitLedger, lb_sources, read_in_flight, stage_hosts
from glance_tui.kolla_rollback import remember_prior_image
from glance_tui.node.containers import recreate_command
from glance_tui.record.sampling import DrainSampler
from glance_tui.secrets import redact

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.context import Context
    from glance_tui.operator import Operator
    from glance_tui.probes import NodeFacts


class StepFailed(GlanceTuiError):
    """An action did not achieve what it must; ``output`` holds the command's tail."""

    def __init__(self, what: str, *, fix: str = "", output: list[str] | None = None) -> None:
        super().__init__(what, fix=fix)
        self.output = output or []


class WorkSinceDrained(StepFailed):
    """The re-read right before a stop found work the operator has not seen (it started after the
    quiet period, or after their override): the stop goes back to waiting for it."""

    def __init__(self, what: str, work: InFlight, *, fix: str = "") -> None:
        super().__init__(what, fix=fix)
        self.work = work


class LBUnknown(StepFailed):
    """A load balancer could not be read or acted on: what the node's rotation is, is unknown.
    Rollback is not offered (it would need the same load balancers to drain the node)."""


async def lb_act(ctx: "Context", node: str, action: str, why: str = "") -> None:
    """drain/ready/maint ``node`` on every instance × backend, journaled; a failure is LBUnknown.

    The run holds what it set (drain/maint) until its own ready, so the hold guard can put it
    back when a HAProxy reload forgets it; the hold is recorded before the change is sent."""
    async with ctx.lb_lock:
        held = None if action == "ready" else action
        if ctx.state.held.get(node) != held:
            if held is None:
                ctx.state.held.pop(node, None)
            else:
                ctx.state.held[node] = held
            ctx.save_state()
        if held is not None:  # set now: only a restart after this can have undone it
            ctx.hold_asserted[node] = ctx.cluster.lb.restarts_seen
        await send_lb_action(ctx, node, action, why)


async def send_lb_action(ctx: "Context", node: str, action: str, why: str = "") -> None:
    """The change itself (callers hold ``ctx.lb_lock``), journaled; a failure is LBUnknown."""
    try:
        await getattr(ctx.cluster.lb, action)(_server(ctx, node))
    except GlanceTuiError as exc:
        ctx.journal.write("lb", node=node, action=action, ok=False, error=exc.message)
        raise LBUnknown(f"{action} of {node} failed: {exc.message}", fix=exc.fix or "check each load balancer's admin channel, then retry") from None
    ctx.journal.write("lb", node=node, action=action, **({"why": why} if why else {}))


class StepAborted(GlanceTuiError):
    """The operator (or an unattended soft gate) stopped the step; the cluster is left safe."""


@dataclass
class ActionIO:
    """What a running action may use besides the context."""

    operator: "Operator"
    dry_run: bool = False


@dataclass(frozen=True)
class Action:
    id: str
    title: str
    node: str | None
    changes: bool
    preview: Callable[["Context"], list[str]]
    needed: Callable[["Context"], Awaitable[bool]]
    run: Callable[["Context", ActionIO], Awaitable[None]]
    gates: tuple[G.Gate, ...] = ()
    confirm_word: str | None = None  # the word the operator must type (contract)
    # False for actions that bring a node back (start, health, ready, wait-up, and the upgrade of a
    # node already out): the step's forward-only gates never hold those back.
    forward: bool = True

    def __post_init__(self) -> None:
        # Every preview (plan, dry run, the confirmation, the journal, the report) is shown redacted.
        object.__setattr__(self, "preview", _redacted(self.preview))


def _redacted(preview: Callable[["Context"], list[str]]) -> Callable[["Context"], list[str]]:
    return lambda ctx: [redact(line) for line in preview(ctx)]


@dataclass(frozen=True)
class Step:
    id: str
    number: str
    title: str
    why: str
    gates: tuple[G.Gate, ...]
    actions: tuple[Action, ...]
    done: Callable[["Context"], Awaitable[bool]]
    node: str | None = None
    group: str = ""  # "7" for the per-node loop

    def action(self, action_id: str) -> Action:
        return next(a for a in self.actions if a.id == action_id)


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    new_node: str | None = None
    remaining: tuple[str, ...] = field(default=())

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


# ---------------------------------------------------------------- helpers


def _server(ctx: "Context", node: str) -> str:
    return ctx.config.node(node).lb_server


def _lb_cmd(ctx: "Context", node: str, action: str) -> str:
    lines = []
    for lb in ctx.config.lbs:
        for backend in lb.backends:
            if lb.admin == "runtime":
                lines.append(f"[lb {lb.name} {lb.runtime_socket}] set server {backend}/{_server(ctx, node)} state {action}")
            else:
                lines.append(f"[lb {lb.name} {lb.stats_url}] POST b={backend}&s={_server(ctx, node)}&action={action}")
    return "\n".join(lines)


async def _facts(ctx: "Context", node: str) -> "NodeFacts":
    """A fresh probe of ``node`` alone (the other nodes' memoised facts are kept)."""
    ctx.invalidate(f"nodes:{node}")
    return await ctx.node_fact(node)


async def _known_facts(ctx: "Context", node: str) -> "NodeFacts":
    """Fresh facts whose ``running`` is known; unknown is a failure, never "stopped"."""
    f = await _facts(ctx, node)
    if f.running is None:
        raise StepFailed(f"cannot tell whether Glance runs on {node}: {f.service}", fix="check SSH to the node, and what serves it (the reason names it: processes, the API port's listeners, its health URL), then retry")
    return f


async def _view(ctx: "Context", node: str) -> "ServerView":
    """A fresh read of the node's server on every load balancer × backend (may be incomplete)."""
    ctx.invalidate("lb")
    lb = await ctx.lb_facts()
    server = _server(ctx, node)
    view = lb.views.get(server)
    if view is None:  # in no backend that could be read: unknown, never "0 in flight"
        places = tuple(ctx.cluster.lb.places)
        view = ServerView(server, {}, () if lb.error else places, places if lb.error else ())
    return view


async def _complete_view(ctx: "Context", node: str) -> "ServerView":
    view = await _view(ctx, node)
    if not view.complete:
        raise LBUnknown(f"cannot read {view.server} on every load balancer ({view.status or 'no reading'})", fix="check each stats endpoint and the node's lb_server, then retry; the node is left as it is")
    return view


def _on_target(ctx: "Context", f: "NodeFacts") -> bool:
    """On the target: the target is installed AND no process runs older code (stopped, or started after the install)."""
    p = ctx.config.policy
    return f.on(p.target_release, p.target_version)


def _installed_target(ctx: "Context", f: "NodeFacts") -> bool:
    p = ctx.config.policy
    return f.installed(p.target_release, p.target_version)


async def _run_checked(ctx: "Context", cmd, what: str, fix: str) -> None:
    result = await ctx.run(cmd, stream=True)
    ctx.journal.write("command", node=cmd.node, command=cmd.command, exit=result.exit_status, timed_out=result.timed_out, duration=round(result.duration, 2), tail=result.tail(20))
    if not result.ok:
        why = "timed out and was ended" if result.timed_out else f"exited {result.exit_status}"
        raise StepFailed(f"{what}: `{cmd.command}` on {cmd.node} {why}", fix=fix, output=result.tail(30))


async def _poll_until(check: Callable[[], Awaitable[bool]], timeout: float, interval: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


def _drain_override(ctx: "Context", node: str) -> dict | None:
    """The operator's typed "stop with requests in flight" for ``node``, not yet used by a stop."""
    return next((o for o in ctx.state.overrides if o.get("gate") == "drain-timeout" and o.get("node") == node and not o.get("used")
                 and not o.get("superseded")), None)


async def _work_now(ctx: "Context", node: str, view: "ServerView") -> InFlight:
    """A fresh read of all the node's work (LB sessions from ``view``, its connections, imports)."""
    hosts, sources = await asyncio.gather(stage_hosts(ctx), lb_sources(ctx.config))
    return await read_in_flight(ctx, node, view, hosts, sources)


async def _assert_drained(ctx: "Context", node: str) -> InFlight:
    """Re-read every LB, the node's own connections and Glance's import work right before a stop:
    out of rotation everywhere and nothing in flight. An override covers the work the operator
    saw when deciding, never an import that started since."""
    view = await _complete_view(ctx, node)
    if not view.admin_out:
        raise StepFailed(f"refusing to stop {node}: not drained on every load balancer ({view.status})", fix="drain it first (the step's drain action), then retry")
    work = await _work_now(ctx, node, view)
    in_flight = work.total
    override = _drain_override(ctx, node)
    reload_only = view.in_flight is None and view.unknown_only_from_reload and work.connections is not None and work.imports is not None
    if in_flight is None and not (reload_only and override):
        what = "; ".join(work.problems) or view.status
        if view.in_flight is None:
            raise LBUnknown(f"refusing to stop {node}: its in-flight count is unknown ({what})", fix="check the stats endpoints, then retry")
        raise StepFailed(f"refusing to stop {node}: its in-flight work is unknown ({what})",
                         fix="fix what the reason names (SSH to the node, the connections command, the database), then retry")
    new = [i for i in (work.imports.running if work.imports else ()) if override is None or (i.image_id or i.task_id) not in (override.get("imports") or [])]
    if (in_flight is None or in_flight) and (override is None or new):
        seen = "; ".join(work.lines()[:6])
        since = " (started after the stop was decided)" if override is not None else ""
        raise WorkSinceDrained(f"refusing to stop {node}: {work.summary()} still in flight{since}{': ' + seen if seen else ''}", work,
                               fix="wait for the drain (retry), or stop with a typed reason at the drain timeout")
    if override is not None and (in_flight is None or in_flight):
        override["used"] = True
        ctx.save_state()
        ctx.journal.write("override.used", gate="drain-timeout", node=node, in_flight=in_flight)
    return work


async def _stop_and_verify(ctx: "Context", node: str, what: str, *, list_staged: bool = True, check_after_upgrade: bool = False) -> None:
    """``list_staged``: list the staged images and the staging directory first (not when stopping
    again what the upgrade started: the listing from before the upgrade is what it must keep);
    ``check_after_upgrade``: the upgrade that follows must keep what is listed."""
    work = await _assert_drained(ctx, node)
    if list_staged:
        await staging.before_stop(ctx, node, work, owed=check_after_upgrade)
    await _run_checked(ctx, ctx.commands(node).stop(), what, "look at the output; fix the service, then retry")

    async def stopped() -> bool:
        return (await _facts(ctx, node)).running is False  # unknown is not stopped

    if not await _poll_until(stopped, 30, 1):
        f = await _facts(ctx, node)
        raise StepFailed(f"Glance is not (known to be) stopped on {node} after stop: {f.service}", fix="find the process (ps -ef | grep glance) and stop it, then retry")


# ---------------------------------------------------------------- node actions


def drain_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        # A server a health check marked DOWN while its admin state is READY is not in rotation
        # now, but would be the moment it answers again: drain unless DRAIN/MAINT everywhere.
        # Drained by someone else, it is drained again by this run, which then holds it out.
        if not (await _complete_view(ctx, node)).admin_out:
            return True
        return node not in ctx.state.held and not await retake_hold(ctx, node)

    async def run(ctx: "Context", io: ActionIO) -> None:
        await lb_act(ctx, node, "drain")
        view = await _complete_view(ctx, node)
        if view.in_rotation is not False:
            raise StepFailed(f"{node} is still in rotation after drain ({view.status})", fix="check the load balancer's admin channel")

    return Action("drain", f"Drain {node} (take it out of rotation)", node, True, lambda ctx: _lb_cmd(ctx, node, "drain").splitlines(), needed, run, gates=(G.min_in_rotation_gate(node),))


def _runs_target(ctx: "Context", f: "NodeFacts") -> bool:
    """Running code started after the target's install: a resumed step 7 found it already started."""
    return bool(f.running) and _on_target(ctx, f)


def wait_drained_action(node: str, *, keep_target: bool = True) -> Action:
    """``keep_target``: a node already running the target code needs no wait (it will not be
    stopped); a rollback passes False, since it stops target-code nodes too."""

    async def needed(ctx: "Context") -> bool:
        f = await _facts(ctx, node)
        if keep_target and _runs_target(ctx, f):
            return False
        return f.running is not False  # running or unknown: wait (an SSH error never skips the wait)

    async def run(ctx: "Context", io: ActionIO) -> None:
        policy = ctx.config.policy
        started = time.monotonic()
        budget = policy.drain_timeout
        quiet_since: float | None = None
        zeros = 0
        restarts = -1  # HAProxy restarts seen when the quiet period began
        sample = DrainSampler(ctx.journal, node)  # the report's in-flight chart (drain.sample records)
        ledger = WaitLedger(node)  # how long each kind held the wait (the drain.work record)
        hosts, sources = await asyncio.gather(stage_hosts(ctx), lb_sources(ctx.config))
        while True:
            view = await _view(ctx, node)
            work = await read_in_flight(ctx, node, view, hosts, sources)
            in_flight = work.total
            now = time.monotonic()
            elapsed = now - started
            ctx.emit(DrainProgress(node, in_flight, elapsed, budget, view.state, work.summary(), tuple(work.lines())))
            sample(in_flight, elapsed)
            ledger.add(work, elapsed)
            if view.restarts_seen != restarts:  # a reload: what the old process carried is not counted
                quiet_since, zeros, restarts = None, 0, view.restarts_seen
            if view.in_rotation is True:
                if node not in ctx.state.held:
                    raise StepFailed(f"{node} went back into rotation while draining ({view.status})", fix="drain it again; someone re-enabled it")
                await keep_out(ctx)  # a HAProxy reload (or a person) put it back: this run holds it out
                quiet_since, zeros = None, 0
                await asyncio.sleep(policy.lb_poll_interval)
                continue
            if view.complete and not view.admin_out:
                # out of rotation only because a health check marks it DOWN: pin it with MAINT
                await lb_act(ctx, node, "maint", f"not DRAIN/MAINT everywhere ({view.status})")
                quiet_since, zeros = None, 0
            elif in_flight == 0 and view.admin_out:
                zeros += 1
                quiet_since = now if quiet_since is None else quiet_since
                if zeros >= 2 and now - quiet_since >= policy.drain_quiet_period:
                    await lb_act(ctx, node, "maint", "drained")
                    ctx.journal.write("drained", node=node, waited=round(elapsed, 2), quiet=round(now - quiet_since, 2), readings=zeros)
                    ctx.journal.write("drain.work", **ledger.record())
                    return
            else:
                quiet_since, zeros = None, 0
            if elapsed >= budget:
                reload_unknown = view.in_flight is None and view.unknown_only_from_reload and work.connections is not None and work.imports is not None
                if reload_unknown:  # the operator decides, told what the current processes count
                    in_flight = view.visible_in_flight + len(work.connections or ()) + (work.imports.count if work.imports else 0)
                    ctx.emit(Notice("warning", f"{node}: {'; '.join(view.lingering.values())}"))
                elif in_flight is None and view.in_flight is None:
                    raise LBUnknown(f"cannot tell whether {node} is drained after {elapsed:.0f}s: {view.status or 'no reading'}",
                                     fix=f"{node} stays out of rotation; fix the stats endpoint(s), then retry")
                elif in_flight is None:
                    ctx.journal.write("drain.work", **ledger.record())
                    raise StepFailed(f"cannot tell whether {node} is drained after {elapsed:.0f}s: {'; '.join(work.problems)}",
                                     fix=f"{node} stays out of rotation; fix what the reason names (SSH, the connections command, the database), then retry")
                if in_flight == 0 and not reload_unknown:  # still inside the quiet period
                    budget += policy.drain_quiet_period
                    await asyncio.sleep(policy.lb_poll_interval)
                    continue
                decision = await io.operator.drain_timeout(node, in_flight, elapsed, work=tuple(work.lines()))
                ctx.journal.write("decision", gate="drain-timeout", node=node, choice=decision.choice, reason=decision.reason, in_flight=in_flight, waited=round(elapsed, 1))
                if decision.choice != "wait":
                    ctx.journal.write("drain.work", **ledger.record())
                if decision.choice == "wait":
                    budget += policy.drain_timeout
                    continue
                if decision.choice == "stop":
                    if not decision.reason.strip():
                        raise StepAborted("stopping with requests in flight needs a typed reason", fix="type why, or keep waiting")
                    accepted = [i.image_id or i.task_id for i in (work.imports.running if work.imports else ())]
                    ctx.state.overrides.append({"gate": "drain-timeout", "node": node, "reason": decision.reason, "in_flight": in_flight, "imports": accepted})
                    ctx.save_state()
                    await lb_act(ctx, node, "maint", "drain timeout override")
                    return
                await lb_act(ctx, node, "ready", "drain aborted")
                raise StepAborted(f"drain of {node} timed out with {in_flight} request(s) in flight; it is back in rotation", fix="retry later, or raise policy.drain_timeout")
            await asyncio.sleep(policy.lb_poll_interval)

    def preview(ctx: "Context") -> list[str]:
        p = ctx.config.policy
        return [f"[lb] poll scur+qcur of {_server(ctx, node)} on every backend every {p.lb_poll_interval:g}s, with {node}'s own client connections "
                f"({ctx.commands(node).connections().display()}) and Glance's import work (tasks, images importing/staged), until all are 0 "
                f"for {p.drain_quiet_period:g}s (timeout {p.drain_timeout:g}s)",
                *_lb_cmd(ctx, node, "maint").splitlines()]

    return Action("wait-drained", f"Wait until {node} has no request in flight", node, False, preview, needed, run)


async def _rewait(ctx: "Context", io: ActionIO, node: str, found: WorkSinceDrained, keep_target: bool) -> None:
    """Work found right before the stop that the operator has not seen: journaled, then the same
    wait as ``wait-drained`` (its budget and timeout choices); an override typed for earlier work
    is set aside, since it does not cover this. The stop re-reads again after it."""
    work = found.work
    ctx.journal.write("drain.rewait", node=node, what=found.what, in_flight=work.total, found=work.lines()[:20],
                      imports=[i.as_dict() for i in work.imports.running] if work.imports else None,
                      connections=[c.peer for c in work.connections] if work.connections is not None else None)
    ctx.emit(Notice("warning", f"{found.what}; waiting for {node} to drain again before its stop"))
    override = _drain_override(ctx, node)
    if override is not None:
        override["superseded"] = True
        ctx.save_state()
    await wait_drained_action(node, keep_target=keep_target).run(ctx, io)


async def _stop_when_quiet(ctx: "Context", io: ActionIO, node: str, what: str, keep_target: bool, **stop: bool) -> None:
    """Stop ``node``; work found by the re-read right before it is waited for again (never
    stopped under, never a failed step), then re-read, as many times as it takes."""
    while True:
        try:
            return await _stop_and_verify(ctx, node, what, **stop)
        except WorkSinceDrained as exc:
            await _rewait(ctx, io, node, exc, keep_target)


def stop_action(node: str, *, keep_target: bool = True) -> Action:
    """Stop the old code. With ``keep_target`` a node that already runs the target code (a run
    killed just after its start) is left running; a rollback passes False to stop it anyway."""

    async def needed(ctx: "Context") -> bool:
        f = await _known_facts(ctx, node)
        if keep_target and _runs_target(ctx, f):
            return False
        return bool(f.running)

    async def run(ctx: "Context", io: ActionIO) -> None:
        # the staging directory is checked after the upgrade that follows; a node whose package is
        # the target already (pre-staged) gets no upgrade after this stop, so nothing is owed
        owed = not _installed_target(ctx, await ctx.node_fact(node))
        await _stop_when_quiet(ctx, io, node, f"stopping Glance on {node} failed", keep_target, check_after_upgrade=owed)

    def preview(ctx: "Context") -> list[str]:
        cmds = ctx.commands(node)
        return [f"[{node}] re-read right before the stop: LB sessions, {cmds.connections().display()}, Glance's import work   # all 0, "
                "else wait for it to drain again (the drain's timeout and choices), then re-read",
                f"[{node}] $ ls -1A -- <its staging directory>   # images staged here but not imported are listed (kept through the upgrade)",
                cmds.stop().display(), cmds.processes().display() + "   # must list no Glance service"]

    return Action("stop", f"Stop Glance on {node}", node, True, preview, needed, run)


async def _install(ctx: "Context", io: ActionIO, node: str, f: "NodeFacts") -> None:
    """Install the target on the stopped node; stop again what its postinst started; verify the version."""
    if f.running:
        raise StepFailed(f"Glance is running on {node}; the guide upgrades stopped nodes only", fix="stop it first (the step's previous action)")
    await _run_checked(ctx, ctx.commands(node).upgrade(), f"upgrading {node} failed", "look at the package manager output, fix, then retry")
    f = await _known_facts(ctx, node)
    if f.running:  # the package's postinst started the service again
        ctx.journal.write("restarted-by-upgrade", node=node, pids=list(f.pids))
        ctx.emit(Notice("warning", f"the upgrade started Glance on {node} again (package postinst); stopping it, it stays drained "
                                   "(prevent this with policy-rc.d or systemctl mask, see README)"))
        # it may have taken work while it ran (a forwarded import, a direct client): waited for like any stop
        await _stop_when_quiet(ctx, io, node, f"stopping the service the upgrade started on {node} failed", True, list_staged=False)
        ctx.journal.write("stopped-again", node=node)
        f = await _facts(ctx, node)
    if ctx.commands(node).kind == "kolla":  # the pulled image runs only in a re-created container
        await remember_prior_image(ctx, node)  # what a rollback goes back to
        recreate = await recreate_command(ctx.run, ctx.commands(node))
        if recreate is not None:
            await _run_checked(ctx, recreate, f"re-creating the container on {node} failed", "look at the output; the old container is kept until the new one exists")
        f = await _facts(ctx, node)
    if not _installed_target(ctx, f):
        p = ctx.config.policy
        raise StepFailed(f"{node} reports {f.version or f.error or '?'} after the upgrade, not {p.target_version or p.target_release}", fix="check the package source for the target release")
    ctx.journal.write("upgraded", node=node, version=f.version)


def upgrade_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        # a stale node is installed already; a staging check still owed (a retry after it failed,
        # a resumed run) runs even when the package is
        return not _installed_target(ctx, await _facts(ctx, node)) or node in ctx.state.staging

    async def run(ctx: "Context", io: ActionIO) -> None:
        f = await _known_facts(ctx, node)
        if not _installed_target(ctx, f):
            await _install(ctx, io, node, f)
        await staging.after_upgrade(ctx, node)  # the staged data the node held before its stop is still there

    def preview(ctx: "Context") -> list[str]:
        cmds = ctx.commands(node)
        recreate = [f"[{node}] $ {cmds.recreate_preview()}   # from `container inspect`: re-created on the target image, not started"] if cmds.kind == "kolla" else []
        return [cmds.upgrade().display(), *recreate,
                cmds.installed_version().display() + f"   # must be {ctx.config.policy.target_version or ctx.config.policy.target_release}",
                cmds.processes().display() + "   # if the upgrade started the service: stop it again (it stays drained; work it took meanwhile is waited for first)",
                f"[{node}] $ ls -1A -- <its staging directory>   # every staged file listed before the stop is still there"]

    return Action("upgrade", f"Upgrade {node} to the target release", node, True, preview, needed, run, forward=False)


def start_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        f = await _known_facts(ctx, node)
        return f.running is False

    async def run(ctx: "Context", io: ActionIO) -> None:
        # Seen stopped, with its install, right before the start (journaled): what runs after it runs
        # that install's code, even when ps's whole seconds cannot tell (no wait for the clock).
        ctx.note_stopped(await _known_facts(ctx, node))
        await _run_checked(ctx, ctx.commands(node).start(), f"starting Glance on {node} failed", "look at the output and the node's Glance log, then retry")

        async def running() -> bool:
            return (await _facts(ctx, node)).running is True

        if not await _poll_until(running, ctx.config.policy.up_timeout, 1):
            f = await _facts(ctx, node)
            raise StepFailed(f"Glance does not run on {node} after start ({f.service})", fix="read the node's Glance log; fix, then retry (or roll back)")

    return Action("start", f"Start Glance on {node}", node, True, lambda ctx: [ctx.commands(node).start().display()], needed, run, forward=False)


async def api_healthy(url: str, paths: list[str] | tuple[str, ...], timeout: float) -> str:
    """'' when each health path of the node's own API answers 200 (300 for /versions), else the reason.

    These need no token (/healthcheck is before authtoken in Glance's pipelines), so they work
    behind Keystone, where an unauthenticated /v2/images answers 401."""
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            for path in paths:
                resp = await client.get(f"{url}{path}")
                allowed = (200, 300) if path.rstrip("/") in ("/versions", "") else (200,)
                if resp.status_code not in allowed:
                    return f"{path} answered {resp.status_code}"
    except httpx.HTTPError as exc:
        return f"{exc.__class__.__name__} on {url}"
    return ""


def health_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        return True

    async def run(ctx: "Context", io: ActionIO) -> None:
        url = ctx.config.node(node).api_url
        last = ""

        async def healthy() -> bool:
            nonlocal last
            last = await api_healthy(url, ctx.config.policy.health_paths, ctx.config.http_timeout)
            return not last

        if not await _poll_until(healthy, ctx.config.policy.up_timeout, 1):
            raise StepFailed(f"{node}'s API is not healthy: {last}", fix="read the node's Glance log; fix, then retry (or roll back)")

    def preview(ctx: "Context") -> list[str]:
        return [f"GET {ctx.config.node(node).api_url}{p}   # 200" for p in ctx.config.policy.health_paths]

    return Action("health", f"Health-check {node}'s own API", node, False, preview, needed, run, forward=False)


def ready_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        # "ready" is idempotent, and a drained server that is also failing its health check
        # reports DOWN, hiding the admin state: so anything but UP everywhere gets a ready.
        view = await _complete_view(ctx, node)
        # held by this run: its own ready ends the hold, even where a reload already shows it UP
        return node in ctx.state.held or any(r.state != "UP" for r in view.rows.values())

    async def run(ctx: "Context", io: ActionIO) -> None:
        await lb_act(ctx, node, "ready")

    return Action("ready", f"Put {node} back into rotation", node, True, lambda ctx: _lb_cmd(ctx, node, "ready").splitlines(), needed, run, forward=False)


def wait_up_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        return (await _view(ctx, node)).state != "UP"

    async def run(ctx: "Context", io: ActionIO) -> None:
        state = "?"

        async def up() -> bool:
            nonlocal state
            view = await _view(ctx, node)
            state = view.status or view.state
            return view.state == "UP"

        if not await _poll_until(up, ctx.config.policy.up_timeout, ctx.config.policy.lb_poll_interval):
            raise StepFailed(f"the load balancers do not report {node} UP everywhere ({state})", fix="check the LB health check against the node, then retry")

    return Action("wait-up", f"Wait until every load balancer reports {node} UP", node, False, lambda ctx: [f"[lb] poll status of {_server(ctx, node)} on every backend until UP (timeout {ctx.config.policy.up_timeout:g}s)"], needed, run, forward=False)


# ---------------------------------------------------------------- database actions


def _manage_action(kind: str, title: str, ok_codes: tuple[int, ...], *, confirm_word: str | None = None, gates: tuple[G.Gate, ...] = ()) -> Action:
    async def needed(ctx: "Context") -> bool:
        await settle_database(ctx)  # another run's db change (any journal, any node) is waited for first
        ctx.invalidate("dbcheck", "nodes")
        check = await ctx.target_db_check()
        if check is None or check.code is None:
            raise StepFailed("db check with the new code did not answer", fix="check the NEW NODE's SSH and database connection")
        return check.code not in ok_codes

    async def run(ctx: "Context", io: ActionIO) -> None:
        node = ctx.state.new_node or ""
        cmd = getattr(ctx.commands(node), f"db_{kind}")()
        await _run_checked(ctx, cmd, f"glance-manage db {kind} failed", "read the output; the database is unchanged or partially changed — re-run is safe for expand/migrate")
        ctx.invalidate("dbcheck")
        check = await ctx.target_db_check()
        if check is None or check.code not in ok_codes:
            raise StepFailed(f"after db {kind}, db check says {check.meaning if check else 'nothing'}", fix=f"run db {kind} again or investigate the migration")
        ctx.journal.write("db", action=kind, check=check.code, heads=list(check.heads))

    def preview(ctx: "Context") -> list[str]:
        node = ctx.state.new_node
        if not node:  # its commands depend on the node's kind and port: shown once it is chosen
            return [f"glance-manage db {kind} on the NEW NODE (chosen at step 2; the exact commands are shown then)"]
        cmds = ctx.commands(node)
        return [getattr(cmds, f"db_{kind}")().display(), cmds.db_check().display() + f"   # must exit {' or '.join(map(str, ok_codes))}"]

    return Action(kind, title, None, True, preview, needed, run, gates=gates, confirm_word=confirm_word)


def restore_binlog_action() -> Action:
    async def needed(ctx: "Context") -> bool:
        return ctx.state.log_bin_trust_old is False

    async def run(ctx: "Context", io: ActionIO) -> None:
        await ctx.cluster.db.set_log_bin_trust_function_creators(False)
        ctx.journal.write("db.variable", name="log_bin_trust_function_creators", old=True, new=False, why="restored")
        ctx.state.log_bin_trust_old = None
        ctx.save_state()

    return Action("restore-binlog", "Restore log_bin_trust_function_creators to 0", None, True, lambda ctx: ["SET GLOBAL log_bin_trust_function_creators = 0"], needed, run)


def backup_action() -> Action:
    async def needed(ctx: "Context") -> bool:
        return not await ctx.backup_still_valid()

    async def run(ctx: "Context", io: ActionIO) -> None:
        from glance_tui.backup import default_stamp, run_backup

        where = ctx.config.backup.where
        shell = ctx.cluster.local if where == "local" else ctx.cluster.ssh.get(where)
        record = await run_backup(ctx.config, shell, stamp=default_stamp(), send=lambda cmd, data: ctx.run(cmd, stream=True, input=data))
        ctx.state.backup = record.as_dict()
        ctx.save_state()
        ctx.invalidate("backup")

    def preview(ctx: "Context") -> list[str]:
        from glance_tui.backup import build_backup_command

        return [build_backup_command(ctx.config, stamp="YYYYmmddTHHMMSSZ").display() + "   # verified: non-empty, has `images`, sha256 recorded"]

    return Action("backup", "Back up the Glance database (mysqldump) and verify it", None, True, preview, needed, run)


# ---------------------------------------------------------------- the plan

WHY = {
    "preflight": "The guide's prerequisites: MySQL/MariaDB ≥ 5.5, Images API v2 only, no Registry, several nodes behind a load balancer that can drop a node out of rotation.",
    "backup": "Step 1: back up the Glance database before anything changes, so a failed migration can be undone.",
    "new-node": "Step 2: the NEW NODE gets the new release first. Take it out of rotation and let in-flight requests finish, then stop it gracefully.",
    "upgrade-new": "Step 3: install the new release on the NEW NODE. Do not start it yet: the database is not expanded.",
    "expand": "Step 4: `glance-manage db expand` from the NEW NODE adds the new schema beside the old one; old nodes keep working.",
    "migrate": "Step 5: `glance-manage db migrate` moves the data. It must complete before any new service starts.",
    "start-new": "Step 6: start the NEW NODE and let the load balancer route to it once it is healthy.",
    "node": "Step 7: one node at a time — drain, wait for in-flight requests, stop, upgrade, start, health-check, back into rotation.",
    "contract": "Step 8: only when NO node runs an old Glance service, `glance-manage db contract` removes the old schema. There is no way back after this.",
}


def _node_actions(node: str) -> tuple[Action, ...]:
    return (
        drain_action(node), wait_drained_action(node), stop_action(node), upgrade_action(node),
        start_action(node), health_action(node), ready_action(node), wait_up_action(node),
    )


async def _serving(ctx: "Context", node: str) -> bool:
    f = (await ctx.node_facts()).get(node)
    view = (await ctx.lb_facts()).views.get(_server(ctx, node))
    return bool(f and _on_target(ctx, f) and f.running and view is not None and view.state == "UP")


async def _db_code(ctx: "Context") -> int | None:
    check = await ctx.target_db_check()
    return check.code if check else None


def build_plan(ctx: "Context") -> Plan:
    """The steps for this config and the run's decisions so far (the NEW NODE)."""
    new = ctx.state.new_node
    steps: list[Step] = []

    async def never(c: "Context") -> bool:
        return False

    steps.append(Step("preflight", "0", "Preflight checks", WHY["preflight"], G.PREFLIGHT, (), never))

    async def backup_done(c: "Context") -> bool:
        return await c.backup_still_valid()

    steps.append(Step("backup", "1", "Back up the database", WHY["backup"], (G.PREFLIGHT[0],), (backup_action(),), backup_done))

    if new:
        async def new_stopped(c: "Context") -> bool:
            # stopped, or already running the target (a stale process is neither)
            f = (await c.node_facts()).get(new)
            return bool(f and not f.error and (f.running is False or (f.running and _on_target(c, f))))

        steps.append(Step("new-node", "2", f"Drain and stop the NEW NODE ({new})", WHY["new-node"], (G.NEW_NODE_CHOSEN,),
                          (drain_action(new), wait_drained_action(new), stop_action(new)), new_stopped, node=new))

        async def new_upgraded(c: "Context") -> bool:
            f = (await c.node_facts()).get(new)
            return bool(f and _installed_target(c, f)) and new not in c.state.staging  # a staging check still owed

        steps.append(Step("upgrade-new", "3", f"Upgrade the NEW NODE ({new}), do not start it", WHY["upgrade-new"], (G.NEW_NODE_STOPPED,),
                          (upgrade_action(new),), new_upgraded, node=new))
    else:
        steps.append(Step("new-node", "2", "Choose, drain and stop the NEW NODE", WHY["new-node"], (), (), never))
        steps.append(Step("upgrade-new", "3", "Upgrade the NEW NODE, do not start it", WHY["upgrade-new"], (G.NEW_NODE_STOPPED,), (), never))

    async def expanded(c: "Context") -> bool:
        return (await _db_code(c)) in (0, 4, 5)

    async def migrated(c: "Context") -> bool:
        return (await _db_code(c)) in (0, 5)

    steps.append(Step("expand", "4", "Expand the database (on the NEW NODE)", WHY["expand"], (G.BACKUP_VERIFIED, G.NEW_NODE_UPGRADED, G.NEW_NODE_STOPPED, G.BINLOG_TRIGGERS, G.ONE_DATABASE),
                      (_manage_action("expand", "glance-manage db expand", (0, 4, 5)),), expanded))
    steps.append(Step("migrate", "5", "Migrate the data (on the NEW NODE)", WHY["migrate"], (G.NEW_NODE_UPGRADED, G.NEW_NODE_STOPPED, G.EXPAND_DONE, G.ONE_DATABASE),
                      (_manage_action("migrate", "glance-manage db migrate", (0, 5)),), migrated))

    if new:
        async def new_serving(c: "Context") -> bool:
            return await _serving(c, new)

        steps.append(Step("start-new", "6", f"Start the NEW NODE ({new}) and put it in rotation", WHY["start-new"], (G.NEW_NODE_UPGRADED, G.MIGRATE_DONE),
                          (start_action(new), health_action(new), ready_action(new), wait_up_action(new)), new_serving, node=new))
    else:
        steps.append(Step("start-new", "6", "Start the NEW NODE and put it in rotation", WHY["start-new"], (G.MIGRATE_DONE,), (), never))

    remaining = tuple(n.name for n in ctx.config.nodes if n.name != new) if new else ()
    for i, name in enumerate(remaining, 1):
        async def serving(c: "Context", name: str = name) -> bool:
            return await _serving(c, name)

        steps.append(Step(f"node:{name}", f"7.{i}", f"Upgrade {name}", WHY["node"], (G.NEW_NODE_SERVING, G.MIGRATE_DONE),
                          _node_actions(name), serving, node=name, group="7"))

    async def contracted(c: "Context") -> bool:
        if c.state.log_bin_trust_old is False:
            return False
        facts = await c.node_facts()
        return all(_on_target(c, f) for f in facts.values()) and (await _db_code(c)) == 0

    steps.append(Step("contract", "8", "Contract the database", WHY["contract"], (G.ALL_NODES_TARGET, G.NO_OLD_PROCESS),
                      # contract-next is an action gate: it matters only while contract still has to run.
                      (_manage_action("contract", "glance-manage db contract", (0,), confirm_word="contract",
                                      gates=(G.CONTRACT_NEXT, G.ONE_DATABASE, G.DB_CLIENTS_ON_TARGET)),
                       restore_binlog_action()), contracted))
    return Plan(tuple(steps), new, remaining)
