"""The application: open (or resume) the run, then hand over to the main screen.

``run_tui`` is what the CLI calls. ``GlanceApp`` takes either an engine factory
(``factory(resume: bool) -> Engine``, e.g. ``Engine.open`` bound to a config) or a ready
engine (tests against real services, scripted engines).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Callable, Mapping

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from glance_tui.api import (
    INTERRUPTED, DONE, Config, ConfigError, Engine, EngineView, GateResult, GatesEvaluated, GlanceTuiError, JournalProblem,
    JournalWriteFailed, StateDirProblem, Step, bug_line, load_config, require_terminal,
)
from screens.dialogs import MessageScreen, QuitScreen, ResumeScreen
from screens.failures import FailureLog, ReportsFailedWorkers, WorkerFailed, WorkerSucceeded
from screens.main import WIDE_FROM, MainScreen, hard_failures
from screens.operator import TuiOperator
from screens.palette import GlanceCommands
from screens.terminal_safe import TerminalSafeFilter, install_paste_safe_parser, paste_problem

EngineFactory = Callable[[bool], EngineView]
CLOSE_BOUND = 2.0  # seconds quitting waits for connections to close
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
        self.own_process = False  # run_tui: the process's SIGINT and loop errors are the app's (not in tests)
        self._filters.append(TerminalSafeFilter())  # no escape sequence from outside text reaches the terminal

    def compose(self) -> ComposeResult:
        yield Static(Text("Opening the run and probing the cluster…"), id="opening")
        yield Footer()

    def on_mount(self) -> None:
        if self.own_process:
            asyncio.get_running_loop().set_exception_handler(_loop_error_to_crash_log)
        self.run_worker(self._open(), group="open", exit_on_error=False)

    def interrupted(self) -> None:
        """SIGINT (``kill -INT``, or Ctrl-C before the terminal went raw): while a step works it asks as
        ``q`` does (stopping mid-step may leave a node drained); otherwise one line and exit 130."""
        self.run_worker(self._interrupt(), group="quit", exclusive=True)

    async def _interrupt(self) -> None:
        main = self.main
        if main is None:  # still opening: no screen may be built while the app ends
            self.workers.cancel_group(self, "open")
        else:
            for _ in range(100):  # a screen torn down half-built fails in its own on_mount (5 s at most)
                if main.is_mounted:
                    break
                await asyncio.sleep(0.05)
            if main.busy:
                await self._quit()
                return
        await self._close_engine()
        self._exit_renderables.append(Text(INTERRUPTED))
        self.exit(130, return_code=130)

    async def _open(self) -> None:
        try:
            self.engine = await self._resolve_engine()
        except GlanceTuiError as exc:
            await self.operator.ask(MessageScreen("Cannot open the run", exc.message))
            self.exit(exc.exit_code, return_code=exc.exit_code)
            return
        if self.return_code is not None:  # interrupted while the run was opening
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

    async def on_event(self, event: events.Event) -> None:
        """A paste is checked once, here, for every input (dialogs, palette): control characters,
        several lines or an overlong text are refused with one visible line, never inserted."""
        if isinstance(event, events.Paste) and not event.is_forwarded:
            problem = paste_problem(event.text)
            if problem is not None:
                self.bell()
                self.notify(problem, severity="warning", timeout=10, markup=False)
                return
        await super().on_event(event)

    def on_worker_failed(self, message: WorkerFailed) -> None:
        """The one place a failed background worker reaches the operator."""
        if not self.failures.should_show(message):
            return  # the same failure again (a poller re-armed itself): shown already
        if isinstance(message.error, (JournalWriteFailed, JournalProblem, StateDirProblem)):  # expected: no bug to report
            self.push_screen(MessageScreen("The run stopped: its journal cannot be used", message.error.message))
        elif message.group in POLLERS:
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
        error = sys.exc_info()[1] or self._exception
        if isinstance(error, KeyboardInterrupt):  # a Ctrl-C before the app could take it over: not a bug
            self._exit_renderables.append(Text(INTERRUPTED))
            self._return_code = 130
        else:
            self._exit_renderables.append(Text(f"glance-tui: {bug_line(error)}"))
        self._close_messages_no_wait()

    def action_request_quit(self) -> None:
        self.run_worker(self._quit(), group="quit", exclusive=True)

    async def _quit(self) -> None:
        if self.main is not None and self.main.busy:
            if not await self.operator.ask(QuitScreen(self.main.quit_explanation())):
                return
        await self._close_engine()
        self.exit(0, return_code=0)

    async def _close_engine(self) -> None:
        """Close connections, for at most ``CLOSE_BOUND`` seconds: a connect still waiting on an
        unreachable node must not keep the operator in an app they asked to leave (the kernel
        releases the run lock and the files at exit)."""
        if self.engine is not None:
            try:
                await asyncio.wait_for(self.engine.close(), CLOSE_BOUND)
            except Exception:  # closing connections must not block quitting
                pass


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
    except OSError as exc:  # the state directory cannot be read: its path and why, not an errno
        print(f"glance-tui: cannot read the journal directory {exc.filename or ''}: {exc.strerror or exc} — fix: "
              "point XDG_STATE_HOME at a readable directory", file=sys.stderr)
        return 2
    except GlanceTuiError as exc:
        print(f"glance-tui: {exc.message}", file=sys.stderr)
        return exc.exit_code
    try:  # last, once the config, the journal and the lock are known good: what is left is the terminal
        require_terminal()  # without one the TUI would write escapes into a file and wait for keys forever
    except GlanceTuiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    app = GlanceApp(lambda resume_: Engine.open(config, resume=resume_, dry_run=dry_run), config=config, dry_run=dry_run,
                    resume=resume, pending=pending)
    app.own_process = True
    install_paste_safe_parser()  # a pasted ESC must not wedge the terminal's input parser
    previous = signal.signal(signal.SIGINT, lambda signum, frame: _sigint_to(app))
    try:
        app.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    return app.return_code or 0


def _loop_error_to_crash_log(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """What asyncio would print on the operator's terminal (a driver's abandoned connect task failing
    after the app gave up on it: "Task exception was never retrieved") is kept in crash.log instead."""
    error = context.get("exception")
    bug_line(error if isinstance(error, BaseException) else RuntimeError(str(context.get("message", "asyncio error"))))


def _sigint_to(app: GlanceApp) -> None:
    """While the app's loop runs, SIGINT is a call on that loop (never a KeyboardInterrupt inside a
    half-built screen, which Textual reports as errors); before and after it, the CLI's one line."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise KeyboardInterrupt from None
    loop.call_soon_threadsafe(app.interrupted)
