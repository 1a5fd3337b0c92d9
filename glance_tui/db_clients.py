"""Every client of the Glance schema must be known before the old schema is removed.

``db contract`` breaks every Glance still running old code — not only the configured nodes: a
server listed in ``exclude_servers``, a leftover glance-api on a retired host, a second region
sharing the schema, a script. The database server knows them all: its PROCESSLIST lists each
connection whose current schema is ours, with the client host. Each such host must be a
configured node (its ``ssh_host``, ``api_url`` host or ``db_client_host``, or an address one of
them resolves to here) — at contract, one that runs the target code — or be listed in
``database.known_clients``. The tool's own connections are left out by connection id, never by
host (the bastion may also be a real client). Without the PROCESS privilege the server shows an
account only its own connections, so the answer is unknown and blocks, with the GRANT as the fix.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from glance_tui.adapters.database import DbClient
from glance_tui.errors import GlanceTuiError

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.context import Context

RESOLVE_TIMEOUT = 3.0


def normal_ip(text: str) -> str | None:
    """The canonical form of an IP address (``::ffff:10.0.0.1`` → ``10.0.0.1``), None if it is not one."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


async def resolve_here(host: str, timeout: float = RESOLVE_TIMEOUT) -> set[str]:
    """The addresses ``host`` resolves to on this machine (itself for an IP); empty when it does not resolve."""
    ip = normal_ip(host)
    if ip is not None:
        return {ip}
    try:
        infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(host, None, proto=socket.IPPROTO_TCP), timeout)
    except (OSError, asyncio.TimeoutError, UnicodeError):
        return set()
    return {a for info in infos if (a := normal_ip(str(info[4][0]))) is not None}


@dataclass
class Known:
    """One known client: a node (``node`` set) or an entry of ``database.known_clients``."""

    label: str
    names: set[str]
    node: str | None = None
    ips: set[str] = field(default_factory=set)

    def matches(self, host: str, host_ips: set[str]) -> bool:
        return host.lower() in self.names or bool(host_ips & self.ips)


async def known_clients(ctx: "Context") -> list[Known]:
    """The configured nodes, then ``database.known_clients``, each with the addresses its names resolve to."""
    known = []
    for n in ctx.config.nodes:
        names = {n.ssh_host, urlsplit(n.api_url).hostname or "", *([n.db_client_host] if n.db_client_host else [])}
        known.append(Known(f"node {n.name}", {x.lower() for x in names if x}, node=n.name))
    known += [Known(f"known client {h}", {h.lower()}) for h in ctx.config.database.known_clients]
    for k in known:
        resolved = await asyncio.gather(*(resolve_here(name) for name in sorted(k.names)))
        k.ips = set().union(*resolved)
    return known


@dataclass(frozen=True)
class ClientReport:
    unknown: list[str]  # "host (n connection(s) as user)" not matching any known client
    old_code: list[str]  # clients that are nodes not running the target code (contract only)
    seen: int  # connections counted


def _describe(host: str, conns: list[DbClient]) -> str:
    users = ", ".join(sorted({c.user for c in conns}))
    return f"{host} ({len(conns)} connection(s) as {users}; ids {', '.join(str(c.id) for c in conns[:5])})"


async def judge(ctx: "Context", clients: list[DbClient], *, contract: bool) -> ClientReport:
    """Sort the schema's clients into known, unknown and (at contract) nodes still on old code."""
    by_host: dict[str, list[DbClient]] = defaultdict(list)
    for c in clients:
        by_host[c.host].append(c)
    known = await known_clients(ctx)
    facts = await ctx.node_facts() if contract else {}
    target = ctx.config.policy.target_release
    unknown, old = [], []
    for host, conns in sorted(by_host.items()):
        host_ips = await resolve_here(host)
        match = next((k for k in known if k.matches(host, host_ips)), None)
        if match is None:
            unknown.append(_describe(host, conns))
        elif contract and match.node is not None:
            f = facts.get(match.node)
            if f is None or not f.on(target):
                state = f.stale_text or f.version or f.error or "?" if f else "not probed"
                old.append(f"{_describe(host, conns)} is {match.node}, not (known to be) running {target}: {state}")
    return ClientReport(unknown, old, len(clients))


async def check_clients(ctx: "Context", *, contract: bool) -> tuple[str, str]:
    """("", summary) when every client is known, else (reason, fix): the body of the db-clients gates."""
    db = ctx.cluster.db
    schema = ctx.config.database.schema_name
    try:
        if not await db.sees_every_client():
            account = await db.account()
            return (f"cannot see every client of schema {schema!r}: {account} lacks the PROCESS privilege "
                    "(without it the server lists only that account's own connections)",
                    f"as a database admin run: GRANT PROCESS ON *.* TO {account}")
        clients = await db.schema_clients(ctx.own_db_connections())
    except GlanceTuiError as exc:
        return f"cannot read the clients of schema {schema!r}: {exc.what}", exc.fix or "check the database connection"
    report = await judge(ctx, clients, contract=contract)
    if report.unknown:
        return (f"unknown client(s) of schema {schema!r}: {'; '.join(report.unknown)}",
                "each must be a configured node (ssh_host, api_url host or db_client_host) or be listed in "
                "database.known_clients; a leftover glance-api or another region's Glance must be stopped or "
                "upgraded first — contract removes the schema its old code uses")
    if report.old_code:
        return (f"client(s) of schema {schema!r} still on old code: {'; '.join(report.old_code)}",
                "upgrade and restart those nodes (step 7) before contract")
    return "", f"{report.seen} connection(s) to {schema!r}, every one from a known client"
