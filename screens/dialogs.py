"""Modal screens for every decision the engine hands to the operator.

Each one shows exactly what will happen (command, node) and is answerable with the keyboard
alone; anything irreversible or overriding a gate needs a typed word, not a single key.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult, ScreenStackError
from textual.await_complete import AwaitComplete
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from glance_tui.api import Action, BlockedDecision, DrainDecision, FailureDecision, GateResult, Step
from screens.terminal_safe import escaped_lines

T = TypeVar("T")


def gate_lines(results: list[GateResult]) -> Text:
    """Gate results as text: PASS/FAIL words (never colour alone), reason and fix."""
    text = Text()
    for r in sorted(results, key=lambda r: r.ok):  # failures first: they are what the operator must act on
        word = "PASS" if r.ok else ("FAIL (soft)" if r.soft else "FAIL")
        text.append(f"{'✔' if r.ok else '✖'} {word} ", style="green" if r.ok else ("yellow" if r.soft else "bold red"))
        text.append(r.title or r.gate)
        if r.reason:
            text.append(f" — {r.reason}", style="dim" if r.ok else "")
        if not r.ok and r.fix:
            text.append(f"\n    fix: {r.fix}", style="italic")
        text.append("\n")
    text.rstrip()
    return text


class Dialog(ModalScreen[T], Generic[T]):
    """A titled modal with a body and a row of buttons; escape means the safe answer."""

    BINDINGS = [Binding("escape", "safe", "Cancel", show=True)]
    AUTO_FOCUS = "Input, OptionList, #dialog-buttons Button"
    title_text = ""
    safe_answer: Any = None
    answered = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="dialog-title", markup=False)  # titles carry node and gate names
            with VerticalScroll(id="dialog-body"):
                yield from self.body()
            with Horizontal(id="dialog-buttons"):
                yield from self.buttons()

    def body(self) -> ComposeResult:
        yield from ()

    def buttons(self) -> ComposeResult:
        yield from ()

    def action_safe(self) -> None:
        self.dismiss(self.safe_answer)

    def dismiss(self, result: Any = None) -> AwaitComplete:
        """Answer once, and only while on top: a key repeated before the dialog closed, a double
        click or a button press queued under a newer dialog would otherwise pop the screen above or
        below it (the main screen, or a question the engine still waits on)."""
        try:
            on_top = self.app.screen is self
        except ScreenStackError:  # the app is ending
            on_top = False
        if self.answered or not on_top:
            return AwaitComplete.nothing()
        self.answered = True
        return super().dismiss(result)


def _commands(commands: list[str]) -> Static:
    return Static(Text("\n".join(commands) or "(no command)", style="bold"), classes="commands")


class ConfirmScreen(Dialog[bool]):
    """Confirm one changing action; ``action.confirm_word`` must be typed when set (contract)."""

    BINDINGS = [Binding("y", "confirm", "Run it"), Binding("n", "safe", "Do not run")]
    safe_answer = False

    def __init__(self, step: Step, action: Action, commands: list[str], *, dry_run: bool = False, where: str = "") -> None:
        super().__init__()
        self.step, self.action_, self.commands, self.dry_run = step, action, commands, dry_run
        self.word = action.confirm_word
        self.where = where or action.node or step.node or ""
        self.title_text = f"{'DRY RUN — ' if dry_run else ''}Step {step.number}: {action.title}"

    def body(self) -> ComposeResult:
        yield Static(Text(f"On: {self.where or 'see each command'}\nThese exact commands will {'be shown, not run' if self.dry_run else 'run'}:"))
        yield _commands(self.commands)
        if self.word:
            yield Static(Text(f"This cannot be undone. Type {self.word!r} to confirm.", style="bold"))
            yield Input(placeholder=f"type {self.word}", id="word")

    def buttons(self) -> ComposeResult:
        yield Button("Run it (y)" if not self.word else "Confirm (enter)", id="yes", variant="warning")
        yield Button("Do not run (n/esc)" if not self.word else "Do not run (esc)", id="no")  # n types into the word

    def on_mount(self) -> None:
        if self.word:
            self.query_one("#word", Input).focus()

    def action_confirm(self) -> None:
        if self.word:
            typed = self.query_one("#word", Input).value.strip()
            if typed != self.word:
                self.notify(f"type {self.word!r} exactly to confirm", severity="warning", markup=False)
                return
        self.dismiss(True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_confirm() if event.button.id == "yes" else self.dismiss(False)


class ChooseNodeScreen(Dialog["str | None"]):
    """Pick the NEW NODE: the node that gets the new release first."""

    title_text = "Choose the NEW NODE"

    def __init__(self, candidates: list[str], notes: dict[str, str], preselect: str | None = None) -> None:
        super().__init__()
        self.candidates, self.notes, self.preselect = candidates, notes, preselect

    def body(self) -> ComposeResult:
        yield Static(Text("It is drained, stopped and upgraded first; the database is expanded and migrated from it.\nUp/down to choose, enter to select, esc to cancel."))
        yield OptionList(*[Option(Text(f"{n}  {self.notes.get(n, '')}".rstrip()), id=n) for n in self.candidates], id="nodes")  # text, not markup

    def on_mount(self) -> None:
        options = self.query_one("#nodes", OptionList)
        options.focus()
        if self.preselect in self.candidates:
            options.highlighted = self.candidates.index(self.preselect)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class BlockedScreen(Dialog[BlockedDecision]):
    """A gate blocks the step: recheck, abort, or (soft gates only) override with a typed reason."""

    BINDINGS = [Binding("r", "recheck", "Recheck"), Binding("a", "safe", "Abort"), Binding("o", "to_reason", "Override")]
    safe_answer = BlockedDecision("abort")
    # the buttons, not the reason, have the focus: r and a act as the buttons say; o goes to the
    # reason (the rare, journaled path), where letters type and escape still aborts
    AUTO_FOCUS = "#dialog-buttons Button"

    def __init__(self, step: Step, results: list[GateResult]) -> None:
        super().__init__()
        self.step, self.results = step, results
        self.overridable = bool(results) and all(r.soft for r in results)
        self.title_text = f"Step {step.number} is blocked"

    def body(self) -> ComposeResult:
        yield Static(gate_lines(self.results), classes="gates")
        if self.overridable:
            yield Static(Text("Only soft gates fail. To override, press o, type why (it is journaled) and press enter:"))
            yield Input(placeholder="reason for the override", id="reason")
        else:
            yield Static(Text("A hard gate fails: fix the cause, then recheck. It cannot be overridden."))

    def buttons(self) -> ComposeResult:
        yield Button("Recheck (r)", id="recheck", variant="primary")
        if self.overridable:
            yield Button("Override (o)", id="override", variant="error")
        yield Button("Abort (a/esc)", id="abort")

    def action_recheck(self) -> None:
        self.dismiss(BlockedDecision("recheck"))

    def action_to_reason(self) -> None:
        if self.overridable:
            self.query_one("#reason", Input).focus()

    def _override(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.notify("type a reason to override", severity="warning")
            self.query_one("#reason", Input).focus()
            return
        self.dismiss(BlockedDecision("override", reason))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._override()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"recheck": self.action_recheck, "override": self._override, "abort": self.action_safe}[event.button.id or "abort"]()


class RemedyScreen(Dialog[bool]):
    """The engine can fix a failing gate itself: show the command and ask."""

    BINDINGS = [Binding("y", "yes", "Apply"), Binding("n", "safe", "No")]
    safe_answer = False

    def __init__(self, result: GateResult) -> None:
        super().__init__()
        self.result = result
        self.title_text = f"Fix “{result.title or result.gate}”?"

    def body(self) -> ComposeResult:
        yield Static(gate_lines([self.result]))
        remedy = self.result.remedy
        yield Static(Text(f"The assistant can apply: {remedy.title if remedy else ''}"))
        yield _commands([remedy.command] if remedy else [])

    def buttons(self) -> ComposeResult:
        yield Button("Apply (y)", id="yes", variant="warning")
        yield Button("No (n/esc)", id="no")

    def action_yes(self) -> None:
        self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class DrainTimeoutScreen(Dialog[DrainDecision]):
    """The drain timeout passed with requests in flight: wait, stop anyway, or put back and abort."""

    BINDINGS = [Binding("w", "wait", "Keep waiting"), Binding("s", "stop", "Stop anyway"), Binding("a", "safe", "Back in rotation, abort")]
    safe_answer = DrainDecision("abort")
    AUTO_FOCUS = "#dialog-buttons Button"  # the stop form is hidden until s

    def __init__(self, node: str, in_flight: int, waited: float, work: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.node, self.in_flight, self.waited, self.work = node, in_flight, waited, work
        self.title_text = f"Drain of {node} timed out"

    def body(self) -> ComposeResult:
        work = "".join(f"  {line}\n" for line in self.work[:8]) + (f"  … and {len(self.work) - 8} more\n" if len(self.work) > 8 else "")
        yield Static(Text(f"{self.node} still has {self.in_flight} request(s) in flight after {self.waited:.0f}s.\n{work}"
                          "w: keep waiting another timeout period\n"
                          "s: stop anyway — those requests and imports WILL FAIL (type 'stop' and a reason)\n"
                          "a/esc: put the node back into rotation and abort the step"))
        with Vertical(id="stop-form", classes="hidden"):
            yield Input(placeholder="type stop", id="word")
            yield Input(placeholder="reason (journaled)", id="reason")

    def buttons(self) -> ComposeResult:
        yield Button("Keep waiting (w)", id="wait", variant="primary")
        yield Button("Stop anyway (s)", id="stop", variant="error")
        yield Button("Back in rotation, abort (a)", id="abort")

    def action_wait(self) -> None:
        self.dismiss(DrainDecision("wait"))

    def action_stop(self) -> None:
        form = self.query_one("#stop-form")
        if form.has_class("hidden"):
            form.remove_class("hidden")
            self.query_one("#word", Input).focus()
            # from now on letters type into the form: the buttons advertise only what still works
            self.query_one("#wait", Button).label = "Keep waiting"
            self.query_one("#abort", Button).label = "Back in rotation, abort (esc)"
            return
        word = self.query_one("#word", Input).value.strip()
        reason = self.query_one("#reason", Input).value.strip()
        if word != "stop" or not reason:
            self.notify("type 'stop' and a reason to stop with requests in flight", severity="warning")
            return
        self.dismiss(DrainDecision("stop", reason))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "word":
            self.query_one("#reason", Input).focus()
        else:
            self.action_stop()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"wait": self.action_wait, "stop": self.action_stop, "abort": self.action_safe}[event.button.id or "abort"]()


class FailureScreen(Dialog[FailureDecision]):
    """An action failed: its output, and the choices that make sense now."""

    BINDINGS = [Binding("r", "retry", "Retry"), Binding("b", "rollback", "Roll back node"), Binding("a", "safe", "Abort safely")]
    safe_answer = FailureDecision("abort")

    def __init__(self, step: Step, action: Action, error: str, output: list[str], can_rollback: bool) -> None:
        super().__init__()
        self.step, self.action_, self.error, self.output, self.can_rollback = step, action, error, output, can_rollback
        self.title_text = f"FAILED — step {step.number}: {action.title}"

    def body(self) -> ComposeResult:
        yield Static(Text(escaped_lines(self.error), style="bold"), id="failure-error")
        output = "\n".join(escaped_lines(line) for line in self.output)  # a node's output: its escape sequences shown, not obeyed
        yield Static(Text("Output (last lines):\n" + (output or "(no output)")), classes="commands", id="failure-output")
        choices = "r: retry the action\n"
        if self.can_rollback:
            choices += f"b: roll {self.action_.node} back to the old release and into rotation\n"
        choices += "a/esc: abort safely (the step stays failed; nothing else changes)"
        yield Static(Text(choices))

    def buttons(self) -> ComposeResult:
        yield Button("Retry (r)", id="retry", variant="primary")
        if self.can_rollback:
            yield Button("Roll back node (b)", id="rollback", variant="warning")
        yield Button("Abort safely (a)", id="abort")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.can_rollback if action == "rollback" else True

    def action_retry(self) -> None:
        self.dismiss(FailureDecision("retry"))

    def action_rollback(self) -> None:
        self.dismiss(FailureDecision("rollback"))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(FailureDecision(event.button.id or "abort"))  # type: ignore[arg-type]


class ResumeScreen(Dialog[str]):
    """An unfinished run exists: show where it stands (re-probed), resume or start new."""

    BINDINGS = [Binding("r", "resume", "Resume"), Binding("n", "new", "Start a new run")]
    title_text = "An unfinished upgrade run was found"
    safe_answer = "resume"

    def __init__(self, summary: Text) -> None:
        super().__init__()
        self.summary = summary

    def body(self) -> ComposeResult:
        yield Static(self.summary, id="resume-summary")

    def buttons(self) -> ComposeResult:
        yield Button("Resume (r)", id="resume", variant="primary")
        yield Button("Start a new run (n)", id="new")

    def action_resume(self) -> None:
        self.dismiss("resume")

    def action_new(self) -> None:
        self.dismiss("new")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "resume")


class QuitScreen(Dialog[bool]):
    """Quitting mid-step: say what is running and what state the cluster is left in."""

    BINDINGS = [Binding("y", "yes", "Quit anyway"), Binding("n", "safe", "Stay")]
    title_text = "A step is running — quit anyway?"
    safe_answer = False

    def __init__(self, explanation: Text) -> None:
        super().__init__()
        self.explanation = explanation

    def body(self) -> ComposeResult:
        yield Static(self.explanation, id="quit-explanation")

    def buttons(self) -> ComposeResult:
        yield Button("Quit anyway (y)", id="yes", variant="error")
        yield Button("Stay (n/esc)", id="no", variant="primary")

    def action_yes(self) -> None:
        self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class MessageScreen(Dialog[None]):
    """An error or explanation the operator must read (harlequin style: errors in modals)."""

    BINDINGS = [Binding("enter", "safe", "Close")]

    def __init__(self, title: str, text: Text | str) -> None:
        super().__init__()
        self.title_text, self.text = title, text if isinstance(text, Text) else Text(text)

    def body(self) -> ComposeResult:
        yield Static(self.text, id="message-text")

    def buttons(self) -> ComposeResult:
        yield Button("Close (esc)", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)
