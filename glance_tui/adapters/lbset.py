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

from glance_tui.adapters.haproxy import AdminProbe, HAProxy, ServerStats, one_deadline, shown_url
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

    @property
    def complete(self) -> bool:
        return not self.missing and not self.unreachable

    @property
    def in_flight(self) -> int | None:
        """Sum of scur+qcur everywhere; None (unknown) when any place or counter is unknown."""
        return _sum([r.in_flight for r in self.rows.values()]) if self.complete else None

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
        return ServerView(server, rows, tuple(missing), tuple(unreachable))

    def servers(self) -> set[str]:
        return {s for rows in self.backends.values() for s in rows}

    @property
    def error(self) -> str:
        return "; ".join(f"{where}: {e}" for where, e in sorted(self.errors.items()))


class LoadBalancers:
    """Async client over every configured HAProxy instance (one stats read per instance, all at once).

    Each instance's whole read (stats page, plus the runtime API when a server's admin state is
    hidden behind DOWN) and each action has one deadline, that instance's ``timeout``.
    """

    def __init__(self, configs: list[LoadBalancerConfig], *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.configs = {c.name: c for c in configs}
        self.instances = {c.name: HAProxy(c, transport=transport) for c in configs}
        self.places = tuple(place(c.name, b) for c in configs for b in c.backends)

    async def aclose(self) -> None:
        await asyncio.gather(*(h.aclose() for h in self.instances.values()), return_exceptions=True)

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

    async def _read_one(self, name: str) -> dict[str, dict[str, ServerStats] | AdapterError]:
        found = await self._within(name, self.instances[name].read(self.configs[name].backends))
        return {place(name, b): r for b, r in found.items()}

    async def read(self) -> LBRead:
        """Read every instance concurrently; an instance that fails is named in ``errors``."""
        names = list(self.instances)
        results = await asyncio.gather(*(self._read_one(n) for n in names), return_exceptions=True)
        backends: dict[str, dict[str, ServerStats]] = {}
        errors: dict[str, str] = {}
        for name, result in zip(names, results):
            if isinstance(result, BaseException):
                errors[name] = _message(result)
                continue
            for where, found in result.items():
                if isinstance(found, AdapterError):
                    errors[where] = found.what
                else:
                    backends[where] = found
        return LBRead(backends, errors, self.places)

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
