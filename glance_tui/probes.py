"""Read-only probes of the live cluster: the load balancer, each node and the database.

Every decision the engine makes (is a step done? may it run?) comes from these probes, never
from what the journal merely says happened. A failing probe is a fact too: it is reported,
not raised, so one unreachable node never hides the others.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable

import httpx

from glance_tui.adapters.database import Database, DatabaseFacts
from glance_tui.adapters.haproxy import ServerStats
from glance_tui.adapters.lbset import LBRead, LBRestart, LoadBalancers, ServerView
from glance_tui.adapters.local import LocalShell
from glance_tui.adapters.ssh import CommandResult, SSHPool
from glance_tui.commands import NodeCommands, RemoteCommand
from glance_tui.config import Config
from glance_tui.errors import GlanceTuiError
from glance_tui.node import NodeFacts, probe_node
from glance_tui.node.probe import read_health
from glance_tui.node.verdict import Health
from glance_tui.secrets import redact

# glance-manage db check exit codes (verified, see NOTES.md).
DB_CHECK_MEANING = {
    0: "up to date",
    3: "expand is next",
    4: "migrate is next",
    5: "contract is next",
    1: "error",
}


@dataclass(frozen=True)
class DbCheck:
    node: str
    code: int | None
    release: str | None  # the release of the code that ran the check
    heads: tuple[str, ...] = ()
    error: str = ""

    @property
    def meaning(self) -> str:
        if self.code is None:
            return f"unknown ({self.error})" if self.error else "unknown"
        return DB_CHECK_MEANING.get(self.code, f"unexpected exit {self.code}")


@dataclass(frozen=True)
class LBFacts:
    """``servers``: each server summed over every instance × backend, present only where it was
    read everywhere; ``views`` keeps the per-place detail; ``error`` names unreachable instances."""

    servers: dict[str, ServerStats]
    error: str = ""
    read_at: float = field(default_factory=time.time)
    views: dict[str, ServerView] = field(default_factory=dict)
    restarts: tuple[LBRestart, ...] = ()  # HAProxy restarts seen so far (a reload forgets DRAIN/MAINT)

    def __post_init__(self) -> None:
        if self.servers and not self.views:  # built from plain rows (one backend on one instance)
            object.__setattr__(self, "views", {n: ServerView(n, {f"lb/{s.backend or 'backend'}": s}) for n, s in self.servers.items()})

    @classmethod
    def from_read(cls, read: LBRead) -> "LBFacts":
        views = {s: read.view(s) for s in read.servers()}
        servers = {s: c for s, v in views.items() if (c := v.combined()) is not None}
        return cls(servers, read.error, read.read_at, views, read.restarts)

    def server(self, name: str) -> ServerStats | None:
        return self.servers.get(name)


@dataclass(frozen=True)
class DBState:
    facts: DatabaseFacts | None
    error: str = ""
    read_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Snapshot:
    """One consistent-enough picture of the cluster, as the UI and the gates see it."""

    lb: LBFacts
    nodes: dict[str, NodeFacts]
    db: DBState
    taken_at: float = field(default_factory=time.time)


OnLine = Callable[[str, str], None]


class Cluster:
    """Owns the adapters for one config and offers read-only probes over them."""

    def __init__(self, config: Config, *, lb_transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.lb = LoadBalancers(config.lbs, transport=lb_transport)
        self.ssh = SSHPool(config)
        self.db = Database(config.database)
        self.local = LocalShell()

    async def close(self) -> None:
        await asyncio.gather(self.lb.aclose(), self.ssh.close(), self.db.close(), return_exceptions=True)

    def commands(self, node: str) -> NodeCommands:
        return NodeCommands(self.config, node)

    async def run(self, cmd: RemoteCommand, *, timeout: float | None = None, on_line: OnLine | None = None, input: str | None = None) -> CommandResult:
        """Run a command on its node (or locally when ``cmd.node == "local"``)."""
        shell = self.local if cmd.node == "local" else self.ssh.get(cmd.node)
        return await shell.run(cmd.command, timeout=timeout or cmd.timeout, on_line=on_line, input=input)

    # -------------------------------------------------------------- probes

    async def probe_lb(self) -> LBFacts:
        return LBFacts.from_read(await self.lb.read())

    async def probe_node(self, name: str) -> NodeFacts:
        """The node's own readings and verdict (see :mod:`glance_tui.node`)."""
        return await probe_node(self.config, name, self.run, self.read_health)

    async def read_health(self, url: str) -> Health:
        """A node's own health URL, read from here (refused = nothing serves there)."""
        return await read_health(url, self.config.http_timeout)

    async def probe_nodes(self) -> dict[str, NodeFacts]:
        names = [n.name for n in self.config.nodes]
        facts = await asyncio.gather(*(self.probe_node(n) for n in names))
        return dict(zip(names, facts))

    async def probe_db(self) -> DBState:
        try:
            return DBState(await self.db.facts())
        except GlanceTuiError as exc:
            return DBState(None, error=exc.message)

    async def db_check(self, node: str, release: str | None = None) -> DbCheck:
        """Run ``glance-manage db check`` (and ``db version``) with the code installed on ``node``."""
        cmds = self.commands(node)
        try:
            check, heads = await asyncio.gather(self.run(cmds.db_check()), self.run(cmds.db_version()))
        except GlanceTuiError as exc:
            return DbCheck(node, None, release, error=exc.message)
        head_list = tuple(h.strip() for h in heads.stdout.splitlines() if h.strip() and " " not in h.strip())
        error = redact(" | ".join(check.tail(2))) if check.exit_status not in (0, 3, 4, 5) else ""
        return DbCheck(node, check.exit_status, release, heads=head_list, error=error)

    async def snapshot(self) -> Snapshot:
        lb, nodes, db = await asyncio.gather(self.probe_lb(), self.probe_nodes(), self.probe_db())
        return Snapshot(lb=lb, nodes=nodes, db=db)
