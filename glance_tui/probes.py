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
from glance_tui.processes import parse_epoch, parse_processes
from glance_tui.releases import parse_version, release_of
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
class NodeFacts:
    """What one node runs. ``running`` is True, False, or None = unknown (unknown blocks).

    ``stale`` is True when a Glance process started before the installed code was installed
    (it still runs the old code: "installed 28.2.0, still running code started before the
    upgrade"), False when every running process is younger, None when it cannot be told.
    """

    name: str
    address: str
    version: str | None = None  # the installed version
    release: str | None = None  # the installed release
    running: bool | None = None
    error: str = ""  # the node could not be probed at all (SSH)
    version_error: str = ""  # the version command failed (e.g. Glance not installed yet)
    running_error: str = ""  # why ``running`` is unknown
    installed_at: float | None = None  # node clock
    started_at: float | None = None  # the oldest running Glance process (node clock)
    stale: bool | None = None
    stale_error: str = ""  # why ``stale`` is unknown
    pids: tuple[int, ...] = ()
    probed_at: float = field(default_factory=time.time)
    clock: float | None = None  # the node's own clock when probed (from ``processes``)

    @property
    def reachable(self) -> bool:
        return not self.error

    def installed(self, release: str, version: str | None = None) -> bool:
        """The installed package is ``release`` (and ``version``, if one is required)."""
        return self.release == release and (not version or self.version == version)

    @property
    def fresh(self) -> bool | None:
        """No Glance process runs code older than the installed one: True when stopped or every
        process started after the install, False when one is older (stale), None = unknown."""
        if self.running is False:
            return True
        if self.running is None or self.stale is None:
            return None
        return not self.stale

    def on(self, release: str, version: str | None = None) -> bool:
        """The node runs ``release``: installed, and stopped or restarted since (never when unknown)."""
        return self.installed(release, version) and self.fresh is True

    @property
    def service(self) -> str:
        """The service state in words, for gate reasons and the status table."""
        if self.running is None:
            return f"unknown ({self.running_error or self.error or 'no answer'})"
        if self.running is False:
            return "stopped"
        if self.stale:
            return f"running code started before the install of {self.version or '?'}"
        if self.stale is None:
            return f"running (code age unknown: {self.stale_error or 'no answer'})"
        return "running"

    @property
    def stale_text(self) -> str:
        """``installed 28.2.0, still running code started before the upgrade`` for a stale node."""
        return f"installed {self.version or '?'}, still running code started before the upgrade" if self.running and self.stale else ""


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
        node = self.config.node(name)
        cmds = self.commands(name)
        override = cmds.is_running()
        try:
            ver, procs, at, flag = await asyncio.gather(
                self.run(cmds.installed_version()), self.run(cmds.processes()), self.run(cmds.installed_at()),
                self.run(override) if override else asyncio.sleep(0, None),
            )
        except GlanceTuiError as exc:
            return NodeFacts(name, node.ssh_host, error=exc.message, running_error=exc.message, stale_error=exc.message)
        version = parse_version(ver.stdout) if ver.ok else None
        if not ver.ok:
            version_error = f"version command failed (exit {ver.exit_status}): {' | '.join(ver.tail(2))}"
        elif version is None:
            version_error = f"no version in the output of `{cmds.installed_version().command}`"
        else:
            version_error = ""
        running: bool | None = None
        running_error = ""
        found = []
        clock: float | None = None
        if not procs.ok:
            running_error = f"processes command failed (exit {procs.exit_status}): {' | '.join(procs.tail(2))}"
        else:
            try:
                clock, found = parse_processes(procs.stdout, self.config.commands.services)
                running = bool(found)
            except ValueError as exc:
                running_error = str(exc)
        if override is not None and flag is not None:
            if flag.exit_status == 0:
                running = True if running is not False else None
            elif flag.exit_status == 1:
                # "stopped" needs both readings: the override alone never turns an unknown into stopped
                running = False if running is False else None
            else:
                running = None
            if running is None and not running_error:
                running_error = f"`{override.command}` and `{cmds.processes().command}` disagree, or it exited {flag.exit_status}"
        installed_at: float | None = None
        stale_error = ""
        if at.ok:
            try:
                installed_at = parse_epoch(at.stdout)
            except ValueError as exc:
                stale_error = f"installed_at: {exc}"
        else:
            stale_error = f"installed_at command failed (exit {at.exit_status}): {' | '.join(at.tail(2))}"
        started = min((p.started_at for p in found), default=None)
        stale: bool | None
        if running is False:
            stale = False
        elif running is None:
            stale, stale_error = None, stale_error or running_error
        elif installed_at is None:
            stale = None
        else:
            # ps reports whole seconds of elapsed time: a process younger than the install by less
            # than that rounding cannot be told apart, so it counts as stale (safe side) — unless
            # this run started it after the install (see Context.node_fact).
            stale = started is not None and started <= installed_at + 1
        return NodeFacts(
            name,
            node.ssh_host,
            version=version,
            release=release_of(version),
            running=running,
            version_error=version_error,
            running_error=running_error,
            installed_at=installed_at,
            started_at=started,
            stale=stale,
            stale_error=stale_error if stale is None else "",
            pids=tuple(p.pid for p in found),
            clock=clock,
        )

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
