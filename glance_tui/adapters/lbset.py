"""Every HAProxy instance and every Glance backend on it, seen and acted on as one.

Kolla-Ansible and OpenStack-Ansible run HAProxy on every controller (behind a keepalived VIP)
with an internal and an external Glance backend. A node is out of rotation only when it is
out of *every* backend on *every* instance, and its in-flight count is the sum over all of
them; a reading that misses one instance, one backend or one counter is unknown, never 0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from glance_tui.adapters.haproxy import AdminProbe, HAProxy, LBProcess, ServerStats, one_deadline, shown_url
from glance_tui.config import LoadBalancerConfig
from glance_tui.errors import AdapterError

OUT_STATES = ("DRAIN", "MAINT")
T = TypeVar("T")


def place(lb: str, backend: str) -> str:
    """The name of one backend on one instance, as shown to the operator: ``lb/backend``."""
    return f"{lb}/{backend}"


@dataclass(frozen=True)
class ServerView:
    """One server (a node's ``lb_server``) across every instance × backend."""

    server: str
    rows: dict[str, ServerStats]  # place -> the server's row there
    missing: tuple[str, ...] = ()  # places whose backend was read but has no row for the server
    unreachable: tuple[str, ...] = ()  # places whose instance could not be read
    # place -> why an old (reloaded) HAProxy process may still serve transfers there, unseen
    lingering: dict[str, str] = field(default_factory=dict)
    restarts_seen: int = 0  # HAProxy restarts seen so far by this client (see LBRead)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.unreachable

    @property
    def in_flight(self) -> int | None:
        """Sum of scur+qcur everywhere; None (unknown) when any place or counter is unknown, or
        when an old HAProxy process may still carry transfers that no stats page counts."""
        return None if self.lingering else self.visible_in_flight

    @property
    def visible_in_flight(self) -> int | None:
        """What the current HAProxy processes count (the old process of a reload not included)."""
        return _sum([r.in_flight for r in self.rows.values()]) if self.complete else None

    @property
    def unknown_only_from_reload(self) -> bool:
        """In-flight is unknown only because a reloaded instance's old process may still serve."""
        return bool(self.lingering) and self.visible_in_flight is not None

    @property
    def in_rotation(self) -> bool | None:
        """True if any place routes to it; False only when every place was read and none does."""
        seen = [r.in_rotation for r in self.rows.values()]
        if any(x is True for x in seen):
            return True
        return False if self.complete and None not in seen else None

    @property
    def admin_state(self) -> str:
        """READY / DRAIN / MAINT when every place agrees; MIXED when they differ; UNKNOWN when any is unknown."""
        states = {r.admin_state for r in self.rows.values()}
        if not self.complete or not states or "UNKNOWN" in states:
            return "UNKNOWN"
        return states.pop() if len(states) == 1 else "MIXED"

    @property
    def admin_out(self) -> bool:
        """Every place read, and an operator put the server in DRAIN or MAINT in each.

        A health check marking it DOWN is not enough: that changes the moment the check passes again.
        """
        return self.complete and bool(self.rows) and all(r.admin_state in OUT_STATES for r in self.rows.values())

    @property
    def state(self) -> str:
        """One word for the node list: the common state, or MIXED / UNKNOWN."""
        if not self.complete:
            return "UNKNOWN"
        states = {r.state for r in self.rows.values()}
        return states.pop() if len(states) == 1 else "MIXED"

    @property
    def status(self) -> str:
        """The raw statuses per place, for details."""
        parts = [f"{p}: {r.status}" for p, r in sorted(self.rows.items())]
        parts += [f"{p}: no row" for p in self.missing] + [f"{p}: unreachable" for p in self.unreachable]
        return "; ".join(parts)

    @property
    def problems(self) -> tuple[str, ...]:
        """Why something about this server is unknown, per place."""
        out = [f"{p}: {why}" for p, r in sorted(self.rows.items()) for why in r.problems]
        out += [f"{p}: no row for {self.server}" for p in self.missing] + [f"{p}: unreachable" for p in self.unreachable]
        out += [f"{p}: {why}" for p, why in sorted(self.lingering.items())]
        return tuple(out)

    def combined(self) -> ServerStats | None:
        """One ServerStats summing every place (None when the view is incomplete)."""
        if not self.complete or not self.rows:
            return None
        rows = list(self.rows.values())
        if len(rows) == 1:
            return rows[0]
        weights = [r.weight for r in rows]
        admin = self.admin_state
        if admin == "MIXED" and self.admin_out:
            admin = "DRAIN"  # DRAIN on some places, MAINT on others: out everywhere
        return ServerStats(
            server=self.server, status=self.status, state=self.state,
            scur=_sum([r.scur for r in rows]), qcur=_sum([r.qcur for r in rows]), rate=_sum([r.rate for r in rows]),
            check_status=",".join(sorted({r.check_status for r in rows if r.check_status})),
            weight=None if None in weights else min(weights),  # type: ignore[type-var]
            backend="+".join(sorted(self.rows)), admin_state=admin, problems=self.problems,
        )

    @property
    def rate(self) -> int | None:
        return _sum([r.rate for r in self.rows.values()])


def _sum(values: list[int | None]) -> int | None:
    """The sum, or None when any value is unknown."""
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class LBRead:
    """One read of every instance: rows per place, and the error of each instance or place that failed."""

    backends: dict[str, dict[str, ServerStats]]  # place -> server -> row (only readable places)
    errors: dict[str, str]  # instance name (unreachable) or place (backend absent) -> one-line error
    places: tuple[str, ...]  # every configured place
    read_at: float = field(default_factory=time.time)
    processes: dict[str, LBProcess] = field(default_factory=dict)  # instance -> the process that answered
    restarts: tuple["LBRestart", ...] = ()  # every restart this client has seen so far, oldest first

    @property
    def restarts_seen(self) -> int:
        """How many restarts so far: a drain's quiet period starts again when it grows."""
        return len(self.restarts)
    lingering: dict[str, str] = field(default_factory=dict)  # instance -> why its old process may still serve

    def view(self, server: str) -> ServerView:
        rows, missing, unreachable = {}, [], []
        for p in self.places:
            lb = p.split("/", 1)[0]
            if lb in self.errors:
                unreachable.append(p)
            elif p not in self.backends:
                missing.append(p)  # the instance answered but has no such backend
            elif server in self.backends[p]:
                rows[p] = self.backends[p][server]
            else:
                missing.append(p)
        lingering = {p: self.lingering[p.split("/", 1)[0]] for p in rows if p.split("/", 1)[0] in self.lingering}
        return ServerView(server, rows, tuple(missing), tuple(unreachable), lingering, self.restarts_seen)

    def servers(self) -> set[str]:
        return {s for rows in self.backends.values() for s in rows}

    @property
    def error(self) -> str:
        return "; ".join(f"{where}: {e}" for where, e in sorted(self.errors.items()))


@dataclass(frozen=True)
class LBRestart:
    """An instance answered from another HAProxy process than the last time it was read."""

    lb: str
    old: LBProcess
    new: LBProcess

    def describe(self) -> str:
        return f"{self.lb} restarted (HAProxy pid {self.old.pid} → {self.new.pid}, up {self.new.uptime:.0f}s)"


class LoadBalancers:
    """Async client over every configured HAProxy instance (one stats read per instance, all at once).

    Each instance's whole read (stats page, plus the runtime API when a server's admin state is
    hidden behind DOWN) and each action has one deadline, that instance's ``timeout``.
    """

    def __init__(self, configs: list[LoadBalancerConfig], *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.configs = {c.name: c for c in configs}
        self.instances = {c.name: HAProxy(c, transport=transport) for c in configs}
        self.places = tuple(place(c.name, b) for c in configs for b in c.backends)
        self._process: dict[str, LBProcess] = {}  # the process each instance answered from last
        self._restarts: list[LBRestart] = []

    async def aclose(self) -> None:
        await asyncio.gather(*(h.aclose() for h in self.instances.values()), return_exceptions=True)

    @property
    def restarts_seen(self) -> int:
        return len(self._restarts)

    async def _within(self, name: str, work: Awaitable[T]) -> T:
        """``work`` under the instance's deadline (its ``timeout``), whatever requests it makes."""
        timeout = self.configs[name].timeout
        try:
            with one_deadline(timeout) as deadline:  # the requests report their own overrun...
                async with asyncio.timeout_at(deadline + 0.2):  # ...this is only the backstop
                    return await work
        except TimeoutError:
            raise AdapterError(f"HAProxy did not answer completely within {timeout:g}s", where=shown_url(self.configs[name].stats_url),
                               fix="check that this HAProxy is up and reachable, or raise its timeout") from None

    async def _read_one(self, name: str) -> tuple[dict[str, dict[str, ServerStats] | AdapterError], LBProcess]:
        """The instance's rows and the process that answered, read together under its one deadline
        (a reload between the two is seen at the next read)."""
        haproxy = self.instances[name]

        async def both() -> tuple[dict[str, dict[str, ServerStats] | AdapterError], LBProcess]:
            rows, process = await asyncio.gather(haproxy.read(self.configs[name].backends), haproxy.process(), return_exceptions=True)
            for outcome in (rows, process):  # the stats page's own error first: it says the most
                if isinstance(outcome, BaseException):
                    raise outcome
            return rows, process  # type: ignore[return-value]

        found, process = await self._within(name, both())
        return {place(name, b): r for b, r in found.items()}, process

    def _track(self, name: str, process: LBProcess) -> str | None:
        """Compare with the last process seen (recording a restart); say why its old process may still serve."""
        last = self._process.get(name)
        self._process[name] = process
        if last is not None and not last.same_process(process):
            self._restarts.append(LBRestart(name, last, process))
        limit = self.configs[name].hard_stop_after
        seen = [r for r in self._restarts if r.lb == name and r.new.same_process(process)]
        if limit is not None and process.uptime < limit:
            # a young process may have replaced one that still finishes its transfers (hard-stop-after
            # bounds that), whether or not this client saw the old one
            return (f"HAProxy restarted {process.uptime:.0f}s ago (pid {process.pid}): its old process may still serve "
                             f"transfers for up to {limit:g}s (hard_stop_after), which no stats page counts")
        if limit is None and seen:
            return (f"HAProxy restarted (pid {seen[-1].old.pid} → {process.pid}): its old process may still serve "
                             "transfers no stats page counts; set this instance's hard_stop_after to HAProxy's hard-stop-after")
        return None

    async def read(self) -> LBRead:
        """Read every instance concurrently; an instance that fails is named in ``errors``."""
        names = list(self.instances)
        results = await asyncio.gather(*(self._read_one(n) for n in names), return_exceptions=True)
        backends: dict[str, dict[str, ServerStats]] = {}
        errors: dict[str, str] = {}
        processes: dict[str, LBProcess] = {}
        lingering: dict[str, str] = {}
        for name, result in zip(names, results):
            if isinstance(result, BaseException):
                errors[name] = _message(result)
                continue
            found_rows, process = result
            processes[name] = process
            why = self._track(name, process)
            if why:
                lingering[name] = why
            for where, found in found_rows.items():
                if isinstance(found, AdapterError):
                    errors[where] = found.what
                else:
                    backends[where] = found
        return LBRead(backends, errors, self.places, processes=processes, restarts=tuple(self._restarts), lingering=lingering)

    async def _act(self, server: str, action: str) -> None:
        """Apply ``action`` to ``server`` on every instance × backend at once; raise naming every failure."""
        pairs = [(c.name, b) for c in self.configs.values() for b in c.backends]
        results = await asyncio.gather(
            *(self._within(n, self.instances[n].admin(server, action, b)) for n, b in pairs),
            return_exceptions=True,
        )
        failed = [(place(n, b), r) for (n, b), r in zip(pairs, results) if isinstance(r, BaseException)]
        if failed:
            done = [place(n, b) for (n, b), r in zip(pairs, results) if not isinstance(r, BaseException)]
            detail = "; ".join(f"{p}: {r.what if isinstance(r, AdapterError) else _message(r)}" for p, r in failed)
            applied = f"; applied on {', '.join(done)}" if done else "; applied nowhere"
            raise AdapterError(f"{action} {server} failed on {len(failed)} of {len(pairs)} place(s): {detail}{applied}",
                               fix="check each load balancer's admin channel; the node may be out of rotation on some only")

    async def drain(self, server: str) -> None:
        await self._act(server, "drain")

    async def ready(self, server: str) -> None:
        await self._act(server, "ready")

    async def maint(self, server: str) -> None:
        await self._act(server, "maint")

    async def probe_admin(self) -> dict[str, AdminProbe]:
        names = list(self.instances)
        results = await asyncio.gather(
            *(self._within(n, self.instances[n].probe_admin()) for n in names), return_exceptions=True
        )
        out = {}
        for name, result in zip(names, results):
            out[name] = AdminProbe(False, self.configs[name].admin, _message(result)) if isinstance(result, BaseException) else result
        return out


def _message(exc: BaseException) -> str:
    """One line for the operator: an AdapterError's message, else the exception's type and text."""
    if isinstance(exc, AdapterError):
        return exc.message
    return f"{exc.__class__.__name__}: {str(exc)[:200]}"
