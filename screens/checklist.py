"""The guide's procedure as a checklist, and the panel that explains the selected step.

Each row shows a state word with a symbol (never colour alone). The per-node loop of step 7
appears node by node once the NEW NODE is chosen (the engine sends ``PlanChanged``). Rows carry
short titles that fit 80 columns (plus the node when wide); the detail panel has the full title.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from glance_tui.api import BLOCKED, DONE, FAILED, PENDING, READY, RUNNING, SKIPPED, Action, GateResult, Plan, Step
from screens.table import InPlaceTable

SYMBOL = {PENDING: "·", BLOCKED: "⊘", READY: "○", RUNNING: "▶", DONE: "✔", FAILED: "✖", SKIPPED: "↷"}
STYLE = {BLOCKED: "yellow", READY: "cyan", RUNNING: "bold magenta", DONE: "green", FAILED: "bold red", SKIPPED: "dim"}
LOOP_PLACEHOLDER = "node:*"
SHORT = {"preflight": "Preflight checks", "backup": "Back up the database", "new-node": "Drain, stop NEW NODE",
         "upgrade-new": "Upgrade NEW NODE", "expand": "Expand the database", "migrate": "Migrate the data",
         "start-new": "Start NEW NODE", "contract": "Contract the database"}


def list_title(step: Step, wide: bool) -> str:
    """The checklist row's title: short enough for 80 columns; the node too when wide."""
    short = SHORT.get(step.id)
    if short is None:
        title = step.title
    else:
        title = f"{short} ({step.node})" if wide and step.node and step.node not in short else short
    return f"{' ' if step.group else ''}{step.number} {title}"


def state_cell(state: str) -> Text:
    return Text(f"{SYMBOL.get(state, '?')} {state}", style=STYLE.get(state, ""))


def shown_state(step_id: str, state: str, next_id: str | None, gates: list[GateResult] | None) -> str:
    """The engine's state, sharpened for the next step by the latest live gate results."""
    if step_id == next_id and state in (PENDING, READY, BLOCKED) and gates is not None:
        return BLOCKED if any(not r.ok and not r.soft for r in gates) else READY
    return state


class Checklist(InPlaceTable):
    """Rows keyed by step id; states updated in place, rebuilt (cursor kept) on a new plan."""

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", **kw)
        self._states: dict[str, str] = {}
        self._titles: dict[str, str] = {}
        self._steps: dict[str, Step] = {}
        self.wide = False

    def on_mount(self) -> None:
        self.add_column("State", key="state", width=9)
        self.add_column("Step", key="title")

    def load(self, plan: Plan, states: dict[str, str]) -> None:
        selected = self.selected_id
        self.clear()
        self._states, self._titles, self._steps = {}, {}, {s.id: s for s in plan.steps}
        has_loop = any(s.group == "7" for s in plan.steps)
        for step in plan.steps:
            if step.id == "contract" and not has_loop:
                self.add_row(state_cell(PENDING), "7 Upgrade other nodes", key=LOOP_PLACEHOLDER)
            state = states.get(step.id, PENDING)
            self._states[step.id] = state
            self._titles[step.id] = list_title(step, self.wide)
            self.add_row(state_cell(state), self._titles[step.id], key=step.id)
        if selected is not None:
            self.select(selected)

    def set_wide(self, wide: bool) -> None:
        """Titles with or without the node, changed in place (the cursor stays)."""
        self.wide = wide
        for step_id, step in self._steps.items():
            title = list_title(step, wide)
            if title != self._titles[step_id]:
                self.update_cell(step_id, "title", title, update_width=True)
                self._titles[step_id] = title

    def set_state(self, step_id: str, state: str) -> None:
        old = self._states.get(step_id)
        if old is not None and old != state:
            self._states[step_id] = state
            self.put(step_id, "state", state_cell(state), state_cell(old))

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
