"""A scripted engine for fast Pilot tests of ``screens/``: same public shape as ``Engine``.

It keeps a small model of the cluster (LB state, in-flight, release, running per node and the
``db check`` code), builds the guide's steps with the real ``Step``/``Action`` types, answers
gates from a script the test can change while the app runs, and emits the real event types.
Operator questions go to whatever operator the app passes (the TUI's modal screens).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from glance_tui.adapters.database import DatabaseFacts
from glance_tui.api import (
    BLOCKED, DONE, FAILED, PENDING, READY, RUNNING, Action, ActionFinished, ActionStarted, Config, DBState, DbCheck,
    DrainProgress, GateResult, GatesEvaluated, Journal, LBFacts, NodeFacts, Notice, OutputLine, Plan, PlanChanged,
    RunFinished, RunState, ServerStats, Step, StepChanged,
)
from glance_tui.config import parse_config
from glance_tui.gates import Gate
from glance_tui.step_states import StepStates

OLD, TARGET = ("2023.1", "26.1.0"), ("2024.1", "28.2.0")

CONFIG_TOML = {
    "database": {"host": "127.0.0.1", "password_file": ""},
    "load_balancer": {"stats_url": "http://127.0.0.1:8404/stats", "backend": "glance_api"},
    "nodes": [{"name": f"glance-{i}", "ssh_host": f"10.0.0.1{i}", "lb_server": f"glance-{i}", "api_url": f"http://10.0.0.1{i}:9292"} for i in (1, 2, 3)],
    "policy": {"target_release": "2024.1", "drain_timeout": 3, "lb_poll_interval": 0.2, "node_poll_interval": 0.4},
}


def scripted_config(tmp: Path, *, nodes: int = 3, **policy: Any) -> Config:
    """The scripted cluster's config: ``nodes`` nodes glance-1…glance-N, policy overrides."""
    secret = tmp / "db-password"
    secret.write_text("pw-scripted\n")
    data = {**CONFIG_TOML, "database": {"host": "127.0.0.1", "password_file": str(secret)}, "policy": {**CONFIG_TOML["policy"], **policy}}
    if nodes != 3:
        data["nodes"] = [{"name": f"glance-{i}", "ssh_host": f"10.0.{i // 250}.{i % 250 + 1}", "lb_server": f"glance-{i}",
                          "api_url": f"http://10.0.{i // 250}.{i % 250 + 1}:9292"} for i in range(1, nodes + 1)]
    return parse_config(data, where="scripted")


@dataclass
class SimNode:
    name: str
    address: str
    lb_server: str
    state: str = "UP"
    in_flight: int = 0
    rate: int = 3
    release: str = OLD[0]
    version: str = OLD[1]
    running: bool = True


class ActionFailure(Exception):
    def __init__(self, message: str, output: list[str]) -> None:
        super().__init__(message)
        self.message, self.output = message, output


class ScriptedCluster:
    """``probe_lb`` / ``probe_nodes`` / ``probe_db`` over the model; counts overlapping LB polls."""

    def __init__(self, engine: "ScriptedEngine", clock: Callable[[], float]) -> None:
        self.engine, self.clock = engine, clock
        self.lb_error = ""
        self.lb_delay = 0.0
        self.lb_calls = self.lb_active = self.lb_max_active = 0
        self.node_calls = 0

    async def probe_lb(self) -> LBFacts:
        self.lb_calls += 1
        self.lb_active += 1
        self.lb_max_active = max(self.lb_max_active, self.lb_active)
        try:
            if self.lb_delay:
                await asyncio.sleep(self.lb_delay)
            if self.lb_error:
                return LBFacts({}, error=self.lb_error, read_at=self.clock())
            servers = {n.lb_server: ServerStats(n.lb_server, n.state, n.state, n.in_flight, 0, n.rate, "L7OK", 1 if n.state != "MAINT" else 0)
                       for n in self.engine.sim.values()}
            return LBFacts(servers, read_at=self.clock())
        finally:
            self.lb_active -= 1

    async def probe_nodes(self) -> dict[str, NodeFacts]:
        self.node_calls += 1
        return {n.name: NodeFacts(n.name, n.address, n.version, n.release, n.running, probed_at=self.clock()) for n in self.engine.sim.values()}

    async def probe_db(self) -> DBState:
        heads = self.engine.heads()
        facts = DatabaseFacts("10.11.6-MariaDB-0+deb12u1", "MariaDB", (10, 11, 6), [], False, False, False, heads, 20)
        return DBState(facts, read_at=self.clock())

    async def close(self) -> None:
        self.engine.closed = True


def _gate(gid: str, title: str) -> Gate:
    async def never(ctx: Any) -> GateResult:  # the scripted engine answers gates itself
        raise AssertionError("scripted gates are answered by ScriptedEngine.evaluate")

    return Gate(gid, title, never)


GATES = {gid: _gate(gid, title) for gid, title in {
    "db-version": "MySQL/MariaDB 5.5 or later", "api-v2": "Images API v2 only, no Registry", "lb-mapping": "Every node is a server of the LB backend",
    "ssh": "Every node answers over SSH", "new-node": "The NEW NODE is chosen", "new-node-stopped": "Glance is stopped on the NEW NODE",
    "backup": "A verified backup of the Glance database exists", "new-node-upgraded": "The NEW NODE runs the target release",
    "binlog": "Triggers allowed (binary log / SUPER / log_bin_trust_function_creators)", "expanded": "The database is expanded",
    "migrated": "Data migrations are complete (db check 5 or 0)", "new-node-serving": "The NEW NODE serves the new release",
    "all-upgraded": "Every node reports the target release", "no-old-service": "No node runs an old Glance service",
    "contract-next": "db check says contract is next", "min-rotation": "Enough nodes stay in rotation",
}.items()}


class ScriptedEngine:
    """Drive the TUI without services. Tests steer it through ``failing``, ``fail_once`` and ``drain_script``."""

    def __init__(self, config: Config, journal_dir: Path, *, dry_run: bool = False, clock: Callable[[], float] = time.time,
                 state: RunState | None = None) -> None:
        self.config, self.dry_run, self.clock = config, dry_run, clock
        self.sim = {n.name: SimNode(n.name, n.ssh_host, n.lb_server) for n in config.nodes}
        self.db_code = 3
        self.cluster = ScriptedCluster(self, clock)
        self.journal = Journal.create(journal_dir, config_path=None, target_release=config.policy.target_release)
        self.state = state or RunState()
        self.failing: dict[str, GateResult] = {}
        self.fail_once: dict[tuple[str, str], tuple[str, list[str]]] = {}
        self.drain_script: list[int] = [2, 1, 0]
        self.drain_tick = 1.0
        self.gate_delay = 0.0  # seconds each evaluation takes (a slow probe)
        self.preflight_ok = False
        self.closed = False
        self.calls: list[str] = []
        self.rollbacks: list[str] = []
        self._listeners: list[Callable[[Any], None]] = []
        self._lock = asyncio.Lock()
        self.plan = self._build()
        self.book = StepStates(self.emit, (s.id for s in self.plan.steps))  # the real engine's bookkeeping
        self.states = self.book.states

    # ---------------------------------------------------------------- model

    def heads(self) -> list[str]:
        return {3: ["2023_1_contract01"], 4: ["2023_1_contract01", "2024_1_expand01"], 5: ["2023_1_contract01", "2024_1_expand01"], 0: ["2024_1_contract01"]}[self.db_code]

    def upgrade(self, name: str) -> None:
        node = self.sim[name]
        node.release, node.version = TARGET

    def gate(self, gid: str, ok: bool = True, reason: str = "", fix: str = "", soft: bool = False) -> None:
        """Script a gate: failing (with reason/fix) or passing again."""
        if ok:
            self.failing.pop(gid, None)
        else:
            self.failing[gid] = GateResult(gid, GATES[gid].title, False, reason, fix, soft)

    # ---------------------------------------------------------------- plan

    def _action(self, aid: str, title: str, node: str | None, changes: bool, commands: list[str], gates: tuple[str, ...] = (), word: str | None = None) -> Action:
        async def needed(ctx: Any) -> bool:
            return True

        async def run(ctx: Any, io: Any) -> None:
            raise AssertionError("scripted actions run in ScriptedEngine._do")

        return Action(aid, title, node, changes, lambda ctx: list(commands), needed, run, tuple(GATES[g] for g in gates), word)

    def _node_actions(self, n: str) -> tuple[Action, ...]:
        return (
            self._action("drain", f"Drain {n} (take it out of rotation)", n, True, [f"[lb http://127.0.0.1:8404/stats] POST b=glance_api&s={n}&action=drain"], ("min-rotation",)),
            self._action("wait-drained", f"Wait until {n} has no request in flight", n, False, [f"[lb] poll scur+qcur of {n} every 1s (timeout 3s)"]),
            self._action("stop", f"Stop Glance on {n}", n, True, [f"[{n}] $ systemctl stop glance-api"]),
            self._action("upgrade", f"Upgrade {n} to the target release", n, True, [f"[{n}] $ apt-get install -y glance-api"]),
            self._action("start", f"Start Glance on {n}", n, True, [f"[{n}] $ systemctl start glance-api"]),
            self._action("ready", f"Put {n} back into rotation", n, True, [f"[lb http://127.0.0.1:8404/stats] POST b=glance_api&s={n}&action=ready"]),
        )

    def _build(self) -> Plan:
        new = self.state.new_node
        g = lambda *ids: tuple(GATES[i] for i in ids)  # noqa: E731
        manage = lambda kind, word=None, gates=(): self._action(kind, f"glance-manage db {kind}", None, True, [f"[{new or '<NEW NODE>'}] $ glance-manage db {kind}"], gates, word)  # noqa: E731
        done = self._never
        steps = [
            Step("preflight", "0", "Preflight checks", "The guide's prerequisites.", g("db-version", "api-v2", "lb-mapping", "ssh"), (), done),
            Step("backup", "1", "Back up the database", "Step 1: back up the Glance database before anything changes.", g("db-version"),
                 (self._action("backup", "Back up the Glance database (mysqldump) and verify it", None, True, ["[local] $ mysqldump --single-transaction glance > /var/backups/glance/glance-<UTC time>.sql"]),), done),
        ]
        if new:
            steps.append(Step("new-node", "2", f"Drain and stop the NEW NODE ({new})", "Step 2: the NEW NODE gets the new release first.", g("new-node"), self._node_actions(new)[:3], done, node=new))
            steps.append(Step("upgrade-new", "3", f"Upgrade the NEW NODE ({new}), do not start it", "Step 3: install the new release; do not start it.", g("new-node-stopped"), (self._node_actions(new)[3],), done, node=new))
        else:
            steps.append(Step("new-node", "2", "Choose, drain and stop the NEW NODE", "Step 2: the NEW NODE gets the new release first.", (), (), done))
            steps.append(Step("upgrade-new", "3", "Upgrade the NEW NODE, do not start it", "Step 3: install the new release; do not start it.", g("new-node-stopped"), (), done))
        steps.append(Step("expand", "4", "Expand the database (on the NEW NODE)", "Step 4: glance-manage db expand.", g("backup", "new-node-upgraded", "binlog"), (manage("expand"),), done))
        steps.append(Step("migrate", "5", "Migrate the data (on the NEW NODE)", "Step 5: glance-manage db migrate.", g("new-node-upgraded", "expanded"), (manage("migrate"),), done))
        start = tuple(a for a in self._node_actions(new) if a.id in ("start", "ready")) if new else ()
        steps.append(Step("start-new", "6", f"Start the NEW NODE{f' ({new})' if new else ''} and put it in rotation", "Step 6: start the NEW NODE.", g("migrated"), start, done, node=new))
        remaining = tuple(n.name for n in self.config.nodes if n.name != new) if new else ()
        for i, name in enumerate(remaining, 1):
            steps.append(Step(f"node:{name}", f"7.{i}", f"Upgrade {name}", "Step 7: one node at a time.", g("new-node-serving", "migrated"), self._node_actions(name), done, node=name, group="7"))
        steps.append(Step("contract", "8", "Contract the database", "Step 8: only when NO node runs an old Glance service.", g("all-upgraded", "no-old-service"),
                          (manage("contract", "contract", ("contract-next",)),), done))
        return Plan(tuple(steps), new, remaining)

    @staticmethod
    async def _never(ctx: Any) -> bool:
        return False

    def _done(self, step: Step) -> bool:
        new = self.state.new_node
        n = self.sim.get(step.node or "")
        serving = lambda x: x is not None and x.release == TARGET[0] and x.running and x.state == "UP"  # noqa: E731
        return {
            "preflight": self.preflight_ok,
            "backup": bool(self.state.backup),
            "new-node": bool(new) and n is not None and (not n.running or n.release == TARGET[0]),
            "upgrade-new": bool(new) and n is not None and n.release == TARGET[0],
            "expand": self.db_code in (0, 4, 5),
            "migrate": self.db_code in (0, 5),
            "start-new": serving(n),
            "contract": self.db_code == 0,
        }.get(step.id, serving(n))

    # ---------------------------------------------------------------- public shape of Engine

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def emit(self, event: Any) -> None:
        for listener in list(self._listeners):
            listener(event)

    def _set(self, step: Step, state: str, detail: str = "") -> None:
        self.book.set(step.id, state, detail)

    def role_of(self, node: str) -> str:
        return self.book.role_of(node, self.state.new_node)

    async def node_facts(self, max_age: float = 0.0) -> dict[str, NodeFacts]:
        return await self.cluster.probe_nodes()

    async def db_check(self) -> DbCheck | None:
        meaningful = self.state.new_node or self.config.nodes[0].name
        return DbCheck(meaningful, self.db_code, TARGET[0], tuple(self.heads()))

    async def evaluate(self, step: Step, action: Action | None = None, *, max_age: float = 0.0) -> list[GateResult]:
        self.calls.append(f"evaluate:{step.id}")
        if self.gate_delay:
            await asyncio.sleep(self.gate_delay)
        gates = tuple(step.gates) + (tuple(action.gates) if action else ())
        results = [self.failing.get(g.id) or GateResult(g.id, g.title, True, "ok") for g in gates]
        self.emit(GatesEvaluated(step.id, tuple(results)))
        return results

    async def next_step(self) -> Step | None:
        for step in self.plan.steps:
            if self._done(step) or (self.dry_run and self.states.get(step.id) == DONE):
                self._set(step, DONE)
                continue
            return step
        return None

    async def reconcile(self) -> Step | None:
        step = await self.next_step()
        if step is not None:
            results = await self.evaluate(step)
            self._set(step, READY if all(r.ok for r in results) else BLOCKED)
        return step

    async def conclude(self, ok: bool, detail: str) -> bool:
        return self.finish(ok, detail)

    def finish(self, ok: bool, detail: str, *, end: bool = True) -> bool:
        if end:
            self.journal.write("run.end", ok=ok, detail=detail)
        self.emit(RunFinished(ok, detail))
        return ok

    def preview(self, step: Step) -> list[tuple[Action, list[str]]]:
        return [(a, a.preview(None)) for a in step.actions]

    async def close(self) -> None:
        await self.cluster.close()

    async def run_step(self, step: Step, operator: Any) -> str:
        async with self._lock:
            self.calls.append(f"run:{step.id}")
            self.book.active = step.id
            try:
                return await self._run_step(step, operator)
            finally:
                self.book.active = None

    async def _run_step(self, step: Step, operator: Any) -> str:
        if step.id == "new-node" and not self.state.new_node:
            choice = await operator.choose_new_node([n.name for n in self.config.nodes], self.config)
            if not choice:
                self.emit(Notice("error", "no NEW NODE chosen"))
                return "blocked"
            self.state.new_node = choice
            self.plan = self._build()
            self.book.add(s.id for s in self.plan.steps)
            self.emit(PlanChanged(f"NEW NODE is {choice}"))
            step = self.plan.step("new-node")
        self._set(step, RUNNING)
        if step.id == "preflight":
            if not await self._gates(step, None, operator):
                return "blocked"
            self.preflight_ok = True
            self._set(step, DONE)
            return "done"
        for action in step.actions:
            outcome = await self._run_action(step, action, operator)
            if outcome != "done":
                self._set(step, FAILED if outcome == "failed" else BLOCKED if outcome == "blocked" else PENDING)
                return outcome
        self._set(step, DONE)
        return "done"

    async def _gates(self, step: Step, action: Action | None, operator: Any) -> bool:
        while True:
            blocking = [r for r in await self.evaluate(step, action) if not r.ok]
            if not blocking or self.dry_run:
                return True
            self._set(step, BLOCKED, blocking[0].reason)
            decision = await operator.blocked(step, blocking)
            self.calls.append(f"blocked:{decision.choice}")
            if decision.choice == "override" and all(r.soft for r in blocking) and decision.reason.strip():
                self.state.overrides.append({"step": step.id, "reason": decision.reason})
                return True
            if decision.choice == "abort":
                return False
            await asyncio.sleep(0)

    async def _run_action(self, step: Step, action: Action, operator: Any) -> str:
        while True:
            if not await self._gates(step, action, operator):
                return "blocked"
            self._set(step, RUNNING)
            commands = action.preview(None)
            if action.changes and not await operator.confirm(step, action, commands):
                self.calls.append(f"declined:{step.id}:{action.id}")
                return "declined"
            self.emit(ActionStarted(step.id, action.id, action.title, tuple(commands), self.dry_run))
            if self.dry_run:
                self.emit(ActionFinished(step.id, action.id, True, "dry run: not executed"))
                return "done"
            try:
                await self._do(step, action, operator)
            except ActionFailure as exc:
                self.emit(ActionFinished(step.id, action.id, False, exc.message))
                self._set(step, FAILED, exc.message)
                can_rollback = action.node is not None and self.states.get("contract") not in (RUNNING, DONE)
                decision = await operator.action_failed(step, action, exc.message, exc.output, can_rollback)
                self.calls.append(f"failure:{decision.choice}")
                if decision.choice == "retry":
                    continue
                if decision.choice == "rollback" and can_rollback and action.node:
                    self.rollbacks.append(action.node)
                    node = self.sim[action.node]
                    node.release, node.version, node.running, node.state = OLD[0], OLD[1], True, "UP"
                return "failed"
            except asyncio.CancelledError:
                raise
            except _Aborted as exc:
                self.emit(ActionFinished(step.id, action.id, False, str(exc)))
                self.emit(Notice("warning", str(exc)))
                return "aborted"
            self.emit(ActionFinished(step.id, action.id, True))
            return "done"

    async def _do(self, step: Step, action: Action, operator: Any) -> None:
        failure = self.fail_once.pop((step.id, action.id), None)
        node = self.sim.get(action.node or "")
        out = lambda line: self.emit(OutputLine(action.node or self.state.new_node or "local", "stdout", line))  # noqa: E731
        if failure:
            for line in failure[1]:
                out(line)
            raise ActionFailure(*failure)
        if action.id == "backup":
            out("dumped 1.2 MB, sha256 9f2c…")
            self.state.backup = {"path": "/var/backups/glance/glance.sql"}
        elif action.id == "drain" and node:
            node.state = "DRAIN"
        elif action.id == "wait-drained" and node:
            await self._wait_drained(node, operator)
        elif action.id == "stop" and node:
            node.running = False
        elif action.id == "upgrade" and node:
            out(f"Setting up glance-api ({TARGET[1]}) ...")
            self.upgrade(node.name)
        elif action.id == "start" and node:
            node.running = True
        elif action.id == "ready" and node:
            node.state = "UP"
        elif action.id in ("expand", "migrate", "contract"):
            out(f"Database {action.id} is complete" if action.id != "migrate" else "Database migration is up to date. No migration needed.")
            self.db_code = {"expand": 4, "migrate": 5, "contract": 0}[action.id]
        await asyncio.sleep(0)

    async def _wait_drained(self, node: SimNode, operator: Any) -> None:
        timeout = budget = self.config.policy.drain_timeout
        elapsed = 0.0
        while True:
            node.in_flight = self.drain_script.pop(0) if self.drain_script else node.in_flight
            self.emit(DrainProgress(node.name, node.in_flight, elapsed, budget, node.state))
            if node.in_flight == 0:
                return
            if elapsed >= budget:
                decision = await operator.drain_timeout(node.name, node.in_flight, elapsed)
                self.calls.append(f"drain:{decision.choice}")
                if decision.choice == "wait":
                    budget += timeout
                    continue
                if decision.choice == "stop":
                    self.state.overrides.append({"gate": "drain-timeout", "node": node.name, "reason": decision.reason})
                    return
                node.state = "UP"
                raise _Aborted(f"drain of {node.name} timed out with {node.in_flight} request(s) in flight; it is back in rotation")
            elapsed += self.drain_tick
            await asyncio.sleep(0.01)


class _Aborted(Exception):
    pass


def main() -> None:  # pragma: no cover - a manual demo: python -m tests.ui_scripted [WIDTHxHEIGHT]
    """Run the TUI against the scripted engine (to look at it, or drive it from tmux)."""
    import os
    import tempfile

    from screens.app import GlanceApp

    tmp = Path(tempfile.mkdtemp(prefix="glance-tui-demo-"))
    config = scripted_config(tmp, lb_poll_interval=1, node_poll_interval=2)
    engine = ScriptedEngine(config, tmp / "journal", dry_run=bool(os.environ.get("DEMO_DRY_RUN")))
    GlanceApp(engine, config=config).run()


if __name__ == "__main__":  # pragma: no cover
    main()
