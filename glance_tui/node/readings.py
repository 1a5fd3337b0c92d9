"""The node's raw readings, parsed strictly: its processes, its listening sockets, its install time.

Each parser either returns exactly what the command printed or raises ``ValueError`` naming
the line it cannot read: an answer that is not the expected format makes the whole reading
unknown, never "nothing runs" and never "nothing listens".
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Proc:
    """One process as ``ps -eo pid=,ppid=,etimes=,comm=,args=`` shows it."""

    pid: int
    ppid: int
    started_at: float  # epoch seconds, on the node's clock
    comm: str
    args: str


@dataclass(frozen=True)
class Listener:
    """One listening TCP socket (``ss -Htlnp``): where, and the processes that hold it."""

    address: str  # "127.0.0.11", "0.0.0.0", "::", "*"
    port: int
    holders: tuple[tuple[int, str], ...]  # (pid, comm); empty when ss could not name them

    @property
    def where(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


_PS_FORMAT = "`PID PPID ETIMES COMM ARGS`"


def parse_processes(output: str) -> tuple[float, list[Proc]]:
    """``(node clock, every process)`` from the node's clock line and its ``ps`` lines."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the processes command printed nothing (expected the node's clock, then `ps` lines)")
    try:
        now = float(lines[0].strip())
    except ValueError:
        raise ValueError(f"the first line is not the node's clock in epoch seconds: {lines[0][:60]!r}") from None
    found: list[Proc] = []
    for line in lines[1:]:
        parts = line.split(None, 4)
        if len(parts) < 4 or not all(p.isdigit() for p in parts[:3]):
            raise ValueError(f"not a {_PS_FORMAT} line: {line[:60]!r}")
        pid, ppid, etimes = (int(p) for p in parts[:3])
        comm = parts[3]
        found.append(Proc(pid, ppid, now - etimes, comm, parts[4] if len(parts) > 4 else comm))
    return now, found


# LISTEN 0 128 127.0.0.1:9292 0.0.0.0:* users:(("uwsgi",pid=812,fd=3),("uwsgi",pid=813,fd=3))
_SS_LINE = re.compile(r"^LISTEN\s+\d+\s+\d+\s+(?P<local>\S+)\s+\S+(?:\s+(?P<rest>.*))?$")
_HOLDER = re.compile(r'\("(?P<comm>(?:[^"\\]|\\.)*)",pid=(?P<pid>\d+),fd=\d+\)')


def _split_address(local: str) -> tuple[str, int]:
    host, sep, port = local.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not an ADDRESS:PORT: {local[:60]!r}")
    host = host.split("%", 1)[0]  # 127.0.0.1%lo: bound to an interface
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host != "*":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"not an IP address: {host[:60]!r}") from None
    return host, int(port)


def parse_listeners(output: str) -> list[Listener]:
    """Every listening socket in ``ss -Htlnp`` output (no header); an empty answer = none."""
    found: list[Listener] = []
    for line in output.splitlines():
        if not line.strip():
            continue
        match = _SS_LINE.match(line.strip())
        if not match:
            raise ValueError(f"not an `ss -Htlnp` LISTEN line: {line.strip()[:80]!r}")
        address, port = _split_address(match.group("local"))
        rest = match.group("rest") or ""
        holders = tuple((int(h.group("pid")), h.group("comm")) for h in _HOLDER.finditer(rest))
        if rest and not holders and "users:" in rest:
            raise ValueError(f"cannot read the holders of {match.group('local')}: {rest[:80]!r}")
        found.append(Listener(address, port, holders))
    return found


def parse_epoch(output: str) -> float:
    """The installed-at command's answer: one number of epoch seconds."""
    text = output.strip().splitlines()[-1].strip() if output.strip() else ""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected epoch seconds, got {text[:60]!r}") from None
    if value <= 0:
        raise ValueError(f"expected epoch seconds, got {text[:60]!r}")
    return value


@dataclass(frozen=True)
class Connection:
    """One established TCP connection to the node's API port (``ss -Htn state established``)."""

    local: str  # "127.0.0.11:9292"
    peer_ip: str  # canonical (an IPv4-mapped IPv6 peer is its IPv4 address)
    peer_port: int

    @property
    def peer(self) -> str:
        return f"[{self.peer_ip}]:{self.peer_port}" if ":" in self.peer_ip else f"{self.peer_ip}:{self.peer_port}"

    @property
    def local_ip(self) -> str:
        """The local address, canonical (an IPv4-mapped IPv6 address is its IPv4 address)."""
        host, _ = _split_address(self.local)
        ip = ipaddress.ip_address(host)
        return str(getattr(ip, "ipv4_mapped", None) or ip)

    @property
    def local_port(self) -> int:
        return _split_address(self.local)[1]


# [ESTAB] RECV-Q SEND-Q LOCAL:PORT PEER:PORT [process]; the state column is absent with `state established`
_CONN_LINE = re.compile(r"^(?:(?P<state>[A-Z][A-Z0-9-]*)\s+)?\d+\s+\d+\s+(?P<local>\S+)\s+(?P<peer>\S+)(?:\s+.*)?$")


def parse_connections(output: str) -> list[Connection]:
    """Every established connection in ``ss -Htn`` output (no header); an empty answer = none.
    A line of another state, a wildcard peer or anything unreadable raises ``ValueError``."""
    found: list[Connection] = []
    for line in output.splitlines():
        if not line.strip():
            continue
        match = _CONN_LINE.match(line.strip())
        if not match:
            raise ValueError(f"not an `ss -Htn state established` line: {line.strip()[:80]!r}")
        if match.group("state") not in (None, "ESTAB"):
            raise ValueError(f"not an established connection: {line.strip()[:80]!r}")
        local, _ = _split_address(match.group("local"))
        peer, port = _split_address(match.group("peer"))
        if peer == "*" or port == 0:
            raise ValueError(f"not a connected peer: {match.group('peer')[:60]!r}")
        ip = ipaddress.ip_address(peer)
        mapped = getattr(ip, "ipv4_mapped", None)
        found.append(Connection(match.group("local"), str(mapped or ip), port))
    return found
