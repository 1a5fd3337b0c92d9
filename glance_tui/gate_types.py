"""The shapes gates answer with, in a leaf module.

``events.py`` (and through it the UI) needs ``GateResult`` but not the gate bodies, which
reach into probes, HTTP and the database; keeping the types here keeps that import light.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from glance_tui.errors import GlanceTuiError
from glance_tui.secrets import redact

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.context import Context


@dataclass(frozen=True)
class Remedy:
    """A fix the engine can apply itself, after the operator agrees (e.g. set a DB variable)."""

    title: str
    command: str
    apply: Callable[["Context"], Awaitable[None]]


@dataclass(frozen=True)
class GateResult:
    gate: str
    title: str
    ok: bool
    reason: str = ""
    fix: str = ""
    soft: bool = False
    remedy: Remedy | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "title": self.title, "ok": self.ok, "reason": self.reason, "fix": self.fix, "soft": self.soft}


GateFn = Callable[["Context"], Awaitable[GateResult]]


@dataclass(frozen=True)
class Gate:
    """A precondition. ``forward_only`` gates guard taking capacity away (moving the procedure
    forward); they never hold back starting or readying a node this run took out."""

    id: str
    title: str
    check: GateFn
    soft: bool = False
    forward_only: bool = False

    async def evaluate(self, ctx: "Context") -> GateResult:
        try:
            result = await self.check(ctx)
        except GlanceTuiError as exc:
            result = GateResult(self.id, self.title, False, exc.what, exc.fix)
        except Exception as exc:  # a gate that crashes blocks; it never passes
            result = GateResult(self.id, self.title, False, f"the check itself failed: {exc.__class__.__name__}: {exc}", "report this; the step stays blocked")
        # Every gate line (check, run, the TUI, the journal) comes from here: redacted once, at the source.
        return GateResult(result.gate or self.id, self.title, result.ok, redact(result.reason), redact(result.fix), self.soft, result.remedy)


def ok(gate: str, reason: str = "") -> GateResult:
    return GateResult(gate, "", True, reason)


def fail(gate: str, reason: str, fix: str, remedy: Remedy | None = None) -> GateResult:
    return GateResult(gate, "", False, reason, fix, remedy=remedy)
