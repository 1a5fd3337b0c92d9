"""The main screen: the live cluster view, the checklist and the selected step.

The node list, database panel and LB status poll on their own (``screens/cluster.py``); gates
re-evaluate on a timer while idle. "continue" is dimmed in the footer while a hard gate of the
next step fails — pressing it anyway explains what blocks and how to fix it. A key that starts
something shows "checking gates…" at once; "continue" pressed while gates are still being
checked waits for them, then runs the step or explains the blocking gate: never nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Awaitable, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual import events
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, RichLog, Static

from glance_tui.api import (
    DONE, RUNNING, ActionFinished, ActionStarted, Config, DrainProgress, EngineView, Event, GatesEvaluated, GateResult,
    GlanceTuiError, Notice, OutputLine, PlanChanged, RunFinished, Step, StepChanged, bug_line, one_line,
)
from screens.activity import Activity
from screens.checklist import Checklist, StepDetail, detail_text, shown_state
from screens.cluster import ClusterView
from screens.dialogs import MessageScreen
from screens.drain import DrainView
from screens.failures import ReportsFailedWorkers
from screens.journal import JournalScreen
from screens.summary import SummaryScreen

SEVERITY = {"info": "information", "warning": "warning", "error": "error"}
WIDE_FROM = 100  # columns; below it the layout is the compact one (CSS: the screen's "-narrow" class)
TINY_BELOW = 72  # columns; below it (60×20) the selected step's panel gets the room (CSS: "-tiny")


class EngineEvent(Message):
    """An engine event, carried onto the screen's message queue."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


def hard_failures(results: list[GateResult] | None) -> list[GateResult]:
    return [r for r in results or [] if not r.ok and not r.soft]


class MainScreen(ReportsFailedWorkers, Screen[None]):
    BINDINGS = [
        Binding("c", "continue", "Continue"),
        Binding("c", "explain_blocked", "Continue", show=False),
        Binding("r", "recheck", "Recheck"),
        Binding("n", "select_next", "Next step"),
        Binding("d", "show_drain", "Drain"),
        Binding("l", "journal", "Journal"),
    ]

    def __init__(self, engine: EngineView, config: Config, operator: Any, *, dry_run: bool = False, warning: str = "",
                 clock: Callable[[], float] = time.time, gate_interval: float = 2.5) -> None:
        super().__init__()
        self.engine, self.config, self.operator = engine, config, operator
        self.dry_run, self.warning, self.clock, self.gate_interval = dry_run, warning, clock, gate_interval
        self.busy = False  # a step is running
        self.continuing = False  # "continue" was pressed: the gates are checked, then the step runs
        self.next_id: str | None = None
        self.next_gates: list[GateResult] | None = None
        self.gates: dict[str, list[GateResult]] = {}
        self.output: dict[str, deque[Text]] = {}
        self.running_step: str | None = None
        self.current_action = ""
        self.dry_run_over = False
        self._probe_lock = asyncio.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._bindings_key: tuple[bool, bool] | None = None

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="banner-row"):
            yield Static(self._banner(), id="banner")
            yield Activity(id="activity")
        yield ClusterView(self.engine, self.config, clock=self.clock, busy=lambda: self.busy, id="cluster")
        with Horizontal(id="bottom"):
            yield Checklist(id="steps")
            with Vertical(id="detail"):
                yield DrainView(id="drain")
                with VerticalScroll(id="step-scroll"):
                    yield StepDetail(id="step-detail")
                yield RichLog(id="output", markup=False, wrap=True, max_lines=2000, min_width=20)
        yield Footer()

    def _banner(self) -> Text:
        p = self.config.policy
        text = Text(f"glance-tui · {len(self.config.nodes)} nodes → {p.target_release}{' ' + p.target_version if p.target_version else ''}", style="bold")
        if self.dry_run:
            text.append(" · DRY RUN: commands are shown, never run", style="bold yellow")
        if self.warning:
            text.append(f" · ⚠ {self.warning}", style="yellow")
        return text

    def on_mount(self) -> None:
        self.query_one("#drain", DrainView).display = False
        self.query_one("#steps", Checklist).border_title = "Checklist"
        self.query_one("#output", RichLog).border_title = "Output"
        self.query_one("#step-scroll").border_title = "Selected step"
        self.query_one("#drain", DrainView).border_title = "Drain"
        self._unsubscribe = self.engine.subscribe(lambda event: self.post_message(EngineEvent(event)))
        self.query_one("#steps", Checklist).load(self.engine.plan, self.engine.states)
        self.refresh_roles()
        self.query_one("#steps", Checklist).focus()
        self.fit_width(self.app.size.width)
        self._spawn(self._gate_cycle, "gates", "gate check")

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    def on_resize(self, event: events.Resize) -> None:
        self.fit_width(event.size.width)

    def fit_width(self, width: int) -> None:
        """Compact labels, DB strip and short titles below ``WIDE_FROM`` columns (the CSS moves the panels)."""
        wide = width >= WIDE_FROM
        self.set_class(width < TINY_BELOW, "-tiny")
        self.cluster.set_compact(not wide)
        self.query_one("#steps", Checklist).set_wide(wide)

    @property
    def cluster(self) -> ClusterView:
        return self.query_one("#cluster", ClusterView)

    @property
    def activity(self) -> Activity:
        return self.query_one("#activity", Activity)

    # ---------------------------------------------------------------- workers (re-armed after each run)

    def _spawn(self, work: Callable[[], Awaitable[None]], group: str, what: str, **kw: Any) -> None:
        self.run_worker(work, group=group, description=what, exit_on_error=False, **kw)  # the callable: see ClusterView._spawn

    def _rearm(self, delay: float, work: Callable[[], Awaitable[None]], group: str, what: str) -> None:
        if self.is_attached:
            self.set_timer(delay, lambda: self._spawn(work, group, what))

    async def _gate_cycle(self) -> None:
        try:
            if not self.busy and not self.continuing:
                await self.reevaluate(max_age=self.config.policy.node_poll_interval)
        except GlanceTuiError as exc:
            self.notify(exc.message, severity="error", markup=False)
        finally:
            self._rearm(self.gate_interval, self._gate_cycle, "gates", "gate check")

    def refresh_roles(self) -> None:
        self.cluster.refresh_roles()

    # ---------------------------------------------------------------- gates and states

    async def _next_step(self) -> Step | None:
        """The engine's next step; in a dry run, steps already walked through count as done
        (their effects never happen, so the probes alone would offer the same step again)."""
        step = await self.engine.next_step()
        if self.dry_run and step is not None and self.engine.states.get(step.id) == DONE:
            step = next((s for s in self.engine.plan.steps if self.engine.states.get(s.id) != DONE), None)
        if self.dry_run and self.engine.states.get("upgrade-new") == DONE:
            step, self.dry_run_over = None, True  # later steps depend on effects a dry run never makes
        return step

    async def reevaluate(self, max_age: float = 0.0) -> None:
        """Which step is next, and do its gates (and the selected step's) pass right now?
        (``max_age``: a look, not a decision; reads at most that old may be reused.)"""
        async with self._probe_lock:
            nxt = await self._next_step()
            self.next_id = nxt.id if nxt else None
            if nxt is not None:
                self.gates[nxt.id] = self.next_gates = list(await self.engine.evaluate(nxt, max_age=max_age))
            else:
                self.next_gates = []
            selected = self.selected_step()
            if selected is not None and selected.id != self.next_id and self.engine.states.get(selected.id) != DONE:
                self.gates[selected.id] = list(await self.engine.evaluate(selected, max_age=max_age))
        self.refresh_states()

    def refresh_states(self) -> None:
        checklist = self.query_one("#steps", Checklist)
        for step in self.engine.plan.steps:
            checklist.set_state(step.id, shown_state(step.id, self.engine.states.get(step.id, ""), self.next_id, self.gates.get(step.id)))
        self.sync_bindings()
        self.show_selected()

    def sync_bindings(self) -> None:
        """Refresh the footer only when an action's enabled state really changed (it recomposes)."""
        key = (self.can_continue, self.query_one("#drain", DrainView).last is not None)
        if key != self._bindings_key:
            self._bindings_key = key
            self.refresh_bindings()

    @property
    def can_continue(self) -> bool:
        return (not self.busy and not self.continuing and self.next_id is not None and self.next_gates is not None
                and not hard_failures(self.next_gates))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "continue":
            return True if self.can_continue else None
        if action == "explain_blocked":
            return not self.can_continue
        if action == "show_drain":
            return True if self.query_one("#drain", DrainView).last else None
        return True

    # ---------------------------------------------------------------- selection and detail

    def selected_step(self) -> Step | None:
        step_id = self.query_one("#steps", Checklist).selected_id
        return next((s for s in self.engine.plan.steps if s.id == step_id), None)

    def show_selected(self) -> None:
        step = self.selected_step()
        detail = self.query_one("#step-detail", StepDetail)
        if step is None:
            detail.show(Text("Step 7 runs once per remaining node, drain → wait → stop → upgrade → start → health → ready → UP.\n"
                             "Its rows appear when the NEW NODE is chosen (step 2)."))
            return
        state = self.query_one("#steps", Checklist).state_of(step.id)
        try:
            preview = self.engine.preview(step)
        except Exception as exc:  # a bug in one step's preview must not end the app: the panel says so
            detail.show(Text(f"Step {step.number} — {step.title}\nIts commands cannot be shown: {bug_line(exc)}"))
            return
        detail.show(detail_text(step, state, self.gates.get(step.id), preview, dry_run=self.dry_run, is_next=step.id == self.next_id))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "steps":
            return
        self.show_selected()
        log = self.query_one("#output", RichLog)
        log.clear()
        for line in self.output.get(self.query_one("#steps", Checklist).selected_id or "", ()):
            log.write(line)
        step = self.selected_step()
        if step is not None and step.id not in self.gates and not self.busy:
            self._spawn(self._evaluate_selected, "select", "gate check of the selected step")

    async def _evaluate_selected(self) -> None:
        step = self.selected_step()
        if step is None or self.busy:
            return
        async with self._probe_lock:
            self.gates[step.id] = list(await self.engine.evaluate(step, max_age=self.config.policy.node_poll_interval))
        self.refresh_states()

    # ---------------------------------------------------------------- engine events

    def _out(self, text: Text) -> None:
        step_id = self.running_step or "_"
        self.output.setdefault(step_id, deque(maxlen=2000)).append(text)
        if self.query_one("#steps", Checklist).selected_id == step_id:
            self.query_one("#output", RichLog).write(text)

    def on_engine_event(self, message: EngineEvent) -> None:
        ev = message.event
        checklist = self.query_one("#steps", Checklist)
        if isinstance(ev, StepChanged):
            if ev.state == RUNNING and self.running_step != ev.step_id:
                self.running_step = ev.step_id
                checklist.select(ev.step_id)
            self.refresh_roles()
            self.refresh_states()
        elif isinstance(ev, GatesEvaluated):
            self.gates[ev.step_id] = list(ev.results)
            if ev.step_id == self.next_id:
                self.next_gates = list(ev.results)
            self.refresh_states()
        elif isinstance(ev, ActionStarted):
            self.activity.stop()  # the action's own output and the checklist take over
            self.running_step, self.current_action = ev.step_id, ev.title
            self._out(Text(f"▶ {ev.title}{'  (DRY RUN — not executed)' if ev.dry_run else ''}", style="bold"))
            for cmd in ev.commands:
                self._out(Text(f"  {cmd}"))
        elif isinstance(ev, ActionFinished):
            self._out(Text(f"{'✔ done' if ev.ok else '✖ FAILED'}: {ev.action_id}{' — ' + ev.detail if ev.detail else ''}", style="green" if ev.ok else "bold red"))
            if ev.action_id == "wait-drained":
                self.query_one("#drain", DrainView).display = False
        elif isinstance(ev, OutputLine):
            line = one_line(ev.line)  # a node's output is shown escaped: its escape sequences are not the terminal's
            self._out(Text(f"[{ev.node}{' stderr' if ev.stream == 'stderr' else ''}] {line}", style="yellow" if ev.stream == "stderr" else ""))
        elif isinstance(ev, DrainProgress):
            self.query_one("#drain", DrainView).progress(ev)
            self.sync_bindings()
        elif isinstance(ev, PlanChanged):
            checklist.load(self.engine.plan, self.engine.states)
            self.refresh_roles()
            self.refresh_states()
        elif isinstance(ev, Notice):
            self.notify(ev.text, severity=SEVERITY.get(ev.level, "information"), markup=False)  # type: ignore[arg-type]
        elif isinstance(ev, RunFinished):
            self.notify(ev.detail, title="run finished" if ev.ok else "run stopped", severity="information" if ev.ok else "warning", markup=False)
            self.show_run_summary("finished" if ev.ok else "failed", ev.detail)

    # ---------------------------------------------------------------- actions

    def on_screen_suspend(self) -> None:
        """A dialog covers the screen: it is the response now, so the spinner under it stops."""
        if self.activity.active and self.busy:
            self.activity.stop()

    def action_continue(self) -> None:
        self.press_continue()

    def action_explain_blocked(self) -> None:
        self.press_continue()

    def request_continue(self) -> None:
        """From the palette: run, or explain why not (the footer binding is dimmed then)."""
        self.press_continue()

    def press_continue(self) -> None:
        """Run the next step or say why not: at once when the gates are known, else as soon as
        they are (with "checking gates…" on screen meanwhile). Never nothing."""
        if self.busy:
            self.notify(f"step {self.running_step or ''} is running; wait for it to finish", markup=False)
            return
        if self.continuing:
            self.notify("continue is on its way: the gates are being checked…", markup=False)
            return
        if not self._probe_lock.locked() and self.next_gates is not None:
            if self.next_id is None:
                self.say_nothing_left()
                return
            if hard_failures(self.next_gates):
                self.explain_blocked()
                return
        self.continuing = True
        self.activity.start("checking gates…")
        self.sync_bindings()
        self._spawn(self._run_next, "step", "the step", exclusive=True)

    def say_nothing_left(self) -> None:
        msg = ("dry run complete: later steps depend on effects a dry run does not produce; each step's panel shows its commands"
               if self.dry_run_over else "nothing left to run: the upgrade is complete")
        self.notify(msg, markup=False)

    def explain_blocked(self) -> None:
        """Which hard gates of the next step fail, and how to fix them."""
        step = self.engine.plan.step(self.next_id)
        self.query_one("#steps", Checklist).select(step.id)
        failing = hard_failures(self.next_gates)
        lines = [f"Continue is blocked: step {step.number} ({step.title}), {len(failing)} gate(s) fail"]
        for r in failing[:2]:
            lines.append(f"✖ {r.title or r.gate}" + (f" — fix: {r.fix}" if r.fix else ""))
        lines.append("Each gate's reason and fix: the selected-step panel.")
        self.notify("\n".join(lines), severity="warning", timeout=12, markup=False)

    async def _run_next(self) -> None:
        """Wait for a gate check under way, check the next step, then run it or explain."""
        try:
            async with self._probe_lock:
                step = await self._next_step()
                known = self.next_gates if step is not None and step.id == self.next_id else None
                if step is None:
                    results = []
                elif known is not None and not hard_failures(known):
                    results = known  # they passed; the engine checks them again, fresh, before each action
                else:
                    results = list(await self.engine.evaluate(step, max_age=self.config.policy.node_poll_interval))
                self.next_id, self.next_gates = (step.id if step else None), results
            self.refresh_states()
            if step is None:
                self.say_nothing_left()
                return
            if hard_failures(results):
                self.explain_blocked()
                return
            self.continuing, self.busy = False, True
            # "checking gates…" stays until the first action starts (or a dialog asks): the engine
            # checks the gates again, fresh, and probes whether the action is needed
            self.sync_bindings()
            self.query_one("#steps", Checklist).select(step.id)
            self.running_step = step.id
            outcome = await self.engine.run_step(step, self.operator)
            severity = "information" if outcome in ("done", "declined") else "warning"
            said = "declined: nothing was changed; c runs it when you are ready" if outcome == "declined" else outcome
            self.notify(f"step {step.number}: {said}", severity=severity, markup=False)  # type: ignore[arg-type]
            await self.end_run_if_over(step, outcome)
        except GlanceTuiError as exc:
            self.app.push_screen(MessageScreen("The step could not run", exc.message))
        finally:  # anything else reaches the operator through the app's failed-worker handler
            self.busy = self.continuing = False
            self.current_action = ""
            self.activity.stop()
            self.sync_bindings()
            self._spawn(self._gate_cycle_once, "gates-now", "gate check")

    # ---------------------------------------------------------------- the end of a run (summary screen)

    async def end_run_if_over(self, step: Step, outcome: str) -> None:
        """A stopped step ends the run here; the last step done finishes it (journaled ``run.end``)."""
        if self.dry_run or outcome == "declined":  # "not now": nothing changed, the run goes on
            return
        if outcome != "done":
            self.show_run_summary(outcome, f"stopped at step {step.number} ({step.title}): {outcome}")
        elif step.id == self.engine.plan.steps[-1].id and await self._next_step() is None:
            await self.engine.conclude(True, "upgrade complete")  # final versions, run.end; RunFinished: the summary follows

    def show_run_summary(self, outcome: str, detail: str) -> None:
        if not isinstance(self.app.screen, SummaryScreen):
            self.app.push_screen(SummaryScreen(self.engine, self.config, outcome, detail))

    async def _gate_cycle_once(self) -> None:
        if not self.busy:
            await self.reevaluate()

    def action_recheck(self) -> None:
        if self.busy:
            self.notify("a step is running; gates are rechecked before each of its actions", markup=False)
            return
        self.activity.start("re-checking the cluster and the gates…")
        self._spawn(self._recheck, "recheck", "re-check")

    async def _recheck(self) -> None:
        try:
            await self.cluster.recheck()
            await self.reevaluate()
        finally:
            if not self.busy and not self.continuing:
                self.activity.stop()

    def action_select_next(self) -> None:
        if self.next_id:
            self.query_one("#steps", Checklist).select(self.next_id)

    def action_show_drain(self) -> None:
        drain = self.query_one("#drain", DrainView)
        if drain.last is None:
            self.notify("no drain has run yet", markup=False)
            return
        drain.display = not drain.display

    def action_journal(self) -> None:
        self.app.push_screen(JournalScreen(self.engine.journal.path))

    async def run_palette_action(self, action: str) -> None:
        if action == "continue":
            self.request_continue()
        else:
            await self.run_action(action)

    # ---------------------------------------------------------------- quitting

    def quit_explanation(self) -> Text:
        """What is running and what state the cluster is left in, from the latest probes."""
        table = self.cluster.table
        step = next((s for s in self.engine.plan.steps if s.id == self.running_step), None)
        text = Text()
        if step is not None:
            text.append(f"Step {step.number} ({step.title}) is running", style="bold")
            text.append(f": {self.current_action}.\n" if self.current_action else ".\n")
        text.append("Quitting stops it here; a command already sent may still finish on its node.\n\nThe cluster is left:\n")
        names = [n.name for n in self.config.nodes]
        out = [f"{n} ({table.cell(n, 'lb')})" for n in names if not table.cell(n, "lb").startswith("UP")]
        stopped = [n for n in names if table.cell(n, "running") == "no"]
        target = [n for n in names if table.cell(n, "release").startswith("target")]
        text.append(f"  out of rotation: {', '.join(out) or 'none'}\n")
        text.append(f"  Glance stopped on: {', '.join(stopped) or 'none'}\n")
        text.append(f"  on the target release: {', '.join(target) or 'none'}\n")
        check = self.cluster.db.check
        text.append(f"  database: {check.meaning if check else 'db check not known'}\n")
        text.append("\nThe journal keeps the run: start glance-tui with the same config to resume from what the probes show.")
        return text
