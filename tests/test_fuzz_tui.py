"""The TUI fuzzed as an operator would: seeded random keys, typed and pasted text, resizes.

Each scenario brings the app (on the scripted engine: fast, no services) to one screen — the
main screen idle and mid-step, every modal (confirmations with and without a typed word, the
NEW NODE choice, blocked with a typed reason and without, the drain timeout, a failed action,
an offered fix, an error message, the quit and resume questions), the summary and the journal
— then sends a seeded
random sequence of every binding the screens declare, arrows, tab/shift+tab, enter, escape,
space, printable and non-ASCII text, control keys, pastes (escape sequences, control
characters, several lines, 20,000 characters) and terminal resizes from 12×4 to 250×80.
After every sequence:

- no exception in the app and no failed worker;
- every changing action the engine ran was confirmed first (a typed word where the plan needs
  one), no step started while another ran, and no override or forced stop carries a blank reason;
- no input holds a control character, and a paste that was refused said so on screen;
- the app still answers: back on the main screen, ``l`` opens the journal.

A failure message names the seed and the whole sequence: ``TUI_FUZZ_SEED=<seed>`` replays it.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from textual import events
from textual.drivers.headless_driver import HeadlessDriver
from textual.screen import Screen
from textual.widgets import Input

from glance_tui.api import BlockedDecision, DrainDecision, GateResult, GlanceTuiError, Notice, OutputLine, Remedy, RunState
from screens.app import GlanceApp
from screens.dialogs import (
    BlockedScreen, ChooseNodeScreen, ConfirmScreen, Dialog, DrainTimeoutScreen, FailureScreen, MessageScreen, QuitScreen,
    RemedyScreen, ResumeScreen,
)
from screens.journal import JournalScreen
from screens.main import MainScreen
from screens.summary import SummaryScreen
from tests.ui_helpers import FROZEN, drive_until, make, ready, wait_for
from tests.ui_scripted import ScriptedEngine, scripted_config

SEED = int(os.environ.get("TUI_FUZZ_SEED", "20261207"))
EVENTS = int(os.environ.get("TUI_FUZZ_EVENTS", "24"))  # per sequence

SCREENS = (GlanceApp, MainScreen, SummaryScreen, JournalScreen, ConfirmScreen, ChooseNodeScreen, BlockedScreen,
           DrainTimeoutScreen, FailureScreen, RemedyScreen, ResumeScreen, QuitScreen, MessageScreen, Dialog)
BINDING_KEYS = sorted({key.strip() for cls in SCREENS for b in cls.BINDINGS for key in b.key.split(",")})  # type: ignore[union-attr]
NAVIGATION = ["up", "down", "left", "right", "home", "end", "pageup", "pagedown", "tab", "shift+tab", "enter", "escape",
              "space", "backspace", "delete"]
TEXT = ["a", "Z", "7", "-", ".", "é", "ß", "ж", "日", "🙂", "x", "t", "o", "p"]
CONTROL = ["ctrl+a", "ctrl+c", "ctrl+d", "ctrl+e", "ctrl+k", "ctrl+l", "ctrl+u", "ctrl+w", "ctrl+x", "ctrl+v", "ctrl+p"]
PASTES = ["maintenance window", "  \t  ", "\x1b[2J\x1b[Hscreen cleared", "\x1b]0;owned\x07title", "first line\nsecond line",
          "\u202eevil reversed", "ok\x00nul", "é日🙂 non-ASCII", "\x9b31mC1", "r" * 20_000, "contract", "stop"]
SIZES = [(12, 4), (20, 5), (60, 20), (80, 24), (120, 40), (250, 80)]
# what outside text (pastes, a node's output, a notice) tries to send; none of it may reach the terminal raw
RAW = ["\x1b[2Jcleared", "\x1b[Hscreen cleared", "\x1b]0;owned", "\x07title", "\x1b[31mGot", "\u202eevil", "\x9b31m", "\x00nul"]
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def random_sequence(rng: random.Random, n: int) -> list[tuple[str, Any]]:
    """``n`` operator events: mostly keys (bindings weigh most), some pastes and resizes."""
    kinds = [("binding", 40), ("nav", 22), ("text", 14), ("control", 6), ("paste", 10), ("resize", 8)]
    out: list[tuple[str, Any]] = []
    for _ in range(n):
        kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        if kind == "binding":
            out.append(("key", rng.choice(BINDING_KEYS)))
        elif kind == "nav":
            out.append(("key", rng.choice(NAVIGATION)))
        elif kind == "text":
            out.append(("key", rng.choice(TEXT)))
        elif kind == "control":
            out.append(("key", rng.choice(CONTROL)))
        elif kind == "paste":
            out.append(("paste", rng.choice(PASTES)))
        else:
            out.append(("resize", rng.choice(SIZES)))
    return out


def shown(seq: list[tuple[str, Any]]) -> str:
    return ", ".join(f"{kind}:{value[:40]!r}{'…' if isinstance(value, str) and len(value) > 40 else ''}" if kind == "paste"
                     else f"{kind}:{value}" for kind, value in seq)


class TerminalDriver(HeadlessDriver):
    """No terminal, but every update is encoded as for one and kept, to check what would reach it."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.written: list[str] = []

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        self.written.append(data)


@dataclass
class Watch:
    """What the fuzzed app did: answers given, changing actions run, worker failures shown."""

    confirmed: dict[tuple[str, str], int] = field(default_factory=dict)
    unconfirmed: list[str] = field(default_factory=list)
    answers: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)  # every notification, in order (toasts expire)

    def problems(self, engine: ScriptedEngine) -> list[str]:
        found = list(self.unconfirmed) + [f"worker failed: {f}" for f in self.failures]
        for screen, result, inputs in self.answers:
            if screen == "ConfirmScreen" and result is True and inputs.get("word") is not None and inputs["word"].strip() != "contract":
                found.append(f"confirmed without the typed word: {inputs!r}")
            if isinstance(result, (BlockedDecision, DrainDecision)) and result.choice in ("override", "stop") and not result.reason.strip():
                found.append(f"{screen} answered {result.choice} with a blank reason")
            if isinstance(result, (BlockedDecision, DrainDecision)) and CONTROL_CHARS.search(result.reason):
                found.append(f"{screen} answered with a reason holding control characters: {result.reason[:60]!r}")
        for override in engine.state.overrides:
            reason = str(override.get("reason", ""))
            if not reason.strip() or CONTROL_CHARS.search(reason):
                found.append(f"journaled override with a blank or raw reason: {override!r}")
        return found


WATCHES: dict[GlanceApp, Watch] = {}


def watch(app: GlanceApp, engine: ScriptedEngine, monkeypatch: pytest.MonkeyPatch) -> Watch:
    """Record every dismissal, confirmation and changing action, and every failed worker."""
    seen = Watch()
    operator = app.operator
    confirm = operator.confirm

    async def counted_confirm(step, action, commands):
        answer = await confirm(step, action, commands)
        if answer:
            key = (step.id, action.id)
            seen.confirmed[key] = seen.confirmed.get(key, 0) + 1
        return answer

    operator.confirm = counted_confirm  # type: ignore[method-assign]
    do = engine._do

    async def checked_do(step, action, op):
        key = (step.id, action.id)
        if action.changes and not engine.dry_run:
            if seen.confirmed.get(key, 0) <= 0:
                seen.unconfirmed.append(f"{key} ran without a confirmation")
            seen.confirmed[key] = seen.confirmed.get(key, 0) - 1
        await do(step, action, op)

    engine._do = checked_do  # type: ignore[method-assign]
    run_step = engine.run_step
    running: list[str] = []

    async def single_run_step(step, op):  # a key repeated faster than the step runs must not start it twice
        if running:
            seen.unconfirmed.append(f"step {step.id} started while {running} still ran")
        running.append(step.id)
        try:
            return await run_step(step, op)
        finally:
            running.remove(step.id)

    engine.run_step = single_run_step  # type: ignore[method-assign]
    dismiss = Screen.dismiss  # what a dialog's answer really goes through (after its own checks)

    def recorded_dismiss(self, result=None):
        if isinstance(self, Dialog):
            inputs = {w.id or "?": w.value for w in self.query(Input)}
            seen.answers.append((type(self).__name__, result, inputs))
        return dismiss(self, result)

    monkeypatch.setattr(Screen, "dismiss", recorded_dismiss)
    failed = app.on_worker_failed

    def recorded_failure(message):
        seen.failures.append(message.text)
        failed(message)

    app.on_worker_failed = recorded_failure  # type: ignore[method-assign]
    notify = app.notify

    def recorded_notify(message, *args, **kw):
        seen.said.append(str(message))
        return notify(message, *args, **kw)

    app.notify = recorded_notify  # type: ignore[method-assign]
    WATCHES[app] = seen
    return seen


async def play(pilot: Any, seq: list[tuple[str, Any]], log: list[tuple[str, Any]], seen: Watch) -> None:
    """Send the events; a paste the focused input refuses must say so on screen."""
    app = pilot.app
    for kind, value in seq:
        if app.return_code is not None:  # q / ctrl+q (and y to the quit question) ended the app: a clean end
            return
        log.append((kind, value))
        if kind == "key":
            await pilot.press(value)
        elif kind == "resize":
            await pilot.resize_terminal(*value)
        else:
            focused = app.focused
            before = focused.value if isinstance(focused, Input) else None
            count = len(seen.said)
            app.post_message(events.Paste(value))
            await pilot.pause()
            if isinstance(focused, Input) and focused.is_mounted and focused.value == before:
                refused = CONTROL_CHARS.search(value) or "\n" in value or len(value) > 1000
                if refused:
                    assert len(seen.said) > count and "paste refused" in seen.said[-1], f"a paste into #{focused.id} was refused without a word: {value[:40]!r}"
        for inp in app.screen.query(Input):
            assert not CONTROL_CHARS.search(inp.value), f"#{inp.id} holds a control character: {inp.value[:60]!r}"


async def back_to_main(pilot: Any, timeout: float = 10.0) -> None:
    """Escape (each dialog's safe answer) until the main screen is on top and idle."""
    app = pilot.app
    for _ in range(40):
        if app.return_code is not None:
            return
        main = app.main
        if main is not None and app.screen is main and not main.busy and not main.continuing:
            return
        if app.screen is not main:
            await pilot.press("escape")
        await pilot.pause(0.05)
    await wait_for(pilot, lambda: app.screen is app.main and not app.main.busy, timeout, what="back on the main screen")


async def still_answers(pilot: Any) -> None:
    """The final key still has its visible effect: ``l`` opens the journal, escape closes it."""
    app = pilot.app
    if app.return_code is not None:
        return
    await back_to_main(pilot)
    if app.return_code is not None:
        return
    await pilot.resize_terminal(100, 30)
    await pilot.press("l")
    await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen), what="the journal after l")
    await pilot.press("escape")
    await wait_for(pilot, lambda: app.screen is app.main, what="the main screen after escape")


# ---------------------------------------------------------------- scenarios: bring the app to one screen

async def at_main(pilot: Any, engine: ScriptedEngine) -> None:
    await ready(pilot)
    engine.emit(Notice("warning", "a node said \x1b]0;owned\x07 and \x1b[2Jcleared"))  # outside text with escapes
    engine.emit(OutputLine("glance-1", "stdout", "\x1b[31mGot error\x1b[0m \u202eevil"))


async def at_main_busy(pilot: Any, engine: ScriptedEngine) -> None:
    main = await ready(pilot)
    engine.gate_delay = 0.6  # every gate check is slow: the step is mid-way while the keys arrive
    await pilot.press("c")
    assert main.continuing or main.busy or "run:preflight" in engine.calls, "c did nothing"


async def at_confirm(pilot: Any, engine: ScriptedEngine) -> None:
    await ready(pilot)
    await drive_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen) and pilot.app.screen.action_.id == "backup")


async def at_confirm_word(pilot: Any, engine: ScriptedEngine) -> None:
    main = await ready(pilot)
    await wait_for(pilot, lambda: main.next_id == "contract" and main.can_continue, what="contract next")
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen) and pilot.app.screen.word == "contract")


def past_backup(engine: ScriptedEngine) -> None:
    """Preflight passed and the backup taken (as a resumed run finds them): the scenario starts at step 2."""
    engine.preflight_ok = True
    engine.state.backup = {"path": "/var/backups/glance/glance.sql"}


async def at_choose_node(pilot: Any, engine: ScriptedEngine) -> None:
    past_backup(engine)
    await ready(pilot)
    await drive_until(pilot, lambda: isinstance(pilot.app.screen, ChooseNodeScreen))


async def at_blocked(pilot: Any, engine: ScriptedEngine, *, hard: bool = False) -> None:
    main = await ready(pilot)
    await drive_until(pilot, lambda: main.next_id == "backup" and main.can_continue)
    engine.gate("db-version", ok=False, reason="scripted soft failure", fix="think twice", soft=True)
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, BlockedScreen))
    await blank_reason_refused(pilot, pilot.app.screen, "reason")
    if hard:
        engine.gate("db-version", ok=False, reason="MariaDB 5.1 is too old", fix="upgrade it")
        pilot.app.screen.query_one("#recheck").focus()  # out of the reason's input: r is the binding again
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, BlockedScreen) and not pilot.app.screen.overridable)


async def blank_reason_refused(pilot: Any, screen: Dialog, field: str) -> None:
    """An empty or whitespace-only reason is refused with a visible line; the dialog stays."""
    app = pilot.app
    said = WATCHES[app].said
    for blank in ("", "   "):
        screen.query_one(f"#{field}", Input).value = ""
        screen.query_one(f"#{field}", Input).focus()
        count = len(said)
        await pilot.press(*blank, "enter")
        await pilot.pause(0.05)
        assert app.screen is screen, f"a reason of {blank!r} was taken"
        assert len(said) > count and "reason" in said[-1], f"a reason of {blank!r} was refused silently"


async def at_blocked_hard(pilot: Any, engine: ScriptedEngine) -> None:
    await at_blocked(pilot, engine, hard=True)


async def at_drain_timeout(pilot: Any, engine: ScriptedEngine) -> None:
    engine.drain_script = [5, 4, 4, 3]
    past_backup(engine)
    await ready(pilot)
    await drive_until(pilot, lambda: isinstance(pilot.app.screen, DrainTimeoutScreen))
    screen = pilot.app.screen
    await pilot.press("s", *"stop", "enter")  # the stop form: the word, then the reason
    await blank_reason_refused(pilot, screen, "reason")


async def at_failure(pilot: Any, engine: ScriptedEngine) -> None:
    engine.fail_once[("backup", "backup")] = ("backup failed: mysqldump exited 2", ["mysqldump: \x1b[31mGot error\x1b[0m: 2002"])
    await ready(pilot)
    await drive_until(pilot, lambda: isinstance(pilot.app.screen, FailureScreen))


async def at_message(pilot: Any, engine: ScriptedEngine) -> None:
    main = await ready(pilot)
    run_step = engine.run_step
    calls = 0

    async def refusing(step, operator):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise GlanceTuiError("the journal directory is full — fix: free some space")
        return await run_step(step, operator)

    engine.run_step = refusing  # type: ignore[method-assign]
    await wait_for(pilot, lambda: main.can_continue)
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, MessageScreen))


async def at_quit(pilot: Any, engine: ScriptedEngine) -> None:
    await at_confirm(pilot, engine)
    await pilot.press("ctrl+q")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, QuitScreen))


async def at_summary(pilot: Any, engine: ScriptedEngine) -> None:
    await at_drain_timeout(pilot, engine)
    await pilot.press("escape")  # put back in rotation and abort: the run's summary
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SummaryScreen))


async def at_journal(pilot: Any, engine: ScriptedEngine) -> None:
    await ready(pilot)
    await pilot.press("l")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, JournalScreen))


async def at_remedy(pilot: Any, engine: ScriptedEngine) -> None:
    """The engine offers to fix a failing gate itself (binlog): the question is the operator's."""
    await ready(pilot)

    async def never(ctx: Any) -> None:  # the fuzz answers; nothing is applied here
        return None

    result = GateResult("binlog", "Binary logging allows the migrations", False, "log_bin=ON, log_bin_trust_function_creators=OFF",
                        "set it to 1 for the upgrade", remedy=Remedy("allow trigger creation for the upgrade",
                                                                     "SET GLOBAL log_bin_trust_function_creators = 1", never))
    pilot.app.run_worker(pilot.app.operator.offer_remedy(result), group="remedy", exit_on_error=False)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RemedyScreen))


async def at_resume(pilot: Any, engine: ScriptedEngine) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ResumeScreen))


Scenario = Callable[[Any, ScriptedEngine], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {
    "main": at_main, "main-busy": at_main_busy, "confirm": at_confirm, "confirm-word": at_confirm_word,
    "choose-node": at_choose_node, "blocked-soft": at_blocked, "blocked-hard": at_blocked_hard,
    "drain-timeout": at_drain_timeout, "failure": at_failure, "message": at_message, "quit": at_quit,
    "summary": at_summary, "journal": at_journal, "remedy": at_remedy, "resume": at_resume,
}


def at_contract(tmp: Path) -> tuple[GlanceApp, ScriptedEngine]:
    """Every step before contract done (the node loop included): contract, with its typed word, is next."""
    config = scripted_config(tmp)
    engine = ScriptedEngine(config, tmp / "journal", clock=lambda: FROZEN,
                            state=RunState(new_node="glance-1", backup={"path": "/var/backups/glance/glance.sql"}))
    engine.preflight_ok, engine.db_code = True, 5
    for name in engine.sim:
        engine.upgrade(name)
    app = GlanceApp(engine, config=config, multiplexer=True, clock=lambda: FROZEN, gate_interval=0.2)
    return app, engine


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_fuzzed_keys_pastes_and_resizes(tmp_path, monkeypatch, scenario):
    seed = SEED + sum(map(ord, scenario))  # one stable seed per scenario
    rng = random.Random(seed)
    seq = random_sequence(rng, EVENTS)
    app, engine = at_contract(tmp_path) if scenario == "confirm-word" else make(tmp_path)
    if scenario == "resume":  # an unfinished run was found: resume or start anew (the same scripted cluster)
        app = GlanceApp(lambda resume: engine, config=engine.config, pending=True, multiplexer=True, clock=lambda: FROZEN, gate_interval=0.2)
    seen = watch(app, engine, monkeypatch)
    app.driver_class = TerminalDriver
    sent: list[tuple[str, Any]] = []
    size = rng.choice(SIZES[2:])
    try:
        async with app.run_test(headless=False, size=size) as pilot:
            driver = app._driver  # kept: an app that q ended has none any more
            assert isinstance(driver, TerminalDriver)
            await SCENARIOS[scenario](pilot, engine)
            if scenario != "main-busy":
                engine.gate_delay = 0.0
            await play(pilot, seq, sent, seen)
            engine.gate_delay = 0.0
            engine.failing.clear()
            await still_answers(pilot)
        written = "".join(driver.written)
    except BaseException as exc:
        raise AssertionError(f"{scenario}: TUI_FUZZ_SEED={SEED} (scenario seed {seed}) size {size}: "
                             f"{type(exc).__name__}: {exc}\nsequence: {shown(sent)}") from exc
    context = f"{scenario}: TUI_FUZZ_SEED={SEED} (scenario seed {seed}) size {size}\nsequence: {shown(sent)}"
    assert app._exception is None, f"the app failed: {app._exception!r}\n{context}"
    assert app.return_code in (None, 0), f"exit {app.return_code}\n{context}"
    assert not seen.problems(engine), f"{seen.problems(engine)}\n{context}"
    assert written, "the terminal driver saw no output"
    raw = [r for r in RAW if r in written]
    assert not raw, f"outside text reached the terminal raw: {raw}\n{context}"
    WATCHES.pop(app, None)


# ---------------------------------------------------------------- the classes the fuzzing found, pinned

async def test_every_step_can_be_selected_before_the_new_node_is_chosen(tmp_path):
    """The database steps' previews needed the NEW NODE's kind (a KeyError ended the app)."""
    app, engine = make(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        main = await ready(pilot)
        for _ in engine.plan.steps:
            await pilot.press("down")
        await pilot.press("end")
        await wait_for(pilot, lambda: "NEW NODE (chosen at step 2" in str(main.query_one("#step-detail").render()), what="contract's panel")
    assert app._exception is None and app.return_code in (None, 0)


async def test_a_dialog_answers_once_and_only_while_on_top(tmp_path, monkeypatch):
    """Two presses queued before the dialog closed, or one on a dialog covered by another, must
    not pop the screen above or below it (the main screen, or a question still awaited)."""
    app, engine = make(tmp_path)
    seen = watch(app, engine, monkeypatch)
    async with app.run_test(size=(100, 30)) as pilot:
        await at_confirm(pilot, engine)
        confirm = app.screen
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen))
        confirm.query_one("#yes").press()  # under the quit question: ignored
        await pilot.pause(0.1)
        assert isinstance(app.screen, QuitScreen) and engine.state.backup is None
        await pilot.press("n")  # stay
        await wait_for(pilot, lambda: app.screen is confirm)
        confirm.query_one("#yes").press()
        confirm.query_one("#yes").press()  # queued before the first answer closed it
        await wait_for(pilot, lambda: engine.state.backup is not None, what="the backup to run once")
        await pilot.pause(0.2)
        assert app.main in app.screen_stack, f"the main screen was popped: {app.screen_stack}"
        assert [a for a in seen.answers if a[0] == "ConfirmScreen"] == [("ConfirmScreen", True, {})]
        await still_answers(pilot)
    assert not seen.problems(engine)
    WATCHES.pop(app, None)


async def test_lists_survive_a_terminal_narrower_than_their_padding(tmp_path):
    """An option list given no width for its text made Textual's wrap divide by zero (the app
    ended): the NEW NODE choice and the command palette, at sizes an operator's split pane reaches."""
    app, engine = make(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await at_choose_node(pilot, engine)
        for size in ((12, 4), (1, 1)):
            await pilot.resize_terminal(*size)
            await pilot.press("down")
        await pilot.press("ctrl+p")
        await pilot.resize_terminal(12, 4)
        await pilot.press("escape")
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: isinstance(app.screen, ChooseNodeScreen), what="the NEW NODE choice again")
    assert app._exception is None


@pytest.mark.parametrize("cut", range(1, 40, 2))
def test_a_pasted_escape_never_wedges_the_terminals_input_parser(cut):
    """In a real terminal an ESC inside a bracketed paste made Textual's parser take the paste's
    escape sequence as keys and miss its end: escape and the arrows stopped working. Split at any
    point across reads, the paste arrives whole (its ESC as ␛, then refused) and keys work after it."""
    from textual.events import Key, Paste

    from screens.terminal_safe import PasteSafeParser, paste_problem

    stream = "a\x1b[200~\x1b]2;owned\x07title\x1b[201~\x1b[A"
    parser = PasteSafeParser()
    events_ = [e for chunk in (stream[:cut], stream[cut:]) if chunk for e in parser.feed(chunk)]
    pastes = [e.text for e in events_ if isinstance(e, Paste)]
    keys = [e.key for e in events_ if isinstance(e, Key)]
    assert pastes == ["␛]2;owned\x07title"] and keys == ["a", "up"], f"cut at {cut}: {events_}"
    assert paste_problem(pastes[0]) is not None
    one_by_one = PasteSafeParser()  # every character its own read
    events_ = [e for char in stream for e in one_by_one.feed(char)]
    assert [e.text for e in events_ if isinstance(e, Paste)] == pastes and [e.key for e in events_ if isinstance(e, Key)] == keys


async def test_q_on_an_idle_main_screen_ends_the_fuzzed_app_cleanly(tmp_path, monkeypatch):
    """A sequence that quits ends there: exit 0, the engine closed, nothing raw written."""
    app, engine = make(tmp_path)
    seen = watch(app, engine, monkeypatch)
    app.driver_class = TerminalDriver
    sent: list[tuple[str, Any]] = []
    async with app.run_test(headless=False, size=(80, 24)) as pilot:
        driver = app._driver
        await at_main(pilot, engine)
        await play(pilot, [("key", "q"), ("key", "c"), ("paste", PASTES[2])], sent, seen)
        await still_answers(pilot)
    assert app.return_code == 0 and engine.closed and sent[0] == ("key", "q")
    assert not [r for r in RAW if r in "".join(driver.written)] and not seen.problems(engine)
    WATCHES.pop(app, None)
