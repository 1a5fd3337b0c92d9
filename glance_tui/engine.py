"""The engine: walks the plan, re-evaluating gates before every action, journaling everything.

It is driven either step by step (the TUI's "continue") or all the way (``run --yes``).
Which step comes next is always decided by probing the cluster, so a resumed run continues
from the truth and never re-runs an action whose effect is already there.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Callable, Literal

from glance_tui.config import Config
from glance_tui.context import Context, RunState
from glance_tui.errors import GlanceTuiError
from glance_tui.events import (
    BLOCKED, DONE, FAILED, PENDING, READY, RUNNING,
    ActionFinished, ActionStarted, Event, GatesEvaluated, Listener, Notice, PlanChanged, RunFinished, redacted,
)
from glance_tui.crash import bug_line
from glance_tui.gates import Gate, GateResult, evaluate_all
from glance_tui.holds import keep_out, readies_cut_off
from glance_tui.cloudlock import CloudLock, CloudLocked, CloudLockLost
from glance_tui.command_tags import settle
from glance_tui.journal import Journal, JournalWriteFailed, NullJournal, binlog_trust_to_restore, carry_over, journal_dir, latest_journal, run_origin, unfinished_journal
from glance_tui.kolla_rollback import rollback_image
from glance_tui.node.containers import recreate_command
from glance_tui.operator import Operator
from glance_tui.plan import Action, ActionIO, LBUnknown, Plan, Step, StepAborted, StepFailed, build_plan
from glance_tui.probes import Cluster, DbCheck, NodeFacts
from glance_tui.runlock import RunLock
from glance_tui.step_states import StepStates
from glance_tui.timing import timed
from glance_tui.record.sampling import journal_versions

# "declined": the operator said no to a confirmation: nothing changed, and the run goes on
# (the step can be continued again); "aborted": the step stopped part-way, the cluster left safe.
Outcome = Literal["done", "blocked", "failed", "aborted", "declined"]


def _seen_starts(journal: Journal | None) -> dict:
    """``RunState.started`` of ``journal``'s run: the nodes it saw stopped before starting them,
    valid while each node's install is the same (a new run, or a look after a run, reuses it)."""
    return RunState.from_records(journal.records()).started if journal is not None else {}


class Engine:
    """One upgrade run of one deployment."""

    runlock: RunLock | None = None  # held from open() to close() by a run that may change the cluster

    def __init__(self, config: Config, *, cluster: Cluster | None = None, journal: Journal, state: RunState | None = None, dry_run: bool = False, recheck_interval: float = 2.0) -> None:
        self.config = config
        self.cluster = cluster or Cluster(config)
        self.journal = journal
        self.dry_run = dry_run
        self.recheck_interval = recheck_interval
        self._listeners: list[Listener] = []
        self.ctx = Context(config, self.cluster, journal, state or RunState(), self._emit)
        self.plan: Plan = build_plan(self.ctx)
        self.book = StepStates(self._emit, (s.id for s in self.plan.steps))
        self.states: dict[str, str] = self.book.states
        self.gate_durations: dict[str, float] = {}  # seconds per gate id, of the last evaluation
        self.preflight_ok = False
        self.resumed = state is not None
        self._resume_noted = False  # "run.resume" is written when the resumed run first acts
        self._lock = asyncio.Lock()
        self._hold_guard: asyncio.Task[None] | None = None  # see _guard_holds
        self.dry_run_blockers: list[str] = []  # preflight gates that fail in a dry run
        # One run per cloud: taken at the first step, held until close() (a dry run takes none).
        self.cloud_lock: CloudLock | None = None if dry_run else CloudLock(config.database, on_event=self._cloud_lock_event)
        self.ctx.own_db_connections = self.cloud_lock.connection_ids if self.cloud_lock else set

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    def pending_journal(cls, config: Config, base: Path | None = None) -> Journal | None:
        """An unfinished run for this config, if any (offer to resume it)."""
        return unfinished_journal(journal_dir(config.path, base))

    @classmethod
    def known_state(cls, config: Config, base: Path | None = None, *, warn: Callable[[str], None] | None = None) -> RunState:
        """For a look without a run to resume: the unfinished run's decisions, else only what the
        latest run saw of the nodes (``RunState.started``: what it started after seeing the node
        stopped), so ``status`` right after an upgrade does not call its fresh starts stale.
        With ``warn`` (a look that changes nothing), a bad journal or line is named and skipped."""
        directory = journal_dir(config.path, base)
        pending = unfinished_journal(directory, warn)
        if pending is not None:
            return RunState.from_records(pending.records())
        return RunState(started=_seen_starts(latest_journal(directory, warn)))

    @classmethod
    def open(cls, config: Config, *, resume: bool, journal_base: Path | None = None, cluster: Cluster | None = None, dry_run: bool = False, **kw) -> "Engine":
        """Resume the unfinished run (``resume=True``) or start a new one.

        A run that may change the cluster first takes the config's run lock (refused at once,
        naming the holder, when another run has it); :meth:`close` releases it.
        """
        directory = journal_dir(config.path, journal_base)
        if dry_run:  # a dry run records nothing, takes no lock and leaves every real journal alone
            pending = unfinished_journal(directory) if resume else None
            state = RunState.from_journal(pending.path) if pending is not None else RunState(started=_seen_starts(latest_journal(directory)))
            engine = cls(config, cluster=cluster, journal=NullJournal(), state=state, dry_run=True, **kw)
            engine.resumed = pending is not None  # the decisions of an unfinished run, not a run of its own
            return engine
        lock = RunLock(directory)
        lock.acquire()  # before any journal is read, resumed or superseded
        try:
            engine = cls._open_locked(config, directory, resume=resume, cluster=cluster, **kw)
        except BaseException:
            lock.release()
            raise
        engine.runlock = lock
        return engine

    @classmethod
    def _open_locked(cls, config: Config, directory: Path, *, resume: bool, cluster: Cluster | None, **kw) -> "Engine":
        pending = unfinished_journal(directory) if resume else None
        if pending is not None:
            state = RunState.from_journal(pending.path)
            if binlog_trust_to_restore(pending.records()) is False:  # set, then killed before the state was saved
                state.log_bin_trust_old = False
            engine = cls(config, cluster=cluster, journal=pending, state=state, **kw)
            engine.ctx.cut_off_ready = readies_cut_off(pending.records())  # killed between a ready's hold drop and its send
            return engine
        previous = latest_journal(directory)
        if previous is not None and not previous.finished:
            previous.write("run.end", ok=False, detail="superseded by a new run")
        journal = Journal.create(directory, config_path=config.path, target_release=config.policy.target_release)
        engine = cls(config, cluster=cluster, journal=journal, **kw)
        if carry_over(previous, journal) is False:  # the restore the previous run still owed
            engine.ctx.state.log_bin_trust_old = False
            engine.ctx.save_state()
        if seen := _seen_starts(previous):
            engine.ctx.state.started = seen
            engine.ctx.save_state()
        return engine

    @classmethod
    def check_unlocked(cls, config: Config, base: Path | None = None) -> None:
        """Raise :class:`RunLocked` (naming the holder) when another run holds this config's lock now."""
        RunLock(journal_dir(config.path, base)).refuse_if_held()

    async def close(self) -> None:
        if self._hold_guard is not None:
            self._hold_guard.cancel()
            await asyncio.gather(self._hold_guard, return_exceptions=True)
            self._hold_guard = None
        try:
            if self.cloud_lock is not None:
                await self.cloud_lock.release()
            await self.cluster.close()
        finally:
            if self.runlock is not None:
                self.runlock.release()

    async def hold_cloud_lock(self) -> None:
        """Take the database lock (first step) or make sure it is still held (every action):
        :class:`CloudLocked` names another run's holder; :class:`CloudLockLost` stops this run."""
        lock = self.cloud_lock
        if lock is None:
            return
        if lock.connection is None and not lock.lost:
            try:
                await lock.acquire(self.journal.path.stem)
            except CloudLocked as exc:
                if not self.resumed:  # this new run never started: its journal says so (what it carried over stays in it)
                    self.journal.write("run.end", ok=False, detail=f"refused: {exc.what}")
                raise
            self.journal.write("cloudlock", name=lock.name, connection=lock.connection)
        await lock.ensure()

    def _cloud_lock_event(self, kind: str, data: dict) -> None:
        self.journal.write(f"cloudlock.{kind}", **data)
        if kind == "retaken":
            self._emit(Notice("warning", f"the database lock's connection dropped ({data.get('why')}); it was taken back"))
        else:
            self._emit(Notice("error", f"this run lost its database lock: {data.get('detail')}; it stops before the next action"))

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Watch the run's events; returns the call that stops watching."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: Event) -> None:
        event = redacted(event)  # the screen and the printer never see a secret
        for listener in list(self._listeners):
            listener(event)

    def _set(self, step: Step, state: str, detail: str = "") -> None:
        self.book.set(step.id, state, detail)

    @property
    def active(self) -> str | None:
        """The step being run, if any."""
        return self.book.active

    @active.setter
    def active(self, step_id: str | None) -> None:
        self.book.active = step_id

    def _rebuild(self, reason: str) -> None:
        self.plan = build_plan(self.ctx)
        self.book.add(s.id for s in self.plan.steps)
        self._emit(PlanChanged(reason))

    # ---------------------------------------------------------------- reading

    @property
    def state(self) -> RunState:
        return self.ctx.state

    def role_of(self, node: str) -> str:
        """The node's role in the run, for the node list: NEW NODE, current, upgraded, pending."""
        return self.book.role_of(node, self.ctx.state.new_node)

    async def node_facts(self, max_age: float = 0.0) -> dict[str, NodeFacts]:
        """Every node's facts for the live view, sharing the gates' probes: a node read within
        ``max_age`` seconds (by a gate, an action or the last poll) is not probed again."""
        self.ctx.invalidate("nodes", older_than=max_age)
        return await self.ctx.node_facts()

    async def db_check(self) -> DbCheck | None:
        """``db check`` with the newest code present on the nodes (for the database panel)."""
        return await self.ctx.live_db_check(self.config.policy.node_poll_interval)

    async def evaluate(self, step: Step, action: Action | None = None, *, max_age: float = 0.0) -> list[GateResult]:
        """Evaluate a step's gates (and an action's), concurrently, against fresh probes
        (``max_age``: for a look only, reuse reads at most that many seconds old)."""
        self.ctx.invalidate(older_than=max_age or None)
        timings = await asyncio.gather(*(timed(g.evaluate(self.ctx)) for g in self.gates_of(step, action)))
        results = [r for r, _ in timings]
        self.gate_durations = {r.gate: round(t, 4) for r, t in timings}
        self._emit(GatesEvaluated(step.id, tuple(results)))
        return results

    @staticmethod
    def gates_of(step: Step, action: Action | None = None) -> tuple[Gate, ...]:
        """The gates guarding ``action`` of ``step``: a step's forward-only gates (they guard
        taking capacity away) never hold back an action that brings a node back."""
        step_gates = tuple(g for g in step.gates if action is None or action.forward or not g.forward_only)
        return step_gates + (tuple(action.gates) if action else ())

    async def next_step(self) -> Step | None:
        """The first step that is not done, judged by probing the cluster now."""
        self.ctx.invalidate()
        for step in self.plan.steps:
            if step.id == "preflight":
                if not self.preflight_ok:
                    return step
                continue
            if self.dry_run and self.states.get(step.id) == DONE:
                continue  # a dry run changes nothing, so probes would never show its steps done
            if await step.done(self.ctx):
                self._set(step, DONE)
                continue
            return step
        return None

    async def reconcile(self) -> Step | None:
        """Re-probe everything and mark steps done/ready/blocked; return the next step."""
        step = await self.next_step()
        if step is not None:
            results = await self.evaluate(step)
            self._set(step, READY if all(r.ok for r in results) else BLOCKED)
        self.journal.write("reconcile", next=step.id if step else None, states=self.states)
        return step

    def preview(self, step: Step) -> list[tuple[Action, list[str]]]:
        """The exact commands each action of ``step`` would run (nothing is executed)."""
        return [(a, a.preview(self.ctx)) for a in step.actions]

    # ---------------------------------------------------------------- acting

    async def choose_new_node(self, operator: Operator) -> bool:
        candidates = [n.name for n in self.config.nodes]
        choice = await operator.choose_new_node(candidates, self.config)
        if not choice or choice not in candidates:
            return False
        self.ctx.state.new_node = choice
        self.journal.write("decision", what="new-node", choice=choice)
        self.ctx.save_state()
        self._rebuild(f"NEW NODE is {choice}")
        return True

    async def _gates_for(self, step: Step, action: Action | None, operator: Operator) -> bool:
        """Wait until the gates pass (or the operator overrides soft ones / applies a remedy)."""
        while True:
            results = await self.evaluate(step, action)
            overridden = {g for o in self.ctx.state.overrides if o.get("step") == step.id for g in o.get("gates", [])}
            blocking = [r for r in results if not r.ok and not (r.soft and r.gate in overridden)]
            self.journal.write("gates", step=step.id, action=action.id if action else None, results=[{**r.as_dict(), "duration": self.gate_durations.get(r.gate)} for r in results])
            if not blocking:
                return True
            if self.dry_run:
                # each gate's reason and fix is in its own line already: these name the gates (one bounded line)
                self._emit(Notice("warning", f"dry run: {len(blocking)} gate(s) would block {step.number}: " + "; ".join(r.title for r in blocking)))
                if step.id == "preflight":  # what must hold now; later steps' gates wait for earlier steps
                    self.dry_run_blockers = [r.title for r in blocking]
                return True
            self._set(step, BLOCKED, blocking[0].reason)
            remedied = False
            for r in blocking:
                if r.remedy and await operator.offer_remedy(r):
                    self.journal.write("remedy.start", gate=r.gate, command=r.remedy.command)
                    await r.remedy.apply(self.ctx)
                    self.journal.write("remedy.end", gate=r.gate)
                    self.ctx.save_state()
                    remedied = True
            if remedied:
                continue
            decision = await operator.blocked(step, blocking)
            self.journal.write("decision", what="blocked", step=step.id, choice=decision.choice, reason=decision.reason)
            if decision.choice == "override":
                if all(r.soft for r in blocking) and decision.reason.strip():
                    self.ctx.state.overrides.append({"step": step.id, "gates": [r.gate for r in blocking], "reason": decision.reason})
                    self.ctx.save_state()
                    return True
                self._emit(Notice("error", "only soft gates can be overridden, and only with a typed reason"))
                continue
            if decision.choice == "abort":
                return False
            await asyncio.sleep(self.recheck_interval)

    async def run_step(self, step: Step, operator: Operator) -> Outcome:
        """Run one step to completion; refuses (returns "blocked") while a hard gate fails."""
        async with self._lock:
            if self._hold_guard is None and not self.dry_run:
                self._hold_guard = asyncio.create_task(self._guard_holds(), name="hold-guard")
            try:
                return await self._run_step(step, operator)
            except JournalWriteFailed as exc:  # nothing more is changed: say where the run stands
                raise JournalWriteFailed(f"{exc.what}; the run stopped in step {step.number} ({step.title}) — {self._progress()}",
                                         fix=exc.fix) from None

    def _progress(self) -> str:
        """What is done and what is left, as the step book has it (for a run that must stop)."""
        done = [s.number for s in self.plan.steps if self.states.get(s.id) == DONE]
        left = [s.number for s in self.plan.steps if self.states.get(s.id) != DONE]
        return f"done: step {', '.join(done) or 'none'}; left: step {', '.join(left) or 'none'}"

    async def _guard_holds(self) -> None:
        """For as long as the run is open, at every load-balancer poll: journal each HAProxy
        restart and put back out of rotation every node the run holds out (glance_tui.holds).
        A failure is told to the operator and retried at the next poll; the gates still see it."""
        interval = self.config.policy.lb_poll_interval
        while True:
            await asyncio.sleep(interval)
            try:
                if not self.ctx.state.held and not self.ctx.cluster.lb.restarts_seen:
                    continue
                self.ctx.invalidate("lb", older_than=interval / 2)
                await keep_out(self.ctx)
            except GlanceTuiError as exc:
                self._emit(Notice("error", f"could not keep held nodes out of rotation: {exc.message}"))
            except Exception as exc:  # a bug must not end the guard silently: logged, told, retried
                self._emit(Notice("error", f"the hold guard failed ({bug_line(exc)})"))

    async def _run_step(self, step: Step, operator: Operator) -> Outcome:
        await self.hold_cloud_lock()  # refused at once, naming the holder, when another run has it
        if self.resumed and not self._resume_noted:
            self.journal.write("run.resume", pid=os.getpid(), **run_origin(self.config.path))  # who resumed, and where
            self._resume_noted = True
        self.active = step.id
        try:
            return await self._run_step_inner(step, operator)
        finally:
            self.active = None

    async def _run_step_inner(self, step: Step, operator: Operator) -> Outcome:
        if step.id == "new-node" and not self.ctx.state.new_node:
            if not await self.choose_new_node(operator):
                self._emit(Notice("error", "no NEW NODE chosen"))
                return "blocked"
            step = self.plan.step("new-node")
        self._set(step, RUNNING)
        self.journal.write("step.start", step=step.id, title=step.title)
        if step.id == "preflight":
            if not await self._gates_for(step, None, operator):
                self.journal.write("step.end", step=step.id, ok=False, outcome="blocked")
                return "blocked"
            self.preflight_ok = True
            await self._record_start_release()
            if not self.dry_run:
                await journal_versions(self.ctx, "before", fresh=False)  # the report's "before" (versions, revisions)
            self._set(step, DONE)
            self.journal.write("step.end", step=step.id, ok=True)
            return "done"
        io = ActionIO(operator, self.dry_run)
        for action in step.actions:
            outcome = await self._run_action(step, action, io)
            if outcome != "done":
                self._set(step, FAILED if outcome == "failed" else BLOCKED if outcome == "blocked" else PENDING)
                self.journal.write("step.end", step=step.id, ok=False, outcome=outcome)
                return outcome
        self.ctx.invalidate()
        if not self.dry_run and not await step.done(self.ctx):
            self._set(step, FAILED, "verification failed")
            self.journal.write("step.end", step=step.id, ok=False, outcome="verify")
            self._emit(Notice("error", f"step {step.number} ran but the cluster does not show it done; re-check and retry"))
            return "failed"
        self._set(step, DONE)
        self.journal.write("step.end", step=step.id, ok=True)
        return "done"

    async def _run_action(self, step: Step, action: Action, io: ActionIO) -> Outcome:
        while True:
            await self.hold_cloud_lock()  # lost: the run stops here, between actions
            if not await self._gates_for(step, action, io.operator):
                return "blocked"
            self._set(step, RUNNING)
            try:
                commands = action.preview(self.ctx)
                if self.dry_run:  # show every command; probe nothing further, run nothing
                    self._emit(ActionStarted(step.id, action.id, action.title, tuple(commands), True))
                    self._emit(ActionFinished(step.id, action.id, True, "dry run: not executed"))
                    return "done"
                await settle(self.ctx)  # an earlier run's command still running on a node is waited for, never repeated
                if not await action.needed(self.ctx):
                    self.journal.write("action.skip", step=step.id, action=action.id, why="already true on the cluster")
                    return "done"
                if action.changes and not await io.operator.confirm(step, action, commands):
                    self.journal.write("decision", what="confirm", step=step.id, action=action.id, choice="declined")
                    return "declined"
                if action.changes and not await self._still_allowed(step, action):
                    continue  # the cluster changed while the dialog was open: back to the gates
                if self.cloud_lock is not None:
                    await self.cloud_lock.ensure()  # right before the change (CloudLockLost is not retried)
                self._emit(ActionStarted(step.id, action.id, action.title, tuple(commands), False))
                self.journal.write("action.start", step=step.id, action=action.id, node=action.node, commands=commands)
                await action.run(self.ctx, io)
            except JournalWriteFailed:
                raise  # not an action failure: the run stops (no retry, no rollback without a journal)
            except CloudLockLost:
                raise  # another run may act now: nothing is retried or rolled back by this one
            except StepAborted as exc:
                self.journal.write("action.end", step=step.id, action=action.id, ok=False, aborted=True, error=exc.message)
                self._emit(ActionFinished(step.id, action.id, False, exc.message))
                self._emit(Notice("warning", exc.message))
                return "aborted"
            except GlanceTuiError as exc:
                output = getattr(exc, "output", [])
                self.journal.write("action.end", step=step.id, action=action.id, ok=False, error=exc.message, tail=output)
                self._emit(ActionFinished(step.id, action.id, False, exc.message))
                self._set(step, FAILED, exc.message)
                can_rollback = self._can_rollback(action) and not isinstance(exc, LBUnknown)
                decision = await io.operator.action_failed(step, action, exc.message, output, can_rollback)
                self.journal.write("decision", what="failure", step=step.id, action=action.id, choice=decision.choice)
                if decision.choice == "retry":
                    continue
                if decision.choice == "rollback" and can_rollback and action.node:
                    await self._rollback(action.node, io)
                return "failed"
            self.ctx.invalidate()
            self.journal.write("action.end", step=step.id, action=action.id, ok=True)
            self._emit(ActionFinished(step.id, action.id, True))
            return "done"

    async def _still_allowed(self, step: Step, action: Action) -> bool:
        """Re-check the gates right before the change: a confirmation dialog can sit open for
        minutes (capacity before a drain, no old service before contract)."""
        results = await self.evaluate(step, action)
        overridden = {g for o in self.ctx.state.overrides if o.get("step") == step.id for g in o.get("gates", [])}
        blocking = [r for r in results if not r.ok and not (r.soft and r.gate in overridden)]
        self.journal.write("gates", step=step.id, action=action.id, when="after confirm", results=[r.as_dict() for r in results])
        if blocking:
            self._emit(Notice("warning", f"not running {action.title}: while it waited for confirmation, " + "; ".join(f"{r.title}: {r.reason}" for r in blocking)))
            return False
        return True

    async def _record_start_release(self) -> None:
        if self.ctx.state.start_release:
            return
        facts = await self.ctx.node_facts()
        target = self.config.policy.target_release
        old = sorted({f.release for f in facts.values() if f.release and f.release != target})
        if old:
            self.ctx.state.start_release = old[0]
            self.ctx.save_state()

    def _can_rollback(self, action: Action) -> bool:
        """Until contract, where a rollback is written (``rollback``) or a Kolla node can be
        re-created on the image it ran before."""
        if not action.node:
            return False
        cmds = self.cluster.commands(action.node)
        if cmds.rollback() is None and cmds.kind != "kolla":
            return False
        return self.states.get("contract") not in (RUNNING, DONE)

    async def _rollback(self, node: str, io: ActionIO) -> None:
        """Put the old release back on ``node`` and into rotation (valid until contract).

        The node is drained and waited for with the same gates as a forward step before it is
        stopped: a rollback never cuts in-flight requests or takes the last node out."""
        from glance_tui.plan import drain_action, health_action, ready_action, start_action, stop_action, wait_drained_action, wait_up_action

        cmds = self.cluster.commands(node)
        cmd = cmds.rollback()
        try:
            prior = await rollback_image(self.ctx, node) if cmd is None else None
        except GlanceTuiError as exc:
            self.journal.write("rollback.end", node=node, ok=False, error=exc.message)
            self._emit(Notice("error", f"rollback of {node} failed: {exc.message}"))
            return
        planned = cmd.command if cmd is not None else (f"re-create {self.config.kolla_of(node).container} on image {prior[:12]} (the one it ran before)"
                                                      if prior else "nothing to re-create: the container runs its old image")
        self.journal.write("rollback.start", node=node, command=planned)
        try:
            for action in (drain_action(node), wait_drained_action(node, keep_target=False), stop_action(node, keep_target=False)):
                if await action.needed(self.ctx):
                    self.ctx.invalidate()
                    results = await evaluate_all(action.gates, self.ctx) if action.gates else []
                    blocking = [r for r in results if not r.ok]
                    if blocking:
                        raise StepFailed(f"rollback of {node} refused before {action.id}: " + "; ".join(r.reason for r in blocking), fix=blocking[0].fix)
                    self.journal.write("rollback.action", node=node, action=action.id)
                    await action.run(self.ctx, io)
            if cmd is None and prior is not None:  # a Kolla node: its stopped container back on the old image
                cmd = await recreate_command(self.ctx.run, cmds, image=prior)
            if cmd is not None:
                result = await self.ctx.run(cmd, stream=True)
                self.journal.write("command", node=node, command=cmd.command, exit=result.exit_status, timed_out=result.timed_out, tail=result.tail(20))
                if not result.ok:
                    raise StepFailed(f"rollback on {node} exited {result.exit_status}", output=result.tail(30))
            for action in (start_action(node), health_action(node), ready_action(node), wait_up_action(node)):
                if await action.needed(self.ctx):
                    self.journal.write("rollback.action", node=node, action=action.id)
                    await action.run(self.ctx, io)
        except GlanceTuiError as exc:
            self.journal.write("rollback.end", node=node, ok=False, error=exc.message)
            self._emit(Notice("error", f"rollback of {node} failed: {exc.message}"))
            return
        self.journal.write("rollback.end", node=node, ok=True)
        await journal_versions(self.ctx, "rollback")
        self._emit(Notice("info", f"{node} is back on the old release and in rotation"))

    async def run(self, operator: Operator) -> bool:
        """Run every remaining step (headless ``run``); True when the upgrade is complete."""
        while True:
            step = await self.next_step()
            if step is None:
                if self.dry_run and self.dry_run_blockers:
                    detail = f"dry run: {len(self.dry_run_blockers)} preflight gate(s) would block the run: " + "; ".join(self.dry_run_blockers)
                    return self.finish(False, detail, end=False)
                if self.dry_run:
                    return self.finish(True, "dry run complete: nothing was changed", end=False)
                return await self.conclude(True, "upgrade complete")
            outcome = await self.run_step(step, operator)
            if outcome != "done":
                if not self.dry_run:
                    await journal_versions(self.ctx, "end")
                detail = f"stopped at step {step.number} ({step.title}): {outcome}"
                self.journal.write("run.pause", step=step.id, outcome=outcome)
                self._emit(RunFinished(False, detail))
                return False

    async def conclude(self, ok: bool, detail: str) -> bool:
        """End the run: the final versions and revisions (the report's "after"), then ``run.end``
        (``run()``'s last step, and the TUI's)."""
        if not self.dry_run:
            await journal_versions(self.ctx, "end")
        return self.finish(ok, detail)

    def finish(self, ok: bool, detail: str, *, end: bool = True) -> bool:
        if end:
            self.journal.write("run.end", ok=ok, detail=detail)
        self._emit(RunFinished(ok, detail))
        return ok
