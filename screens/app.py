"""The application: open (or resume) the run, then hand over to the main screen.

``run_tui`` is what the CLI calls. ``GlanceApp`` takes either an engine factory
(``factory(resume: bool) -> Engine``, e.g. ``Engine.open`` bound to a config) or a ready
engine (tests against real services, scripted engines).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Mapping

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from glance_tui.api import (
    DONE, Config, ConfigError, Engine, EngineView, GateResult, GatesEvaluated, GlanceTuiError, Step, bug_line, load_config,
)
from screens.dialogs import MessageScreen, QuitScreen, ResumeScreen
from screens.failures import FailureLog, ReportsFailedWorkers, WorkerFailed, WorkerSucceeded
from screens.main import WIDE_FROM, MainScreen, hard_failures
from screens.operator import TuiOperator
from screens.palette import GlanceCommands

EngineFactory = Callable[[bool], EngineView]
NOT_MULTIPLEXED = "not inside tmux/screen: a dropped SSH session ends the app (the journal keeps the run resumable)"


def in_multiplexer(env: Mapping[str, str] = os.environ) -> bool:
    """True inside tmux or GNU screen, where a dropped SSH link does not end the app."""
    return bool(env.get("TMUX") or env.get("STY") or env.get("TERM", "").startswith(("screen", "tmux")))


def resume_summary(engine: EngineView, step: Step | None, results: list[GateResult]) -> Text:
    """Where the unfinished run stands, as re-probed (``engine.reconcile()``)."""
    state = engine.state
    text = Text()
    text.append(f"Journal: {engine.journal.path}\n")
    text.append(f"NEW NODE: {state.new_node or 'not chosen yet'}")
    text.append(f" · backup: {'recorded' if state.backup else 'none'}")
    if state.overrides:
        text.append(f" · {len(state.overrides)} override(s) journaled")
    done = [s.number for s in engine.plan.steps if engine.states.get(s.id) == DONE]
    text.append(f"\nSteps done (probed now): {', '.join(done) or 'none'}\n")
    if step is None:
        text.append("Every step is done: the upgrade looks complete.\n", style="bold")
    else:
        text.append(f"Next: step {step.number} — {step.title} ({engine.states.get(step.id, '?')})\n", style="bold")
        for r in hard_failures(results):
            text.append(f"  ✖ {r.title or r.gate}: {r.reason}\n")
    text.append("\nResume continues from what the cluster shows; a new run keeps the old journal as history.")
    return text


POLLERS = ("lb", "nodes", "gates", "gates-now", "select", "recheck")  # groups that run again by themselves


class GlanceApp(ReportsFailedWorkers, App[int]):
    """The glance-tui assistant."""

    CSS_PATH = "app.tcss"
    TITLE = "glance-tui"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE_FROM, "-wide")]
    COMMANDS = App.COMMANDS | {GlanceCommands}
    BINDINGS = [
        Binding("q", "request_quit", "Quit"),
        Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, engine_factory: EngineFactory | EngineView, *, config: Config, dry_run: bool = False, resume: bool | None = None,
                 pending: bool | None = None, multiplexer: bool | None = None, clock: Callable[[], float] = time.time,
                 gate_interval: float = 2.5) -> None:
        super().__init__()
        self.engine_factory = engine_factory
        self.config, self.dry_run, self.resume, self.pending = config, dry_run, resume, pending
        self.multiplexer = in_multiplexer() if multiplexer is None else multiplexer
        self.clock, self.gate_interval = clock, gate_interval
        self.engine: EngineView | None = None
        self.main: MainScreen | None = None
        self.operator = TuiOperator(self, dry_run=dry_run)
        self.failures = FailureLog()

    def compose(self) -> ComposeResult:
        yield Static(Text("Opening the run and probing the cluster…"), id="opening")
        yield Footer()

    def on_mount(self) -> None:
        self.run_worker(self._open(), group="open", exit_on_error=False)

    async def _open(self) -> None:
        try:
            self.engine = await self._resolve_engine()
        except GlanceTuiError as exc:
            await self.operator.ask(MessageScreen("Cannot open the run", exc.message))
            self.exit(1, return_code=1)
            return
        warning = "" if self.multiplexer else NOT_MULTIPLEXED
        self.main = MainScreen(self.engine, self.config, self.operator, dry_run=self.dry_run, warning=warning,
                               clock=self.clock, gate_interval=self.gate_interval)
        await self.push_screen(self.main)

    async def _resolve_engine(self) -> EngineView:
        factory = self.engine_factory
        if isinstance(factory, EngineView):
            return factory  # a ready engine
        if self.resume is not None:
            return factory(self.resume)
        pending = self.pending if self.pending is not None else Engine.pending_journal(self.config) is not None
        if not pending:
            return factory(False)
        engine = factory(True)
        seen: dict[str, list[GateResult]] = {}
        engine.subscribe(lambda ev: seen.__setitem__(ev.step_id, list(ev.results)) if isinstance(ev, GatesEvaluated) else None)
        step = await engine.reconcile()
        choice = await self.operator.ask(ResumeScreen(resume_summary(engine, step, seen.get(step.id, []) if step else [])))
        if choice == "new":
            await engine.close()
            return factory(False)
        return engine

    def on_worker_failed(self, message: WorkerFailed) -> None:
        """The one place a failed background worker reaches the operator."""
        if not self.failures.should_show(message):
            return  # the same failure again (a poller re-armed itself): shown already
        if message.group in POLLERS:
            self.notify(message.text + "\n(it keeps being retried; the figures it feeds may be out of date)",
                        title="a background check failed", severity="error", timeout=30, markup=False)
        else:
            self.push_screen(MessageScreen("Unexpected error (please report it)", message.text))

    def on_worker_succeeded(self, message: WorkerSucceeded) -> None:
        if self.failures.recovered(message.group):
            self.notify(f"the {message.group} check works again", severity="information", markup=False)

    def _fatal_error(self) -> None:
        """A bug: Textual would print a traceback with local variables (secrets among them); record it
        redacted in crash.log and leave one line on the screen."""
        self.bell()
        self._exit_renderables.append(Text(f"glance-tui: {bug_line(sys.exc_info()[1] or self._exception)}"))
        self._close_messages_no_wait()

    def action_request_quit(self) -> None:
        self.run_worker(self._quit(), group="quit", exclusive=True)

    async def _quit(self) -> None:
        if self.main is not None and self.main.busy:
            if not await self.operator.ask(QuitScreen(self.main.quit_explanation())):
                return
        if self.engine is not None:
            try:
                await self.engine.close()
            except Exception:  # closing connections must not block quitting
                pass
        self.exit(0, return_code=0)


def run_tui(config_path: str | None, *, dry_run: bool, resume: bool | None) -> int:
    """Open the assistant for the config at ``config_path``; returns the exit code."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"glance-tui: {exc.message}", file=sys.stderr)
        return exc.exit_code
    try:
        pending = Engine.pending_journal(config) is not None
        if not dry_run:
            Engine.check_unlocked(config)  # another run on this config: one line, before the screen opens
    except OSError as exc:
        print(f"glance-tui: cannot read the journal directory: {exc}", file=sys.stderr)
        return 1
    except GlanceTuiError as exc:
        print(f"glance-tui: {exc.message}", file=sys.stderr)
        return exc.exit_code
    app = GlanceApp(lambda resume_: Engine.open(config, resume=resume_, dry_run=dry_run), config=config, dry_run=dry_run,
                    resume=resume, pending=pending)
    app.run()
    return app.return_code or 0
