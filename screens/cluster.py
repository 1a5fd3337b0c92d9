"""The live picture of the cluster: node list, database panel and LB status, with their pollers.

The widget owns its workers and timers (they end with it). Each poll is re-armed only after
the previous one finished, so a slow LB or node never piles up polls; an unreachable LB keeps
the last reading on screen, marked stale. A poll that raises reaches the operator through the
app's failed-worker handler (``screens/failures.py``) and is re-armed all the same.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from glance_tui.api import Config, EngineView, GlanceTuiError, LBFacts
from screens.failures import ReportsFailedWorkers
from screens.nodes import DbPanel, LBStatus, NodeTable, lb_cells, node_cells, verdict_is_stale


class ClusterView(ReportsFailedWorkers, Vertical):
    """Nodes (LB state, in-flight, release, service, role), the database and the LB's freshness."""

    def __init__(self, engine: EngineView, config: Config, *, clock: Callable[[], float] = time.time,
                 busy: Callable[[], bool] = lambda: False, **kw: Any) -> None:
        super().__init__(**kw)
        self.engine, self.config, self.clock, self.busy = engine, config, clock, busy
        self.last_lb: LBFacts | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="top"):
            yield NodeTable([(n.name, n.ssh_host) for n in self.config.nodes], id="nodes")
            yield DbPanel(id="db")
        yield LBStatus(self.clock, id="lb-status")

    def on_mount(self) -> None:
        self.table.border_title = "Nodes"
        self.db.border_title = "Database"
        self.refresh_roles()
        self._spawn(self._poll_lb, "lb", "LB poll")
        self._spawn(self._poll_nodes, "nodes", "node poll")

    @property
    def table(self) -> NodeTable:
        return self.query_one("#nodes", NodeTable)

    @property
    def db(self) -> DbPanel:
        return self.query_one("#db", DbPanel)

    def set_compact(self, compact: bool) -> None:
        self.table.set_compact(compact)
        self.db.set_compact(compact)

    # ---------------------------------------------------------------- polling (re-armed after each poll)

    def _spawn(self, poll: Callable[[], Awaitable[None]], group: str, what: str) -> None:
        self.run_worker(poll, group=group, description=what, exit_on_error=False)  # the callable, not a coroutine: one made for a widget already gone would never be awaited

    def _rearm(self, delay: float, poll: Callable[[], Awaitable[None]], group: str, what: str) -> None:
        if self.is_attached:
            self.set_timer(delay, lambda: self._spawn(poll, group, what))

    async def _poll_lb(self) -> None:
        try:
            self.apply_lb(await self.engine.cluster.probe_lb())
        finally:
            self._rearm(self.config.policy.lb_poll_interval, self._poll_lb, "lb", "LB poll")

    async def _poll_nodes(self) -> None:
        try:
            await self.refresh_nodes()
        finally:
            self._rearm(self.config.policy.node_poll_interval, self._poll_nodes, "nodes", "node poll")

    async def recheck(self) -> None:
        """Read the LB and the nodes now (the operator asked)."""
        self.apply_lb(await self.engine.cluster.probe_lb())
        await self.refresh_nodes()

    # ---------------------------------------------------------------- applying readings

    def apply_lb(self, lb: LBFacts) -> None:
        self.query_one("#lb-status", LBStatus).record(lb)
        stale = bool(lb.error)
        if not stale:
            self.last_lb = lb
        table = self.table
        for node in self.config.nodes:
            stats = self.last_lb.servers.get(node.lb_server) if self.last_lb else None
            table.set_cells(node.name, lb_cells(stats, stale))

    async def refresh_nodes(self) -> None:
        # shared with the gates and actions: a node one of them probed within the poll interval is not probed again
        facts = await self.engine.node_facts(max_age=self.config.policy.node_poll_interval / 2)
        table = self.table
        target = self.config.policy.target_release
        for node in self.config.nodes:
            table.set_cells(node.name, node_cells(facts.get(node.name), target))
        self.refresh_roles()
        panel = self.db
        panel.show(await self.engine.cluster.probe_db())
        if not self.busy():  # db check may run glance-manage on a node: not while a step works
            try:
                panel.show(check=await self.engine.db_check(), checked=True)
            except GlanceTuiError as exc:
                self.notify(f"db check: {exc.message}", severity="warning", markup=False)
            if verdict_is_stale(panel.db, panel.check):  # the heads moved while Glance was asked: read them again
                panel.show(await self.engine.cluster.probe_db())

    def refresh_roles(self) -> None:
        table = self.table
        for node in self.config.nodes:
            table.set_cells(node.name, {"role": self.engine.role_of(node.name)})
