"""A node's in-flight work: what must be zero before it is stopped.

The load balancer's sessions (scur + qcur on every instance × backend) are only part of it.
Glance also works where HAProxy cannot see: image imports run inside the API worker after
their request answered 202 (:mod:`glance_tui.import_work`), and with distributed import the
other nodes proxy requests for an image staged here straight to this node's own URL. So a
node's in-flight is the sum of the LB sessions, the client connections established to its API
port read on the node itself (``[commands] connections``; the load balancers' own connections —
their sessions, already counted, and their health checks — are left out by their
``source_addresses``), and the import work that may be running on it. A part that cannot be
read is unknown, and so is the sum: unknown blocks, never 0.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from glance_tui.db_clients import resolve_here
from glance_tui.errors import GlanceTuiError
from glance_tui.import_work import (ImportItem, ImportWork, StagedFiles, StageHosts, expired, for_node, may_expire, read_import_work,
                                    with_evidence)
from glance_tui.node.container_mounts import host_place
from glance_tui.node.containers import parse_container
from glance_tui.node.glance_conf import ImportConf, parse_import_conf, parse_staging_ages
from glance_tui.node.probe import api_address, to_api
from glance_tui.node.readings import Connection, parse_connections

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.adapters.lbset import ServerView
    from glance_tui.commands import RemoteCommand
    from glance_tui.config import Config
    from glance_tui.context import Context

KINDS = ("lb", "connections", "imports")  # the parts, in the order they are shown
MEANING = {"lb": "load-balancer sessions", "connections": "other client connections to its API port", "imports": "image imports"}


@dataclass(frozen=True)
class InFlight:
    """One reading of a node's work; a part is None when it could not be read (``problems`` says why)."""

    lb: int | None
    connections: tuple[Connection, ...] | None
    imports: ImportWork | None
    problems: tuple[str, ...] = ()

    @property
    def counts(self) -> dict[str, int | None]:
        return {"lb": self.lb, "connections": None if self.connections is None else len(self.connections),
                "imports": None if self.imports is None else self.imports.count}

    @property
    def total(self) -> int | None:
        counts = self.counts.values()
        return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)

    def busy(self) -> tuple[str, ...]:
        """The kinds not (known to be) zero."""
        return tuple(k for k, c in self.counts.items() if c != 0)

    def summary(self) -> str:
        """``LB 0 · connections 1 · imports 2`` (``?`` for an unknown part)."""
        names = {"lb": "LB", "connections": "connections", "imports": "imports"}
        return " · ".join(f"{names[k]} {'?' if c is None else c}" for k, c in self.counts.items())

    def lines(self) -> list[str]:
        """What each piece of work is: the operator's dialog, the drain view, ``status``."""
        out = [f"connection from {c.peer} to {c.local}" for c in self.connections or ()]
        out += [f"import {i.describe()}" for i in (self.imports.running if self.imports else ())]
        if self.imports is not None and self.imports.truncated:
            out.append(f"(Glance records more imports than the {len(self.imports.running)} read)")
        out += [f"import {i.describe()}" for i in (self.imports.expired if self.imports else ())]
        out += [f"unknown: {p}" for p in self.problems]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"lb": self.lb, "connections": None if self.connections is None else [c.peer for c in self.connections],
                "imports": None if self.imports is None else [i.as_dict() for i in self.imports.running],
                "expired_imports": None if self.imports is None else [i.as_dict() for i in self.imports.expired],
                "problems": list(self.problems)}


async def lb_sources(config: "Config") -> tuple[set[str], list[str]]:
    """Every load balancer's own source addresses (``source_addresses``, else its ``stats_url``
    host), resolved here; and the instances whose addresses do not resolve."""
    found: set[str] = set()
    problems: list[str] = []

    async def one(lb) -> None:
        names = list(lb.source_addresses) or [urlsplit(lb.stats_url).hostname or ""]
        for name in names:
            ips = await resolve_here(name)
            if not ips:
                problems.append(f"load balancer {lb.name}'s source address {name!r} does not resolve here")
            found.update(ips)

    await asyncio.gather(*(one(lb) for lb in config.lbs))
    return found, sorted(problems)


async def _output(ctx: "Context", cmd: "RemoteCommand", what: str) -> str:
    """The command's stdout; :class:`ValueError` naming ``what`` when it cannot be run or fails."""
    try:
        result = await ctx.run(cmd)
    except GlanceTuiError as exc:
        raise ValueError(f"cannot read {what}: {exc.what}") from None
    if not result.ok:
        raise ValueError(f"cannot read {what}: `{cmd.command}` exited {result.exit_status} ({' | '.join(result.tail(1))})")
    return result.stdout


async def import_conf(ctx: "Context", node: str) -> ImportConf:
    """The node's self URL and staging directory from its own glance-api.conf (``read_config``);
    :class:`ValueError` when it cannot be read. On a Kolla node the configured directory is inside
    the container: it is listed at its host path, through the container's inspected mounts."""
    kolla = ctx.config.kind_of(node) == "kolla"
    cmds = ctx.commands(node)
    conf_text, inspect = await asyncio.gather(
        _output(ctx, cmds.read_config(), f"{node}'s glance-api.conf"),
        _output(ctx, cmds.container_reads()[0], f"{node}'s container (its mounts)") if kolla else asyncio.sleep(0, ""),
        return_exceptions=True)
    try:
        for read in (conf_text, inspect):
            if isinstance(read, BaseException):
                raise read
        conf = parse_import_conf(str(conf_text))
        return _through_mounts(conf, str(inspect), str(ctx.config.kolla_of(node).container)) if kolla else conf
    except ValueError as exc:
        raise ValueError(str(exc) if str(exc).startswith("cannot read") else f"{node}: {exc}") from None


def _through_mounts(conf: ImportConf, inspect: str, container: str) -> ImportConf:
    """A Kolla node's staging directory at its host path (``unlisted`` when the container keeps it in
    its own layer or a tmpfs); ValueError when the container or its mounts cannot be read."""
    place = host_place(parse_container(inspect).raw, conf.staging_dir, container)
    return replace(conf, staging_dir=place.host or conf.staging_dir, in_container=conf.staging_dir, unlisted=place.gone)


async def stage_hosts(ctx: "Context") -> StageHosts:
    """Every node's self URL, each read on the node (an unread one is named, never guessed)."""
    names = [n.name for n in ctx.config.nodes]
    confs = await asyncio.gather(*(import_conf(ctx, n) for n in names), return_exceptions=True)
    urls, dirs, unread, unlisted = {}, {}, {}, {}
    for name, conf in zip(names, confs):
        if isinstance(conf, ImportConf):
            urls[name], dirs[name] = conf.self_url, conf.staging_dir
            if conf.unlisted:
                unlisted[name] = f"{name}'s staging directory cannot be listed from the host: {conf.unlisted}"
        elif isinstance(conf, ValueError):
            unread[name] = str(conf)
        else:
            raise conf
    return StageHosts(urls, unread, dirs, unlisted)


MISSING = 3  # the staging listing's exit status when the directory does not exist


class StagingUnknown(GlanceTuiError):
    """A staging directory could not be listed: what it holds is unknown."""


async def list_staging(ctx: "Context", node: str, directory: str) -> tuple[bool, list[str]]:
    """(exists, the names in it) on the node; :class:`StagingUnknown` when it cannot be listed."""
    q = shlex.quote(directory)
    text = f"if [ -e {q} ]; then ls -1A -- {q}; else exit {MISSING}; fi"
    try:
        result = await ctx.run_text(node, text)
    except GlanceTuiError as exc:
        raise StagingUnknown(f"cannot list {node}'s staging directory {directory}: {exc.what}") from None
    if result.exit_status == MISSING:
        return False, []
    if not result.ok:
        raise StagingUnknown(f"cannot list {node}'s staging directory {directory}: `{text}` exited {result.exit_status} ({' | '.join(result.tail(1))})",
                             fix="check that the SSH user may read it (ssh.sudo), then retry")
    return True, [line for line in result.stdout.splitlines() if line]


async def staged_files(ctx: "Context", hosts: StageHosts) -> StagedFiles:
    """Which images each node's staging directory holds data for, every node listed in parallel;
    a node whose config or directory could not be read is in ``unread``."""
    unread = {**hosts.unread, **hosts.unlisted}
    holders: dict[str, list[str]] = {}

    ages: dict[str, dict[str, float]] = {}

    async def one(node: str, directory: str) -> None:
        q = shlex.quote(directory)
        text = f"if [ -e {q} ]; then date +%s && find {q} -mindepth 1 -maxdepth 1 -printf '%T@ %f\\n'; else exit {MISSING}; fi"
        try:
            result = await ctx.run_text(node, text)
            if result.exit_status == MISSING:
                return
            if not result.ok:
                raise StagingUnknown(f"cannot list {node}'s staging directory {directory}: `{text}` exited {result.exit_status} "
                                     f"({' | '.join(result.tail(1))})")
            found = parse_staging_ages(result.stdout)
        except GlanceTuiError as exc:
            unread[node] = exc.what
            return
        except ValueError as exc:
            unread[node] = f"{node}'s staging listing: {exc}"
            return
        for image_id, age in found.items():
            holders.setdefault(image_id, []).append(node)
            ages.setdefault(image_id, {})[node] = age

    await asyncio.gather(*(one(n, d) for n, d in hosts.dirs.items() if n not in unread))
    return StagedFiles({i: tuple(sorted(n)) for i, n in holders.items()}, unread, ages)


async def node_connections(ctx: "Context", node: str, exclude: set[str]) -> tuple[Connection, ...]:
    """Established client connections to the node's API port, read on the node, without the
    load balancers' own; :class:`ValueError` when the reading fails or cannot be parsed."""
    output = await _output(ctx, ctx.commands(node).connections(), f"{node}'s connections")
    try:
        found = parse_connections(output)
    except ValueError as exc:
        raise ValueError(f"{node}'s connections: {exc}") from None
    host, port = api_address(ctx.config.node(node).api_url)
    return tuple(c for c in to_api(found, host, port) if c.peer_ip not in exclude)


async def read_in_flight(ctx: "Context", node: str, view: "ServerView", hosts: StageHosts,
                         sources: tuple[set[str], list[str]]) -> InFlight:
    """All three parts at once; each that fails is unknown with its reason."""
    problems: list[str] = []
    exclude, unresolved = sources

    async def conns() -> tuple[Connection, ...] | None:
        if unresolved:  # cannot tell HAProxy's own connections from others
            problems.extend(unresolved)
            return None
        try:
            return await node_connections(ctx, node, exclude)
        except ValueError as exc:
            problems.append(str(exc))
            return None

    async def imports() -> ImportWork | None:
        try:
            work = await read_import_work(ctx.cluster.db)
        except GlanceTuiError as exc:
            problems.append(f"cannot read Glance's import work from the database: {exc.what}")
            return None
        # running work whose stage host names no node is narrowed by the staging file, and work whose
        # lock Glance would break is dead only if no node's file of it changed: read only then
        files = await staged_files(ctx, hosts) if any(not hosts.owner(i.stage_host) or may_expire(i) for i in work.running) else None
        return for_node(work, node, hosts, files)

    connections, work = await asyncio.gather(conns(), imports())
    if view.in_flight is None:
        problems.insert(0, f"load balancer: {'; '.join(view.problems) or view.status or 'no reading'}")
    return InFlight(view.in_flight, connections, work, tuple(problems))


@dataclass
class WaitLedger:
    """How long each kind held a drain wait (not known to be zero), and what was seen: the
    ``drain.work`` record the run report shows."""

    node: str
    held: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in KINDS})
    last: float | None = None
    seen_imports: dict[str, ImportItem] = field(default_factory=dict)
    seen_peers: set[str] = field(default_factory=set)
    seen_expired: dict[str, ImportItem] = field(default_factory=dict)  # dead by Glance's lock expiry: set aside, not waited for

    def add(self, reading: InFlight, elapsed: float) -> None:
        step = 0.0 if self.last is None else max(0.0, elapsed - self.last)
        self.last = elapsed
        for kind in reading.busy():
            self.held[kind] += step
        for item in reading.imports.running if reading.imports else ():
            self.seen_imports[item.image_id or item.task_id] = item
        self.seen_peers.update(c.peer for c in reading.connections or ())
        for item in reading.imports.expired if reading.imports else ():
            self.seen_expired[item.image_id or item.task_id] = item

    def record(self) -> dict[str, Any]:
        return {"node": self.node, "held_by": {k: round(v, 2) for k, v in self.held.items()},
                "imports": [i.as_dict() for i in self.seen_imports.values()], "connections": sorted(self.seen_peers),
                "expired_imports": [i.as_dict() for i in self.seen_expired.values()]}


@dataclass(frozen=True)
class ClusterWork:
    """What ``status`` shows beside the LB: every import Glance records (with the node its stage
    host names, if any) and each node's other client connections; an unread part says why."""

    imports: ImportWork | None
    imports_error: str
    hosts: StageHosts
    connections: dict[str, tuple[Connection, ...] | None]
    errors: dict[str, str]  # node -> why its connections are unknown
    files: StagedFiles | None = None  # read only while imports run

    def is_expired(self, item: ImportItem) -> bool:
        """Dead by Glance's lock expiry (:func:`~glance_tui.import_work.expired`)."""
        return item in (self.imports.running if self.imports else ()) and expired(item, self.files)

    def where(self, item: ImportItem) -> str:
        owner = self.hosts.owner(item.stage_host) if item.stage_host else None
        if owner:
            return f"on {owner}"
        if self.is_expired(item):
            return "expired (Glance's lock expiry passed, no staging file of it changed): not waited for"
        running = item in (self.imports.running if self.imports else ())
        staged_on = self.files.owner(item.image_id, method=item.method, age=item.age) if self.files is not None and running else None
        return f"staged on {staged_on}" if staged_on else "any node"

    def as_dict(self) -> dict[str, Any]:
        items = lambda rows: [{**i.as_dict(), "where": self.where(i), "expired": self.is_expired(i)} for i in rows]  # noqa: E731
        return {"imports": None if self.imports is None else {"running": items(self.imports.running), "staged": items(self.imports.staged),
                                                              "truncated": self.imports.truncated},
                "imports_error": self.imports_error or None,
                "connections": {n: None if c is None else [x.peer for x in c] for n, c in self.connections.items()},
                "connections_errors": self.errors}


async def cluster_work(ctx: "Context") -> ClusterWork:
    """One read of every part ``status`` shows (nodes in parallel)."""
    names = [n.name for n in ctx.config.nodes]
    sources = await lb_sources(ctx.config)
    errors: dict[str, str] = {}

    async def conns(node: str) -> tuple[Connection, ...] | None:
        if sources[1]:
            errors[node] = "; ".join(sources[1])
            return None
        try:
            return await node_connections(ctx, node, sources[0])
        except ValueError as exc:
            errors[node] = str(exc)
            return None

    async def imports() -> tuple[ImportWork | None, str]:
        try:
            return await read_import_work(ctx.cluster.db), ""
        except GlanceTuiError as exc:
            return None, exc.what

    (work, error), hosts, *found = await asyncio.gather(imports(), stage_hosts(ctx), *(conns(n) for n in names))
    files = await staged_files(ctx, hosts) if work is not None and work.running else None
    return ClusterWork(None if work is None else with_evidence(work, files), error, hosts, dict(zip(names, found)), errors, files)
