"""Every HAProxy instance and every Glance backend on it, seen and acted on as one.

Kolla-Ansible and OpenStack-Ansible run HAProxy on every controller (behind a keepalived VIP)
with an internal and an external Glance backend. A node is out of rotation only when it is
out of *every* backend on *every* instance, and its in-flight count is the sum over all of
them; a reading that misses one instance, one backend or one counter is unknown, never 0.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from glance_tui.adapters.haproxy import HAProxy, ServerStats, AdminProbe
from glance_tui.config import LoadBalancerConfig
from glance_tui.errors import AdapterError

OUT_STATES = ("DRAIN", "MAINT")


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
        if not self.complete:
            return None
        total = 0
        for row in self.rows.values():
            value = row.in_flight
            if value is None:
                return None
            total += value
        return total

    @property
    def in_rotation(self) -> bool | None:
        """True if any place routes to it; False only when every place was read and none does."""
        if any(r.in_rotation for r in self.rows.values()):
            return True
        return False if self.complete else None

    @property
    def admin_out(self) -> bool:
        """Every place read, and the server in DRAIN or MAINT in each."""
        return self.complete and bool(self.rows) and all(r.state in OUT_STATES for r in self.rows.values())

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

    def combined(self) -> ServerStats | None:
        """One ServerStats summing every place (None when the view is incomplete)."""
        if not self.complete or not self.rows:
            return None
        rows = list(self.rows.values())
        if len(rows) == 1:
            return rows[0]
        return ServerStats(
            server=self.server, status=self.status, state=self.state,
            scur=sum(r.scur for r in rows), qcur=sum(r.qcur for r in rows), rate=sum(r.rate for r in rows),
            check_status=",".join(sorted({r.check_status for r in rows if r.check_status})),
            weight=min(r.weight for r in rows), backend="+".join(sorted(self.rows)),
        )

    @property
    def rate(self) -> int | None:
        rates = [r.rate for r in self.rows.values()]
        return None if any(x is None for x in rates) else sum(rates)  # type: ignore[misc]


@dataclass(frozen=True)
class LBRead:
    """One read of every instance: rows per place, and the error of each unreachable instance."""

    backends: dict[str, dict[str, ServerStats]]  # place -> server -> row (only readable places)
    errors: dict[str, str]  # instance name -> one-line error
    places: tuple[str, ...]  # every configured place
    read_at: float = field(default_factory=time.time)

    def view(self, server: str) -> ServerView:
        rows, missing, unreachable = {}, [], []
        for p in self.places:
            lb = p.split("/", 1)[0]
            if lb in self.errors or p not in self.backends:
                unreachable.append(p)
            elif server in self.backends[p]:
                rows[p] = self.backends[p][server]
            else:
                missing.append(p)
        return ServerView(server, rows, tuple(missing), tuple(unreachable))

    def servers(self) -> set[str]:
        return {s for rows in self.backends.values() for s in rows}

    @property
    def error(self) -> str:
        return "; ".join(f"{lb}: {e}" for lb, e in sorted(self.errors.items()))


class LoadBalancers:
    """Async client over every configured HAProxy instance (one stats read per instance)."""

    def __init__(self, configs: list[LoadBalancerConfig], *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.configs = {c.name: c for c in configs}
        self.instances = {c.name: HAProxy(c, transport=transport) for c in configs}
        self.places = tuple(place(c.name, b) for c in configs for b in c.backends)

    async def aclose(self) -> None:
        await asyncio.gather(*(h.aclose() for h in self.instances.values()), return_exceptions=True)

    async def _read_one(self, name: str) -> dict[str, dict[str, ServerStats]]:
        haproxy = self.instances[name]
        out = {}
        for backend in self.configs[name].backends:
            out[place(name, backend)] = await haproxy.servers(backend)
        return out

    async def read(self) -> LBRead:
        """Read every instance concurrently; an instance that fails is named in ``errors``."""
        names = list(self.instances)
        results = await asyncio.gather(*(self._read_one(n) for n in names), return_exceptions=True)
        backends: dict[str, dict[str, ServerStats]] = {}
        errors: dict[str, str] = {}
        for name, result in zip(names, results):
            if isinstance(result, AdapterError):
                errors[name] = result.message
            elif isinstance(result, BaseException):
                errors[name] = f"{result.__class__.__name__}: {result}"
            else:
                backends.update(result)
        return LBRead(backends, errors, self.places)

    async def _act(self, server: str, action: str) -> None:
        """Apply ``action`` to ``server`` on every instance × backend; raise naming every failure."""

        async def one(name: str, backend: str) -> None:
            await self.instances[name].admin(server, action, backend)

        pairs = [(c.name, b) for c in self.configs.values() for b in c.backends]
        results = await asyncio.gather(*(one(n, b) for n, b in pairs), return_exceptions=True)
        failed = [(place(n, b), r) for (n, b), r in zip(pairs, results) if isinstance(r, BaseException)]
        if failed:
            detail = "; ".join(f"{p}: {r.message if isinstance(r, AdapterError) else r}" for p, r in failed)
            raise AdapterError(f"{action} {server} failed on {len(failed)} of {len(pairs)} backend(s): {detail}",
                               fix="check each load balancer's admin channel; the node may be out of rotation on some only")

    async def drain(self, server: str) -> None:
        await self._act(server, "drain")

    async def ready(self, server: str) -> None:
        await self._act(server, "ready")

    async def maint(self, server: str) -> None:
        await self._act(server, "maint")

    async def probe_admin(self) -> dict[str, AdminProbe]:
        names = list(self.instances)
        results = await asyncio.gather(*(self.instances[n].probe_admin() for n in names), return_exceptions=True)
        out = {}
        for name, result in zip(names, results):
            if isinstance(result, BaseException):
                msg = result.message if isinstance(result, AdapterError) else f"{result.__class__.__name__}: {result}"
                out[name] = AdminProbe(False, self.configs[name].admin, msg)
            else:
                out[name] = result
        return out
