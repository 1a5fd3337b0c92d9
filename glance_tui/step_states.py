"""Which state each step is in, and what that makes each node: one bookkeeper for every engine.

The real engine and the UI tests' scripted engine both keep their step states here, so the
node list's "role" column and the checklist cannot drift apart between the product and the
tests (they did: the scripted engine showed "current" where the product showed "pending").
"""

from __future__ import annotations

from typing import Callable, Iterable

from glance_tui.events import DONE, FAILED, PENDING, Event, StepChanged


class StepStates:
    """``states[step_id]`` plus the step being run; every change is emitted as ``StepChanged``."""

    def __init__(self, emit: Callable[[Event], None], step_ids: Iterable[str] = ()) -> None:
        self.emit = emit
        self.states: dict[str, str] = {}
        self.active: str | None = None  # the step being run, if any
        self.add(step_ids)

    def add(self, step_ids: Iterable[str]) -> None:
        """New steps (a rebuilt plan) start pending; known ones keep their state."""
        for step_id in step_ids:
            self.states.setdefault(step_id, PENDING)

    def set(self, step_id: str, state: str, detail: str = "") -> None:
        if self.states.get(step_id) != state:
            self.states[step_id] = state
            self.emit(StepChanged(step_id, state, detail))

    def role_of(self, node: str, new_node: str | None) -> str:
        """The node's role in the run, for the node list: NEW NODE, current, upgraded, pending."""
        if node == new_node:
            return "NEW NODE"
        step_id = f"node:{node}"
        if self.states.get(step_id) == DONE:
            return "upgraded"
        if self.active == step_id or self.states.get(step_id) == FAILED:
            return "current"
        return "pending"
