"""What the engine tells its watchers (the TUI, the headless printer): plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

from glance_tui.gate_types import GateResult
from glance_tui.secrets import redact, redact_value

# Step states shown in the checklist.
PENDING, BLOCKED, READY, RUNNING, DONE, FAILED, SKIPPED = (
    "pending", "blocked", "ready", "running", "done", "failed", "skipped",
)
STEP_STATES = (PENDING, BLOCKED, READY, RUNNING, DONE, FAILED, SKIPPED)


@dataclass(frozen=True)
class StepChanged:
    step_id: str
    state: str
    detail: str = ""


@dataclass(frozen=True)
class GatesEvaluated:
    step_id: str
    results: tuple[GateResult, ...]

    @property
    def blocking(self) -> list[GateResult]:
        return [r for r in self.results if not r.ok]


@dataclass(frozen=True)
class ActionStarted:
    step_id: str
    action_id: str
    title: str
    commands: tuple[str, ...] = ()
    dry_run: bool = False


@dataclass(frozen=True)
class ActionFinished:
    step_id: str
    action_id: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class OutputLine:
    node: str
    stream: str
    line: str


@dataclass(frozen=True)
class DrainProgress:
    """One reading while draining. ``in_flight`` is None when unknown (an instance, backend or
    counter could not be read); ``state`` is the LB state, UNKNOWN/MIXED included."""

    node: str
    in_flight: int | None
    elapsed: float
    timeout: float
    state: str = ""
    parts: str = ""  # "LB 0 · connections 1 · imports 2" (glance_tui.inflight)
    work: tuple[str, ...] = ()  # what each piece of non-LB work is (a connection's peer, an import's image, method, age, size)

    @property
    def in_flight_text(self) -> str:
        return "unknown" if self.in_flight is None else str(self.in_flight)


@dataclass(frozen=True)
class PlanChanged:
    reason: str = ""


@dataclass(frozen=True)
class Notice:
    level: str  # "info" | "warning" | "error"
    text: str


@dataclass(frozen=True)
class RunFinished:
    ok: bool
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


Event = StepChanged | GatesEvaluated | ActionStarted | ActionFinished | OutputLine | DrainProgress | PlanChanged | Notice | RunFinished
Listener = Callable[[Event], None]


def redacted(event: Event) -> Event:
    """``event`` with every string in it redacted: what the watchers (screen, printer) get."""
    changes: dict[str, Any] = {}
    for f in fields(event):
        value = getattr(event, f.name)
        if isinstance(value, str):
            changes[f.name] = redact(value)
        elif isinstance(value, tuple):
            changes[f.name] = tuple(_redacted_item(v) for v in value)
        elif isinstance(value, dict):
            changes[f.name] = redact_value(value)
    return replace(event, **changes)


def _redacted_item(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, GateResult):
        return replace(value, reason=redact(value.reason), fix=redact(value.fix))
    return value
