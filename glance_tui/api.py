"""The engine's public API: everything the UI (``screens/``) may use, and nothing else.

Keeping the UI on this surface lets the engine change inside without breaking the screens,
and lets the UI tests drive a scripted engine with the same shapes.
"""

from glance_tui.adapters.haproxy import ServerStats
from glance_tui.config import Config, load_config
from glance_tui.context import RunState
from glance_tui.crash import bug_line
from glance_tui.engine import Engine, Outcome
from glance_tui.errors import ConfigError, GlanceTuiError
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

__all__ = [
    "Action", "ActionFinished", "ActionStarted", "BLOCKED", "BlockedDecision", "Cluster", "Config", "ConfigError",
    "DB_CHECK_MEANING", "DBState", "DONE", "DbCheck", "DrainDecision", "DrainProgress", "Engine", "Event", "FAILED",
    "FailureDecision", "GateResult", "GatesEvaluated", "GlanceTuiError", "Journal", "JournalProblem", "JournalWriteFailed", "LBFacts", "NodeFacts", "Notice",
    "Operator", "Outcome", "OutputLine", "PENDING", "Plan", "PlanChanged", "READY", "RUNNING", "Remedy", "RunFinished",
    "RunEnd", "RunState", "SKIPPED", "STEP_STATES", "ServerStats", "StateDirProblem", "Snapshot", "Step", "StepChanged", "Unattended", "bug_line",
    "load_config", "read_records", "redact", "run_end", "write_report",
]

from glance_tui.entry import INTERRUPTED  # noqa: E402 - the one line for Ctrl-C, in the TUI too

__all__ += ["INTERRUPTED"]
