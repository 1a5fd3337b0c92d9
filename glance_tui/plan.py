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
from glance_tui.errors import GlanceTuiError
from glance_tui.events import DrainProgress
from glance_tui.record.sampling import DrainSampler

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.context import Context
    from glance_tui.operator import Operator


class StepFailed(GlanceTuiError):
    """An action did not achieve what it must; ``output`` holds the command's tail."""

    def __init__(self, what: str, *, fix: str = "", output: list[str] | None = None) -> None:
        super().__init__(what, fix=fix)
        self.output = output or []


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


async def _facts(ctx: "Context", node: str):
    ctx.invalidate("nodes")
    return (await ctx.node_facts())[node]


async def _stats(ctx: "Context", node: str):
    ctx.invalidate("lb")
    lb = await ctx.lb_facts()
    if lb.error:
        raise StepFailed(f"cannot read the load balancer: {lb.error}", fix="check the stats endpoint, then retry")
    return lb.servers.get(_server(ctx, node))


def _on_target(ctx: "Context", f) -> bool:
    p = ctx.config.policy
    return f.release == p.target_release and (not p.target_version or f.version == p.target_version)


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


# ---------------------------------------------------------------- node actions


def drain_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        stats = await _stats(ctx, node)
        return stats is not None and stats.in_rotation

    async def run(ctx: "Context", io: ActionIO) -> None:
        await ctx.cluster.lb.drain(_server(ctx, node))
        ctx.journal.write("lb", node=node, action="drain")
        stats = await _stats(ctx, node)
        if stats is None or stats.in_rotation:
            raise StepFailed(f"{node} is still in rotation after drain (state {stats.state if stats else '?'})", fix="check the load balancer's admin channel")

    return Action("drain", f"Drain {node} (take it out of rotation)", node, True, lambda ctx: _lb_cmd(ctx, node, "drain").splitlines(), needed, run, gates=(G.min_in_rotation_gate(node),))


def wait_drained_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        f = await _facts(ctx, node)
        return bool(f.running)

    async def run(ctx: "Context", io: ActionIO) -> None:
        policy = ctx.config.policy
        started = time.monotonic()
        budget = policy.drain_timeout
        sample = DrainSampler(ctx.journal, node)  # the report's in-flight chart (drain.sample records)
        while True:
            stats = await _stats(ctx, node)
            in_flight = stats.in_flight if stats else 0
            elapsed = time.monotonic() - started
            ctx.emit(DrainProgress(node, in_flight, elapsed, budget, stats.state if stats else "absent"))
            sample(in_flight, elapsed)
            if stats is not None and stats.in_rotation:
                raise StepFailed(f"{node} went back into rotation while draining (state {stats.state})", fix="drain it again; someone re-enabled it")
            if in_flight == 0:
                ctx.journal.write("drained", node=node, waited=round(elapsed, 2))
                return
            if elapsed >= budget:
                decision = await io.operator.drain_timeout(node, in_flight, elapsed)
                ctx.journal.write("decision", gate="drain-timeout", node=node, choice=decision.choice, reason=decision.reason, in_flight=in_flight, waited=round(elapsed, 1))
                if decision.choice == "wait":
                    budget += policy.drain_timeout
                    continue
                if decision.choice == "stop":
                    if not decision.reason.strip():
                        raise StepAborted("stopping with requests in flight needs a typed reason", fix="type why, or keep waiting")
                    ctx.state.overrides.append({"gate": "drain-timeout", "node": node, "reason": decision.reason, "in_flight": in_flight})
                    ctx.save_state()
                    return
                await ctx.cluster.lb.ready(_server(ctx, node))
                ctx.journal.write("lb", node=node, action="ready", why="drain aborted")
                raise StepAborted(f"drain of {node} timed out with {in_flight} request(s) in flight; it is back in rotation", fix="retry later, or raise policy.drain_timeout")
            await asyncio.sleep(policy.lb_poll_interval)

    return Action("wait-drained", f"Wait until {node} has no request in flight", node, False, lambda ctx: [f"[lb] poll scur+qcur of {_server(ctx, node)} every {ctx.config.policy.lb_poll_interval:g}s (timeout {ctx.config.policy.drain_timeout:g}s)"], needed, run)


def stop_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        f = await _facts(ctx, node)
        if f.error:
            raise StepFailed(f"cannot probe {node}: {f.error}", fix="check SSH to the node")
        return bool(f.running)

    async def run(ctx: "Context", io: ActionIO) -> None:
        await _run_checked(ctx, ctx.commands(node).stop(), f"stopping Glance on {node} failed", "look at the output; fix the service, then retry")

        async def stopped() -> bool:
            return (await _facts(ctx, node)).running is False

        if not await _poll_until(stopped, 30, 1):
            raise StepFailed(f"a Glance process is still running on {node} after stop", fix="find it (pgrep -a glance) and stop it, then retry")

    return Action("stop", f"Stop Glance on {node}", node, True, lambda ctx: [ctx.commands(node).stop().display(), ctx.commands(node).processes().display() + "   # must list no Glance service"], needed, run)


def upgrade_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        return not _on_target(ctx, await _facts(ctx, node))

    async def run(ctx: "Context", io: ActionIO) -> None:
        f = await _facts(ctx, node)
        if f.running:
            raise StepFailed(f"Glance is running on {node}; the guide upgrades stopped nodes only", fix="stop it first (the step's previous action)")
        await _run_checked(ctx, ctx.commands(node).upgrade(), f"upgrading {node} failed", "look at the package manager output, fix, then retry")
        f = await _facts(ctx, node)
        if not _on_target(ctx, f):
            p = ctx.config.policy
            raise StepFailed(f"{node} reports {f.version or f.error or '?'} after the upgrade, not {p.target_version or p.target_release}", fix="check the package source for the target release")
        ctx.journal.write("upgraded", node=node, version=f.version)

    return Action("upgrade", f"Upgrade {node} to the target release", node, True, lambda ctx: [ctx.commands(node).upgrade().display(), ctx.commands(node).installed_version().display() + f"   # must be {ctx.config.policy.target_version or ctx.config.policy.target_release}"], needed, run)


def start_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        return not (await _facts(ctx, node)).running

    async def run(ctx: "Context", io: ActionIO) -> None:
        await _run_checked(ctx, ctx.commands(node).start(), f"starting Glance on {node} failed", "look at the output and the node's Glance log, then retry")

    return Action("start", f"Start Glance on {node}", node, True, lambda ctx: [ctx.commands(node).start().display()], needed, run)


async def api_healthy(url: str, timeout: float) -> str:
    """'' when the node's own API answers /versions and /v2/images, else the reason."""
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            versions = await client.get(f"{url}/versions")
            if versions.status_code not in (200, 300):
                return f"/versions answered {versions.status_code}"
            images = await client.get(f"{url}/v2/images", params={"limit": 1})
            if images.status_code != 200:
                return f"/v2/images answered {images.status_code}"
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
            last = await api_healthy(url, ctx.config.http_timeout)
            return not last

        if not await _poll_until(healthy, ctx.config.policy.up_timeout, 1):
            raise StepFailed(f"{node}'s API is not healthy: {last}", fix="read the node's Glance log; fix, then retry (or roll back)")

    return Action("health", f"Health-check {node}'s own API", node, False, lambda ctx: [f"GET {ctx.config.node(node).api_url}/versions and /v2/images   # 200"], needed, run)


def ready_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        # "ready" is idempotent, and a drained server that is also failing its health check
        # reports DOWN, hiding the admin state: so anything but UP gets a ready.
        stats = await _stats(ctx, node)
        if stats is None:
            raise StepFailed(f"{_server(ctx, node)} is not in the load balancer backend", fix="check the node's lb_server")
        return stats.state != "UP"

    async def run(ctx: "Context", io: ActionIO) -> None:
        await ctx.cluster.lb.ready(_server(ctx, node))
        ctx.journal.write("lb", node=node, action="ready")

    return Action("ready", f"Put {node} back into rotation", node, True, lambda ctx: _lb_cmd(ctx, node, "ready").splitlines(), needed, run)


def wait_up_action(node: str) -> Action:
    async def needed(ctx: "Context") -> bool:
        stats = await _stats(ctx, node)
        return stats is None or stats.state != "UP"

    async def run(ctx: "Context", io: ActionIO) -> None:
        state = "?"

        async def up() -> bool:
            nonlocal state
            stats = await _stats(ctx, node)
            state = stats.state if stats else "absent"
            return state == "UP"

        if not await _poll_until(up, ctx.config.policy.up_timeout, ctx.config.policy.lb_poll_interval):
            raise StepFailed(f"the load balancer does not report {node} UP (state {state})", fix="check the LB health check against the node, then retry")

    return Action("wait-up", f"Wait until the load balancer reports {node} UP", node, False, lambda ctx: [f"[lb] poll status of {_server(ctx, node)} until UP (timeout {ctx.config.policy.up_timeout:g}s)"], needed, run)


# ---------------------------------------------------------------- database actions


def _manage_action(kind: str, title: str, ok_codes: tuple[int, ...], *, confirm_word: str | None = None, gates: tuple[G.Gate, ...] = ()) -> Action:
    async def needed(ctx: "Context") -> bool:
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
        node = ctx.state.new_node or "<NEW NODE>"
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
        record = await run_backup(ctx.config, shell, stamp=default_stamp(), on_line=ctx.stream_to(where))
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
    lb = await ctx.lb_facts()
    stats = lb.servers.get(_server(ctx, node))
    return bool(f and _on_target(ctx, f) and f.running and stats is not None and stats.state == "UP")


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
            f = (await c.node_facts()).get(new)
            return bool(f and not f.error and (f.running is False or _on_target(c, f)))

        steps.append(Step("new-node", "2", f"Drain and stop the NEW NODE ({new})", WHY["new-node"], (G.NEW_NODE_CHOSEN,),
                          (drain_action(new), wait_drained_action(new), stop_action(new)), new_stopped, node=new))

        async def new_upgraded(c: "Context") -> bool:
            f = (await c.node_facts()).get(new)
            return bool(f and _on_target(c, f))

        steps.append(Step("upgrade-new", "3", f"Upgrade the NEW NODE ({new}), do not start it", WHY["upgrade-new"], (G.NEW_NODE_STOPPED,),
                          (upgrade_action(new),), new_upgraded, node=new))
    else:
        steps.append(Step("new-node", "2", "Choose, drain and stop the NEW NODE", WHY["new-node"], (), (), never))
        steps.append(Step("upgrade-new", "3", "Upgrade the NEW NODE, do not start it", WHY["upgrade-new"], (G.NEW_NODE_STOPPED,), (), never))

    async def expanded(c: "Context") -> bool:
        return (await _db_code(c)) in (0, 4, 5)

    async def migrated(c: "Context") -> bool:
        return (await _db_code(c)) in (0, 5)

    steps.append(Step("expand", "4", "Expand the database (on the NEW NODE)", WHY["expand"], (G.BACKUP_VERIFIED, G.NEW_NODE_UPGRADED, G.BINLOG_TRIGGERS),
                      (_manage_action("expand", "glance-manage db expand", (0, 4, 5)),), expanded))
    steps.append(Step("migrate", "5", "Migrate the data (on the NEW NODE)", WHY["migrate"], (G.NEW_NODE_UPGRADED, G.EXPAND_DONE),
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
                      (_manage_action("contract", "glance-manage db contract", (0,), confirm_word="contract", gates=(G.CONTRACT_NEXT,)),
                       restore_binlog_action()), contracted))
    return Plan(tuple(steps), new, remaining)
