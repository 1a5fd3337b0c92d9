"""Readings in, one verdict out: does Glance run on the node, which code, and why.

Glance is what the patterns recognise *and* whatever holds the node's API port, with the
process tree around them (up to the master, down to every worker). The node is stopped only
when all three readings say so — no process matches, nothing listens on the API port, its own
health URL refuses connections; when they disagree the node is unknown, and unknown blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Sequence

from glance_tui.node.facts import CODE_INSTALLED, CODE_MIXED, CODE_OLD, NodeFacts
from glance_tui.node.readings import Listener, Proc
from glance_tui.node.runtimes import code_runners

# Our own probes may run a service binary (``glance-api --version``); a service never does.
_PROBE_ARGS = (" --version", " --help")
# ps reports whole seconds of elapsed time: a process younger than the install by less than that
# rounding cannot be told apart, so it counts as older (safe side) — see starts.own_start.
ROUNDING = 1.0


@dataclass(frozen=True)
class Health:
    """The node's own health URL: ``refused`` (nothing there), an HTTP ``status``, or an ``error``."""

    url: str
    refused: bool = False
    status: int | None = None
    error: str = ""

    @property
    def text(self) -> str:
        if self.refused:
            return f"GET {self.url} refuses connections"
        if self.status is not None:
            return f"GET {self.url} answered {self.status}"
        return f"GET {self.url} failed ({self.error}), which is not a refusal"


@dataclass(frozen=True)
class Readings:
    """What was read on (and of) one node; a ``*_error`` means that reading is unknown."""

    node: str
    port: int
    procs: Sequence[Proc] = ()
    procs_error: str = ""
    clock: float | None = None
    listeners: Sequence[Listener] = ()  # on the API port and its address (or a wildcard)
    listeners_error: str = ""
    health: Health | None = None  # asked only when nothing matches and nothing listens
    installed_at: float | None = None
    installed_at_error: str = ""


@dataclass(frozen=True)
class Verdict:
    running: bool | None
    reason: str
    tree: tuple[Proc, ...] = ()
    code: str | None = None
    started_at: float | None = None
    stale: bool | None = None
    stale_error: str = ""


def recognised(procs: Sequence[Proc], patterns: Sequence[re.Pattern[str]]) -> list[Proc]:
    """The processes a pattern recognises (never our own ``--version`` probes)."""
    return [p for p in procs if any(rx.search(p.args) for rx in patterns) and not _probe(p)]


def _probe(p: Proc) -> bool:
    return any(a in f" {p.args} " for a in _PROBE_ARGS)


def served_tree(procs: Sequence[Proc], seeds: Sequence[int]) -> list[Proc]:
    """Every process serving with ``seeds``: up through parents of the same program (a uWSGI
    worker's master, an Apache child's parent; never pid 1), then all their descendants."""
    by_pid = {p.pid: p for p in procs}
    children: dict[int, list[Proc]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    roots = set()
    for pid in seeds:
        p = by_pid.get(pid)
        if p is None:
            continue
        while (parent := by_pid.get(p.ppid)) is not None and parent.pid > 1 and parent.comm == p.comm:
            p = parent
        roots.add(p.pid)
    tree: dict[int, Proc] = {}
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in tree or pid not in by_pid:
            continue
        tree[pid] = by_pid[pid]
        todo.extend(c.pid for c in children.get(pid, ()) if not _probe(c))
    return sorted(tree.values(), key=lambda p: p.pid)


def _holders_text(r: Readings) -> str:
    parts = []
    for listener in r.listeners:
        who = ", ".join(f"pid {pid} ({comm})" for pid, comm in sorted(listener.holders)) or "a process ss cannot name"
        parts.append(f"{listener.where} is served by {who}")
    return "; ".join(parts)


def judge(r: Readings, patterns: Sequence[re.Pattern[str]]) -> Verdict:
    """The one verdict from the readings (the load balancer's view is added by :func:`against_lb`)."""
    if r.procs_error:
        return Verdict(None, f"{r.node}: {r.procs_error}")
    if r.listeners_error:
        return Verdict(None, f"{r.node}: cannot read what listens on :{r.port}: {r.listeners_error}")
    matched = recognised(r.procs, patterns)
    holders = [pid for listener in r.listeners for pid, _comm in listener.holders]
    if not matched:
        if r.listeners:
            return Verdict(None, f"{r.node}: nothing matches process_patterns, but {_holders_text(r)}")
        if r.health is None or not r.health.refused:
            seen = r.health.text if r.health else "its health URL was not asked"
            return Verdict(None, f"{r.node}: nothing matches process_patterns and nothing listens on :{r.port}, but {seen}")
        return Verdict(False, f"{r.node}: nothing matches process_patterns, nothing listens on :{r.port}, {r.health.text}")
    tree = served_tree(r.procs, [p.pid for p in matched] + holders)
    pids = ", ".join(str(p.pid) for p in matched)
    reason = f"{r.node}: pid {pids} match process_patterns" + (f"; {_holders_text(r)}" if r.listeners else f"; nothing listens on :{r.port} yet")
    return _dated(Verdict(True, reason, tuple(tree)), r, holders)


def _dated(v: Verdict, r: Readings, holders: Sequence[int]) -> Verdict:
    """Which code the running tree serves: every process that runs Glance's code is dated."""
    in_tree = {p.pid for p in v.tree}
    unseen = sorted({pid for pid in holders if pid not in in_tree})
    nameless = [listener.where for listener in r.listeners if not listener.holders]
    runners = code_runners(v.tree)
    starts = [p.started_at for p in runners]
    oldest = min(starts, default=None)
    if unseen:
        return replace(v, started_at=oldest, stale_error=f"pid {', '.join(map(str, unseen))} holds :{r.port} but is not in the process list")
    if nameless:
        return replace(v, started_at=oldest, stale_error=f"cannot tell which processes hold {', '.join(nameless)}")
    if r.installed_at is None:
        return replace(v, started_at=oldest, stale_error=r.installed_at_error or "no install time")
    older = [p for p in runners if p.started_at <= r.installed_at + ROUNDING]
    code = CODE_INSTALLED if not older else CODE_OLD if len(older) == len(runners) else CODE_MIXED
    return replace(v, code=code, started_at=oldest, stale=bool(older))


def against_lb(f: NodeFacts, sessions: int | None, where: str = "the load balancer") -> NodeFacts:
    """A node read as stopped while the load balancer shows it serving sessions is unknown."""
    if f.running is not False or not sessions:
        return f
    why = f"{f.reason or f.name + ': stopped'}, but {where} shows {sessions} session(s) on it"
    return replace(f, running=None, running_error=why, reason=why, stale=None, stale_error=why)
