"""A scripted engine for fast Pilot tests of ``screens/``: same public shape as ``Engine``.

It keeps a small model of the cluster (LB state, in-flight, release, running per node and the
``db check`` code), builds the REAL plan (``plan.build_plan``: the real steps, actions, previews
and gates) over that scripted cluster, answers those gates from a script the test can change
while the app runs (never by probing), and emits the real event types.
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
    RunFinished, RunState, ServerStats, Step,
)
from glance_tui.commands import NodeCommands
from glance_tui.config import parse_config
from glance_tui.context import Context
from glance_tui.gates import Gate
from glance_tui.journal import NullJournal
from glance_tui.plan import build_plan
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

    def commands(self, node: str) -> NodeCommands:  # the real previews render the real templates
        return NodeCommands(self.engine.config, node)


def real_gates(config: Config) -> dict[str, Gate]:
    """Every gate of the real plan (with a NEW NODE chosen), by id: what the script can fail."""
    plan = build_plan(Context(config, None, NullJournal(), RunState(new_node=config.nodes[0].name), lambda e: None))  # type: ignore[arg-type]
    return {g.id: g for step in plan.steps for g in (*step.gates, *(g for a in step.actions for g in a.gates))}


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
        self.gates = real_gates(config)
        self.ctx = Context(config, self.cluster, NullJournal(), self.state, self.emit)  # type: ignore[arg-type]
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
            self.failing[gid] = GateResult(gid, self.gates[gid].title, False, reason, fix, soft)

    # ---------------------------------------------------------------- plan

    def _build(self) -> Plan:
        """The real plan for the run's decisions so far (its steps, actions, previews and gates)."""
        return build_plan(self.ctx)

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
        return [(a, a.preview(self.ctx)) for a in step.actions if self._needed(a)]

    def _needed(self, action: Action) -> bool:
        """The real engine skips an action that is not needed; here only what the model can tell."""
        return action.id != "restore-binlog" or self.state.log_bin_trust_old is False

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
            if not self._needed(action):
                continue
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
            commands = action.preview(self.ctx)
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
        elif action.id in ("health", "wait-up") and node:
            out(f"{node.name}: /healthcheck 200, /versions 300" if action.id == "health" else f"{node.name} is UP on every load balancer")
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
