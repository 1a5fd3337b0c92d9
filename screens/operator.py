"""The engine's Operator answered with modal screens.

Each question pushes a modal and awaits its dismissal through a future, so it works from
any task on the app's loop (the engine calls it from the step worker).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from glance_tui.api import Action, BlockedDecision, Config, DrainDecision, FailureDecision, GateResult, Step
from screens.dialogs import BlockedScreen, ChooseNodeScreen, ConfirmScreen, DrainTimeoutScreen, FailureScreen, RemedyScreen

if TYPE_CHECKING:  # pragma: no cover
    from textual.app import App
    from textual.screen import Screen


class TuiOperator:
    """Implements ``glance_tui.api.Operator`` for the TUI."""

    def __init__(self, app: "App", *, dry_run: bool = False) -> None:
        self.app = app
        self.dry_run = dry_run

    async def ask(self, screen: "Screen[Any]") -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(result: Any) -> None:
            if not future.done():
                future.set_result(result)

        self.app.push_screen(screen, callback=done)
        return await future

    async def choose_new_node(self, candidates: list[str], config: Config) -> str | None:
        notes = {n.name: ("(provisioned as new)" if n.role == "new" else f"{n.ssh_host}") for n in config.nodes}
        return await self.ask(ChooseNodeScreen(candidates, notes, config.policy.new_node))

    async def confirm(self, step: Step, action: Action, commands: list[str]) -> bool:
        return bool(await self.ask(ConfirmScreen(step, action, commands, dry_run=self.dry_run)))

    async def blocked(self, step: Step, results: list[GateResult]) -> BlockedDecision:
        return await self.ask(BlockedScreen(step, results))

    async def offer_remedy(self, result: GateResult) -> bool:
        return bool(await self.ask(RemedyScreen(result)))

    async def drain_timeout(self, node: str, in_flight: int, waited: float, work: tuple[str, ...] = ()) -> DrainDecision:
        return await self.ask(DrainTimeoutScreen(node, in_flight, waited, work))

    async def action_failed(self, step: Step, action: Action, error: str, output: list[str], can_rollback: bool) -> FailureDecision:
        return await self.ask(FailureScreen(step, action, error, output, can_rollback))
