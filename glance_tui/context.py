"""The run's context: config, adapters, journal, run state, and memoised probes.

Gates evaluated together share one probe of each thing (one LB read, one probe per node,
one ``db check``); :meth:`Context.invalidate` drops them so the next evaluation is live.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from glance_tui.adapters.ssh import CommandResult
from glance_tui.command_tags import run_journaled
from glance_tui.commands import NodeCommands, RemoteCommand
from glance_tui.config import Config
from glance_tui.events import Event, OutputLine
from glance_tui.journal import Journal, read_records
from glance_tui.probes import Cluster, DBState, DbCheck, LBFacts, NodeFacts, Snapshot


@dataclass
class RunState:
    """What the run decided (not what it observed): persisted to the journal on each change."""

    new_node: str | None = None
    start_release: str | None = None
    backup: dict[str, Any] | None = None
    log_bin_trust_old: bool | None = None
    overrides: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_journal(cls, path: Path) -> "RunState":
        """The decisions as of the journal's last ``state`` record (empty if none)."""
        state = cls()
        for rec in read_records(path):
            if rec.get("event") == "state":
                state = cls.from_dict(rec)
        return state

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunState":
        known = {k: data.get(k) for k in ("new_node", "start_release", "backup", "log_bin_trust_old")}
        return cls(**known, overrides=list(data.get("overrides") or []))


class Context:
    def __init__(self, config: Config, cluster: Cluster, journal: Journal, state: RunState, emit: Callable[[Event], None]) -> None:
        self.config = config
        self.cluster = cluster
        self.journal = journal
        self.state = state
        self.emit = emit
        self._memo: dict[str, asyncio.Future[Any]] = {}

    def invalidate(self, *keys: str) -> None:
        if not keys:
            self._memo.clear()
        for key in keys:
            for k in [k for k in self._memo if k == key or k.startswith(key + ":")]:
                self._memo.pop(k, None)

    async def _once(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        fut = self._memo.get(key)
        if fut is None:
            fut = asyncio.ensure_future(make())
            self._memo[key] = fut
        try:
            return await asyncio.shield(fut)
        except Exception:
            self._memo.pop(key, None)
            raise

    def save_state(self) -> None:
        self.journal.write("state", **self.state.as_dict())

    # ---------------------------------------------------------------- probes (memoised)

    async def lb_facts(self) -> LBFacts:
        return await self._once("lb", self.cluster.probe_lb)

    async def node_facts(self) -> dict[str, NodeFacts]:
        return await self._once("nodes", self.cluster.probe_nodes)

    async def db_state(self) -> DBState:
        return await self._once("db", self.cluster.probe_db)

    async def target_db_check(self) -> DbCheck | None:
        """``db check`` with the target release's code (the NEW NODE preferred), or None."""

        async def make() -> DbCheck | None:
            facts = await self.node_facts()
            target = self.config.policy.target_release
            order = [self.state.new_node] if self.state.new_node else []
            order += [n.name for n in self.config.nodes if n.name not in order]
            for name in order:
                f = facts.get(name)
                if f and f.release == target and not f.error:
                    return await self.cluster.db_check(name, target)
            return None

        return await self._once("dbcheck", make)

    async def newest_db_check(self) -> DbCheck | None:
        """``db check`` with the target code if any node has it, else with the old code."""
        check = await self.target_db_check()
        if check is not None:
            return check
        facts = await self.node_facts()
        runner = next((n for n, f in facts.items() if f.release and not f.error), None)
        return await self.cluster.db_check(runner, facts[runner].release) if runner else None

    async def snapshot(self) -> Snapshot:
        lb, nodes, db = await asyncio.gather(self.lb_facts(), self.node_facts(), self.db_state())
        return Snapshot(lb=lb, nodes=nodes, db=db)

    async def backup_still_valid(self) -> bool:
        from glance_tui.backup import BackupRecord, verify_backup

        if not self.state.backup:
            return False
        record = BackupRecord(**self.state.backup)
        shell = self.cluster.local if record.where == "local" else self.cluster.ssh.get(record.where)
        return await self._once("backup", lambda: verify_backup(shell, record))

    # ---------------------------------------------------------------- commands

    def commands(self, node: str) -> NodeCommands:
        return self.cluster.commands(node)

    def stream_to(self, node: str) -> Callable[[str, str], None]:
        return lambda stream, line: self.emit(OutputLine(node, stream, line))

    async def run(self, cmd: RemoteCommand, *, stream: bool = False, input: str | None = None) -> CommandResult:
        on_line = self.stream_to(cmd.node) if stream else None
        if cmd.changes:  # its tag is journaled before it is sent: a crash can never make it run twice
            return await run_journaled(self, cmd, on_line=on_line, input=input)
        return await self.cluster.run(cmd, on_line=on_line, input=input)

    async def run_text(self, node: str, text: str) -> CommandResult:
        return await self.cluster.run(RemoteCommand(node, text, text))
