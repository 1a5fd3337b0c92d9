"""The engine's public API: everything the UI (``screens/``) may use, and nothing else.

Keeping the UI on this surface lets the engine change inside without breaking the screens,
and lets the UI tests drive a scripted engine with the same shapes.
"""

from typing import Callable, Protocol, runtime_checkable

from glance_tui.adapters.haproxy import ServerStats
from glance_tui.config import Config, load_config
from glance_tui.context import RunState
from glance_tui.crash import bug_line
from glance_tui.engine import Engine, Outcome
from glance_tui.errors import ConfigError, GlanceTuiError, one_line
from glance_tui.terminal import require_terminal
from glance_tui.events import (
    BLOCKED, DONE, FAILED, PENDING, READY, RUNNING, SKIPPED, STEP_STATES,
    ActionFinished, ActionStarted, DrainProgress, Event, GatesEvaluated, Notice, OutputLine, PlanChanged,
    RunFinished, StepChanged,
)
from glance_tui.gate_types import GateResult, Remedy
from glance_tui.journal import Journal, JournalProblem, JournalWriteFailed, read_records
from glance_tui.operator import BlockedDecision, DrainDecision, FailureDecision, Operator, Unattended
from glance_tui.plan import Action, Plan, Step
from glance_tui.probes import DB_CHECK_MEANING, Cluster, DBState, DbCheck, LBFacts, NodeFacts, Snapshot
from glance_tui.record.aftermath import RunEnd, run_end
from glance_tui.record.render import write_report
from glance_tui.secrets import redact
from glance_tui.statedir import StateDirProblem



class ClusterView(Protocol):
    """The read-only probes the screens poll themselves (the LB and the database panels)."""

    async def probe_lb(self) -> LBFacts: ...

    async def probe_db(self) -> DBState: ...


@runtime_checkable
class EngineView(Protocol):
    """What the screens use of an engine: :class:`Engine`, and the UI tests' scripted engine."""

    plan: Plan
    states: dict[str, str]
    state: RunState
    journal: Journal
    cluster: ClusterView

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]: ...

    def role_of(self, node: str) -> str: ...

    async def node_facts(self, max_age: float = 0.0) -> dict[str, NodeFacts]: ...

    async def db_check(self) -> DbCheck | None: ...

    async def evaluate(self, step: Step, action: Action | None = None, *, max_age: float = 0.0) -> list[GateResult]: ...

    async def next_step(self) -> Step | None: ...

    async def reconcile(self) -> Step | None: ...

    def preview(self, step: Step) -> list[tuple[Action, list[str]]]: ...

    async def run_step(self, step: Step, operator: Operator) -> str: ...

    async def conclude(self, ok: bool, detail: str) -> bool: ...

    async def close(self) -> None: ...


__all__ = [
    "require_terminal",
    "Action", "ActionFinished", "ActionStarted", "BLOCKED", "BlockedDecision", "Cluster", "Config", "ConfigError",
    "ClusterView", "DB_CHECK_MEANING", "DBState", "DONE", "DbCheck", "DrainDecision", "DrainProgress", "Engine", "EngineView", "Event", "FAILED",
    "FailureDecision", "GateResult", "GatesEvaluated", "GlanceTuiError", "Journal", "JournalProblem", "JournalWriteFailed", "LBFacts", "NodeFacts", "Notice",
    "Operator", "Outcome", "OutputLine", "PENDING", "Plan", "PlanChanged", "READY", "RUNNING", "Remedy", "RunFinished",
    "RunEnd", "RunState", "SKIPPED", "STEP_STATES", "ServerStats", "StateDirProblem", "Snapshot", "Step", "StepChanged", "Unattended", "bug_line",
    "load_config", "one_line", "read_records", "redact", "run_end", "write_report",
]

from glance_tui.entry import INTERRUPTED  # noqa: E402 - the one line for Ctrl-C, in the TUI too

__all__ += ["INTERRUPTED"]
