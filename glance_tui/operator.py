"""The operator's side of the conversation: decisions the engine cannot make alone.

The TUI answers these with modal screens; :class:`Unattended` answers them for
``run --yes`` (and the staging rehearsal): it confirms actions, applies offered remedies, and
lets soft gates FAIL instead of overriding them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.config import Config
    from glance_tui.gate_types import GateResult
    from glance_tui.plan import Action, Step


@dataclass(frozen=True)
class DrainDecision:
    choice: Literal["wait", "stop", "abort"]
    reason: str = ""  # required (typed by the operator) for "stop": it is an override


@dataclass(frozen=True)
class FailureDecision:
    choice: Literal["retry", "rollback", "abort"]


@dataclass(frozen=True)
class BlockedDecision:
    choice: Literal["recheck", "override", "abort"]
    reason: str = ""  # required for "override" (soft gates only)


class Operator(Protocol):
    async def choose_new_node(self, candidates: list[str], config: "Config") -> str | None: ...

    async def confirm(self, step: "Step", action: "Action", commands: list[str]) -> bool: ...

    async def blocked(self, step: "Step", results: list["GateResult"]) -> BlockedDecision: ...

    async def offer_remedy(self, result: "GateResult") -> bool: ...

    async def drain_timeout(self, node: str, in_flight: int, waited: float, work: tuple[str, ...] = ()) -> DrainDecision: ...

    async def action_failed(self, step: "Step", action: "Action", error: str, output: list[str], can_rollback: bool) -> FailureDecision: ...


class Unattended:
    """Answers for ``run --yes``: proceed when safe, fail otherwise, never override."""

    def __init__(self, new_node: str | None = None) -> None:
        self.new_node = new_node

    async def choose_new_node(self, candidates: list[str], config: "Config") -> str | None:
        wanted = self.new_node or config.policy.new_node
        if wanted:
            return wanted if wanted in candidates else None
        return candidates[0] if candidates else None

    async def confirm(self, step: "Step", action: "Action", commands: list[str]) -> bool:
        return True

    async def blocked(self, step: "Step", results: list["GateResult"]) -> BlockedDecision:
        return BlockedDecision("abort")

    async def offer_remedy(self, result: "GateResult") -> bool:
        return True

    async def drain_timeout(self, node: str, in_flight: int, waited: float, work: tuple[str, ...] = ()) -> DrainDecision:
        return DrainDecision("abort")

    async def action_failed(self, step: "Step", action: "Action", error: str, output: list[str], can_rollback: bool) -> FailureDecision:
        return FailureDecision("abort")
