"""The guide's procedure as a checklist, and the panel that explains the selected step.

Each row shows a state word with a symbol (never colour alone). The per-node loop of step 7
appears node by node once the NEW NODE is chosen (the engine sends ``PlanChanged``).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable, Static

from glance_tui.api import BLOCKED, DONE, FAILED, PENDING, READY, RUNNING, SKIPPED, Action, GateResult, Plan, Step

SYMBOL = {PENDING: "·", BLOCKED: "⊘", READY: "○", RUNNING: "▶", DONE: "✔", FAILED: "✖", SKIPPED: "↷"}
STYLE = {BLOCKED: "yellow", READY: "cyan", RUNNING: "bold magenta", DONE: "green", FAILED: "bold red", SKIPPED: "dim"}
LOOP_PLACEHOLDER = "node:*"


def state_cell(state: str) -> Text:
    return Text(f"{SYMBOL.get(state, '?')} {state}", style=STYLE.get(state, ""))


def shown_state(step_id: str, state: str, next_id: str | None, gates: list[GateResult] | None) -> str:
    """The engine's state, sharpened for the next step by the latest live gate results."""
    if step_id == next_id and state in (PENDING, READY, BLOCKED) and gates is not None:
        return BLOCKED if any(not r.ok and not r.soft for r in gates) else READY
    return state


class Checklist(DataTable):
    """Rows keyed by step id; states updated in place, rebuilt (cursor kept) on a new plan."""

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", **kw)
        self._states: dict[str, str] = {}

    def on_mount(self) -> None:
        self.add_column("State", key="state", width=9)
        self.add_column("Step", key="title")

    def load(self, plan: Plan, states: dict[str, str]) -> None:
        selected = self.selected_id
        self.clear()
        self._states = {}
        has_loop = any(s.group == "7" for s in plan.steps)
        for step in plan.steps:
            if step.id == "contract" and not has_loop:
                self.add_row(state_cell(PENDING), "7 Upgrade each other node (after step 2)", key=LOOP_PLACEHOLDER)
            state = states.get(step.id, PENDING)
            self._states[step.id] = state
            self.add_row(state_cell(state), f"{' ' if step.group else ''}{step.number} {step.title}", key=step.id)
        if selected is not None:
            self.select(selected)

    def set_state(self, step_id: str, state: str) -> None:
        if step_id in self._states and self._states[step_id] != state:
            self._states[step_id] = state
            self.update_cell(step_id, "state", state_cell(state))

    def state_of(self, step_id: str) -> str:
        return self._states.get(step_id, "")

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None

    def select(self, step_id: str) -> None:
        try:
            self.move_cursor(row=self.get_row_index(step_id), animate=False)
        except Exception:
            pass


def detail_text(step: Step, state: str, gates: list[GateResult] | None, preview: list[tuple[Action, list[str]]], *, dry_run: bool, is_next: bool) -> Text:
    """What the step does and why, its gates (reason + fix), and the exact commands."""
    from screens.dialogs import gate_lines

    text = Text()
    text.append(f"Step {step.number} · {step.title}  ", style="bold")
    text.append_text(state_cell(state))
    if is_next:
        text.append("  (next)", style="bold")
    text.append(f"\n{step.why}\n")
    text.append("\nGates\n", style="bold underline")
    if not step.gates and not any(a.gates for a in step.actions):
        text.append("(none)\n")
    elif gates is None:
        text.append("checking…\n")
    else:
        text.append_text(gate_lines(gates))
        text.append("\n")
    text.append(f"\nCommands{' (dry run: shown, not run)' if dry_run else ''}\n", style="bold underline")
    if not preview:
        text.append("(none: this step only decides or checks)\n" if step.id != "new-node" else "(chosen first; then drain, wait, stop)\n")
    for action, commands in preview:
        flag = "changes" if action.changes else "reads"
        text.append(f"{action.title}  [{flag}{', type ' + repr(action.confirm_word) if action.confirm_word else ''}]\n")
        for cmd in commands:
            text.append(f"  {cmd}\n", style="bold")
    text.rstrip()
    return text


class StepDetail(Static):
    """Redraws only when the rendered text changes (over SSH, every repaint costs)."""

    _shown = ""

    def show(self, text: Text) -> None:
        key = text.plain + repr(text.spans)
        if key != self._shown:
            self._shown = key
            self.update(text)
