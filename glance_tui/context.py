"""The run's context: config, adapters, journal, run state, and memoised probes.

Gates evaluated together share one probe of each thing (one LB read, one probe per node,
one read of ``alembic_version``); :meth:`Context.invalidate` drops them so the next
evaluation is live (``older_than`` keeps what was read within that many seconds, for the
live view). ``glance-manage db check`` is the one expensive probe: its verdicts are kept
by (heads, code version) in :class:`~glance_tui.dbverdict.DbVerdicts`, so a fresh read of
the heads decides whether Glance must be asked again; ``invalidate("dbcheck")`` forgets
them where only Glance can tell (around expand, migrate and contract).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from glance_tui.adapters.ssh import CommandResult
from glance_tui.command_tags import run_journaled
from glance_tui.commands import NodeCommands, RemoteCommand
from glance_tui.config import Config
from glance_tui.dbverdict import CLEAR, DbVerdicts, Heads
from glance_tui.errors import GlanceTuiError
from glance_tui.events import Event, OutputLine
from glance_tui.journal import Journal, read_records
from glance_tui.node import against_lb, own_start, stopped_record
from glance_tui.probes import Cluster, DBState, DbCheck, LBFacts, NodeFacts, Snapshot
from glance_tui.secrets import redact


@dataclass
class RunState:
    """What the run decided (not what it observed): persisted to the journal on each change."""

    new_node: str | None = None
    start_release: str | None = None
    backup: dict[str, Any] | None = None
    log_bin_trust_old: bool | None = None
    overrides: list[dict[str, Any]] = field(default_factory=list)
    # node -> {"installed_at", "stopped_at"} (node clock): this run saw the node stopped with that
    # install before starting it; see Context.own_start
    started: dict[str, dict[str, Any]] = field(default_factory=dict)
    # node -> "drain" | "maint": what this run set on every load balancer and must keep set until
    # its own "ready" (a HAProxy reload forgets it; see glance_tui.holds)
    held: dict[str, str] = field(default_factory=dict)
    # node -> {"dir", "existed", "files"}: its staging directory as listed right before its stop,
    # checked after its upgrade (see glance_tui.staging)
    staging: dict[str, dict[str, Any]] = field(default_factory=dict)
    # node -> the image id its Kolla container ran before this run re-created it: what a rollback
    # re-creates it on (see glance_tui.node.containers.recreate_command)
    prior_images: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_journal(cls, path: Path) -> "RunState":
        """The decisions as of the journal's last ``state`` record (empty if none)."""
        return cls.from_records(read_records(path))

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]]) -> "RunState":
        state = cls()
        for rec in records:
            if rec.get("event") == "state":
                state = cls.from_dict(rec)
        return state

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunState":
        known = {k: data.get(k) for k in ("new_node", "start_release", "backup", "log_bin_trust_old")}
        started = data.get("started") if isinstance(data.get("started"), dict) else {}
        held = data.get("held") if isinstance(data.get("held"), dict) else {}
        held = {str(n): a for n, a in held.items() if a in ("drain", "maint")}
        staging = data.get("staging") if isinstance(data.get("staging"), dict) else {}
        staging = {str(n): s for n, s in staging.items() if isinstance(s, dict) and isinstance(s.get("dir"), str)}
        prior = data.get("prior_images") if isinstance(data.get("prior_images"), dict) else {}
        prior = {str(n): i for n, i in prior.items() if isinstance(i, str) and i}
        return cls(**known, overrides=list(data.get("overrides") or []), started=dict(started), held=held, staging=staging, prior_images=prior)


class Context:
    def __init__(self, config: Config, cluster: Cluster, journal: Journal, state: RunState, emit: Callable[[Event], None]) -> None:
        self.config = config
        self.cluster = cluster
        self.journal = journal
        self.state = state
        self.emit = emit
        self.verdicts = DbVerdicts()
        self._memo: dict[str, tuple[float, asyncio.Future[Any]]] = {}
        self._early: tuple[str, Heads, asyncio.Future[DbCheck]] | None = None  # see newest_db_check(early=True)
        # every drain/maint/ready this run sends, and the hold guard's re-assertions, one at a time
        self.lb_lock = asyncio.Lock()
        self.restarts_journaled = 0  # HAProxy restarts already journaled (see glance_tui.holds)
        self.hold_asserted: dict[str, int] = {}  # node -> restarts seen when the hold guard last re-asserted it
        # node -> the hold an earlier process of this run dropped for a ``ready`` it never saw end
        # (see glance_tui.holds.readies_cut_off): the drain's re-probe decides whether it is ours again
        self.cut_off_ready: dict[str, str] = {}
        self._backup_verified: tuple[Any, str] | None = None  # (record, file signature) of the last full verify
        self.own_db_connections: Callable[[], set[int]] = set  # the run's own database connections besides the adapter's

    def invalidate(self, *keys: str, older_than: float | None = None) -> None:
        """Drop memoised probes: all, or those under ``keys``; with ``older_than``, only those
        read more than that many seconds ago. ``"dbcheck"`` also forgets Glance's verdicts."""
        if "dbcheck" in keys:
            self.verdicts.forget()
            self._drop_early()  # asked before the change: never adopted after it
            keys = keys + ("target-check", "heads")
        now = time.monotonic()
        for k, (at, _fut) in list(self._memo.items()):
            if keys and not any(k == key or k.startswith(key + ":") for key in keys):
                continue
            if older_than is None or now - at > older_than:
                self._memo.pop(k, None)

    async def _once(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        entry = self._memo.get(key)
        if entry is None:
            entry = (time.monotonic(), asyncio.ensure_future(make()))
            self._memo[key] = entry
        fut = entry[1]
        try:
            return await asyncio.shield(fut)
        except Exception:
            if self._memo.get(key) is entry:
                self._memo.pop(key, None)
            raise

    def save_state(self) -> None:
        self.journal.write("state", **self.state.as_dict())

    # ---------------------------------------------------------------- probes (memoised)

    async def lb_facts(self) -> LBFacts:
        return await self._once("lb", self.cluster.probe_lb)

    async def node_facts(self) -> dict[str, NodeFacts]:
        """Every node's facts; each node is memoised on its own (``nodes:<name>``), so an action
        that re-probes its node does not probe the others, and the live view reuses fresh reads."""
        names = [n.name for n in self.config.nodes]
        facts = await asyncio.gather(*(self.node_fact(n) for n in names))
        return dict(zip(names, facts))

    async def node_fact(self, name: str) -> NodeFacts:
        return await self._once(f"nodes:{name}", lambda: self._probe_node(name))

    async def _probe_node(self, name: str) -> NodeFacts:
        """The node's verdict; a "stopped" one must also agree with the load balancer (a server
        with sessions on it is being served: the node is unknown, not stopped)."""
        f = await self.cluster.probe_node(name)
        if f.running is False:
            self.invalidate("lb", older_than=self.config.policy.lb_poll_interval)
            view = (await self.lb_facts()).views.get(self.config.node(name).lb_server)
            if view is not None:
                f = against_lb(f, sum(r.scur or 0 for r in view.rows.values()), f"the load balancer ({view.server})")
        return self.own_start(f)

    def own_start(self, f: NodeFacts) -> NodeFacts:
        """Not stale after all when this run started it after seeing it stopped (see node.starts)."""
        return own_start(f, self.state.started.get(f.name))

    def note_stopped(self, f: NodeFacts) -> None:
        """Journal that ``f``'s node was seen stopped at its clock ``f.clock`` with its install
        at ``f.installed_at``: whatever starts there later (same install) runs that code."""
        record = stopped_record(f)
        if record is not None:
            self.state.started[f.name] = record
            self.save_state()

    async def db_state(self) -> DBState:
        return await self._once("db", self.cluster.probe_db)

    async def db_heads(self) -> Heads:
        """``alembic_version`` read straight from the database (milliseconds, no Glance)."""
        return await self._once("heads", self._read_heads)

    async def _read_heads(self) -> Heads:
        return tuple(await self.cluster.db.alembic_heads())

    async def _heads_or_none(self) -> Heads | None:
        try:
            return await self._read_heads()
        except GlanceTuiError:
            return None

    async def db_check_on(self, node: str, facts: NodeFacts) -> DbCheck:
        """Glance's verdict with the code installed on ``node``: kept while the heads (read now)
        and that code are unchanged, else ``glance-manage db check`` runs there."""
        try:
            heads: Heads | None = await self.db_heads()
        except GlanceTuiError:
            heads = None
        if heads is None:  # the database cannot be read directly: Glance says both (db check + db version)
            return await self.cluster.db_check(node, facts.release)
        ask = lambda: self._ask_glance(node, facts.release, heads)  # noqa: E731
        early = self._early
        if early is not None and early[0] == node and early[1] == heads:
            self._early = None
            ask = lambda: self._adopt_early(early[2], node, facts)  # noqa: E731
        else:
            self._drop_early()  # asked the wrong node (or none): never used
        return await self.verdicts.get((heads, facts.release, facts.version), ask, self._heads_or_none)

    def _start_early(self, node: str, heads: Heads) -> None:
        self._early = (node, heads, asyncio.ensure_future(self._ask_glance(node, None, heads)))

    def _drop_early(self) -> None:
        """Cancel an early answer that will not be used (counted: Glance was asked, for nothing)."""
        if self._early is not None:
            self._early[2].cancel()
            self.verdicts.asked += 1
            self._early = None

    async def _adopt_early(self, task: "asyncio.Future[DbCheck]", node: str, facts: NodeFacts) -> DbCheck:
        """The early answer counts only if the node's code is still what its facts say (a
        fresh version probe after the answer): else Glance is asked again with that code."""
        try:
            check = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves
            return await self._ask_glance(node, facts.release, await self._read_heads())  # dropped meanwhile: ask now
        self.invalidate(f"nodes:{node}")
        now = await self.node_fact(node)
        if (now.release, now.version) != (facts.release, facts.version):
            return await self._ask_glance(node, now.release, check.heads)
        return replace(check, release=facts.release)

    async def _ask_glance(self, node: str, release: str | None, heads: Heads) -> DbCheck:
        """``glance-manage db check`` alone: the heads were just read from the database."""
        started = time.monotonic()
        try:
            check = await self.run(self.commands(node).db_check())
        except GlanceTuiError as exc:
            return DbCheck(node, None, release, error=exc.message)
        # journaled: a node command (the time split counts it), read-only and untagged
        self.journal.write("db.check", node=node, exit=check.exit_status, duration=round(time.monotonic() - started, 2))
        error = redact(" | ".join(check.tail(2))) if check.exit_status not in CLEAR else ""
        return DbCheck(node, check.exit_status, release, heads=heads, error=error)

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
                    return await self.db_check_on(name, f)
            return None

        return await self._once("target-check", make)

    async def newest_db_check(self, *, early: bool = False) -> DbCheck | None:
        """``db check`` with the target code if any node has it, else with the old code.

        ``early`` (preflight, ``check``): with no verdict known yet, Glance is asked on the likely
        node (the NEW NODE, else the first) while the nodes are still being probed, instead of
        after — the answer is used only if that is the node the facts pick and its code did not
        change meanwhile. It takes the probes off ``check``'s critical path."""
        if early and self._early is None and self.verdicts.empty:
            heads = await self._heads_or_none()
            if heads is not None:
                self._start_early(self.state.new_node or self.config.nodes[0].name, heads)
        check = await self.target_db_check()
        if check is not None:
            return check
        facts = await self.node_facts()
        runner = next((n for n, f in facts.items() if f.release and not f.error), None)
        return await self.db_check_on(runner, facts[runner]) if runner else None

    async def live_db_check(self, max_age: float) -> DbCheck | None:
        """The database panel's ``db check``: heads read now, node facts up to ``max_age`` old,
        Glance asked only when the heads or the code changed."""
        self.invalidate("heads", "target-check")
        self.invalidate("nodes", older_than=max_age)
        return await self.newest_db_check()

    async def snapshot(self) -> Snapshot:
        lb, nodes, db = await asyncio.gather(self.lb_facts(), self.node_facts(), self.db_state())
        return Snapshot(lb=lb, nodes=nodes, db=db)

    async def backup_still_valid(self) -> bool:
        """The recorded backup is there, unchanged. Its sha256 is read again (in this process:
        at least once) only when the file's size/ctime/inode differ from its last verification —
        a ``stat``, not a re-hash at every step of a dump that can be gigabytes. Any write to the
        file changes its ctime, which no user can set back."""
        from glance_tui.backup import BackupRecord, file_signature, verify_backup

        if not self.state.backup:
            return False
        record = BackupRecord(**self.state.backup)
        shell = self.cluster.local if record.where == "local" else self.cluster.ssh.get(record.where)

        async def check() -> bool:
            signature = await file_signature(shell, record.path)
            if signature is not None and self._backup_verified == (record, signature):
                return True
            ok = await verify_backup(shell, record)
            self._backup_verified = (record, signature) if ok and signature is not None else None
            return ok

        return await self._once("backup", check)

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
