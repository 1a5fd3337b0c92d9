"""One database: the NEW NODE's ``glance-manage`` must change the database the tool backed up.

Backup, the binary-log gate and the schema reads use ``[database]`` of the tool's config;
``expand``, ``migrate`` and ``contract`` change whatever the NEW NODE's own Glance config names
(a Kolla ``--config-dir``, another schema, another server). So before each, the node's config is
read (the ``read_config`` template: it must print what glance-manage reads; several files
concatenated are read in order, the last value winning as in oslo.config) and its ``[database]
connection`` must name the same server and schema. The host is resolved *on the node*
(``getent ahosts``), as glance-manage resolves it there. Addresses are compared as sets; a
loopback address means "this machine" on each side, so it is the same server only when both
sides are loopback on the same machine (the same kernel ``boot_id``). Anything unread,
unparsable or unresolvable is unknown and blocks. The password is never shown.
"""

from __future__ import annotations

import asyncio
import configparser
import ipaddress
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from glance_tui.db_clients import normal_ip, resolve_here
from glance_tui.errors import GlanceTuiError
from glance_tui.secrets import MIN_LENGTH, register

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.context import Context

BOOT_ID = "/proc/sys/kernel/random/boot_id"


class Unknown(ValueError):
    """The node's database cannot be told (its message says why)."""


@dataclass(frozen=True)
class DbTarget:
    scheme: str
    user: str
    host: str
    port: int
    schema: str
    socket: str = ""

    def shown(self) -> str:
        """The URL without its password."""
        where = f"unix_socket={self.socket}" if self.socket else f"{self.host}:{self.port}"
        return f"{self.scheme}://{self.user}@{where}/{self.schema}"


def parse_connection(conf_text: str) -> DbTarget:
    """``[database] connection`` of a glance config → :class:`DbTarget`; :class:`Unknown` otherwise."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(conf_text)
    except configparser.Error as exc:
        raise Unknown(f"its Glance config cannot be parsed ({exc.__class__.__name__})") from None
    url = parser.get("database", "connection", fallback="").strip()
    if not url:
        raise Unknown("its Glance config has no [database] connection")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Unknown("its [database] connection is not a valid URL") from None
    if parts.password and len(unquote(parts.password)) >= MIN_LENGTH:
        # A shorter one ("glance") would turn every word holding it into ******** — node names in init's config,
        # the journal, the screen; it is hidden where it stands, in the URL (``redact``'s user:password@ rule).
        register(unquote(parts.password))
    if not parts.scheme.startswith("mysql"):
        raise Unknown(f"its [database] connection is a {parts.scheme or '?'}:// database, not MySQL/MariaDB")
    query = parse_qs(parts.query)
    socket_path = (query.get("unix_socket") or [""])[0]
    schema = unquote(parts.path.lstrip("/"))
    if not schema:
        raise Unknown("its [database] connection names no schema")
    return DbTarget(parts.scheme, unquote(parts.username or ""), parts.hostname or "localhost", port or 3306, schema, socket_path)


def _loopback(ips: set[str]) -> bool:
    return any(ipaddress.ip_address(ip).is_loopback for ip in ips)


async def _node_text(ctx: "Context", node: str, command: str, what: str) -> str:
    try:
        result = await ctx.run_text(node, command)
    except GlanceTuiError as exc:
        raise Unknown(f"cannot {what} on {node}: {exc.what}") from None
    if not result.ok:
        raise Unknown(f"cannot {what} on {node}: `{command}` exited {result.exit_status} ({' | '.join(result.tail(1))})")
    return result.stdout


async def resolve_on_node(ctx: "Context", node: str, host: str) -> set[str]:
    """The addresses ``host`` resolves to on ``node`` (``getent ahosts``, the node's own resolver)."""
    if (ip := normal_ip(host)) is not None:
        return {ip}
    command = f"getent ahosts {shlex.quote(host)}"
    try:
        result = await ctx.run_text(node, command)
    except GlanceTuiError as exc:
        raise Unknown(f"cannot resolve {host!r} on {node}: {exc.what}") from None
    if result.exit_status not in (0, 2):  # getent: 2 = no such name
        raise Unknown(f"cannot resolve {host!r} on {node}: `{command}` exited {result.exit_status} ({' | '.join(result.tail(1))})")
    ips = {a for line in result.stdout.splitlines() if line.split() and (a := normal_ip(line.split()[0])) is not None}
    if not ips:
        raise Unknown(f"{host!r} resolves to no address on {node}")
    return ips


async def same_machine(ctx: "Context", node: str) -> bool:
    """The node is this machine (the same running kernel): loopback means the same there and here."""
    theirs = (await _node_text(ctx, node, f"cat {BOOT_ID}", "read the boot id")).strip()
    try:
        with open(BOOT_ID, encoding="ascii") as fh:
            mine = fh.read().strip()
    except OSError as exc:
        raise Unknown(f"cannot read this machine's boot id ({exc.strerror})") from None
    return bool(theirs) and theirs == mine


async def compare(ctx: "Context", node: str) -> tuple[str, str]:
    """("", summary) when the node's glance-manage uses the tool's database, else (reason, fix)."""
    cfg = ctx.config.database
    tool = f"[database] {cfg.user}@{cfg.host}:{cfg.port}/{cfg.schema_name}"
    cmd = ctx.commands(node).read_config()
    fix_read = f"make the read_config command print the config glance-manage uses on {node} (now: `{cmd.command}`), then re-check"
    try:
        result = await ctx.run(cmd)
        if not result.ok:
            raise Unknown(f"`{cmd.command}` exited {result.exit_status} ({' | '.join(result.tail(1))})")
        target = parse_connection(result.stdout)
    except GlanceTuiError as exc:
        return f"cannot read {node}'s Glance config: {exc.what}", fix_read
    except Unknown as exc:
        return f"cannot tell which database {node}'s glance-manage changes: {exc}", fix_read
    theirs = f"{node}'s [database] connection {target.shown()}"
    fix = (f"make {node}'s [database] connection and the tool's [database] name the same server and schema "
           "(the one that was backed up); expand/migrate/contract change the database the node names")
    if target.socket:
        return f"{theirs} uses a unix socket: which server that is cannot be compared with {tool}", fix
    if target.schema != cfg.schema_name or target.port != cfg.port:
        return f"{theirs} is not the tool's {tool}", fix
    try:
        node_ips, tool_ips = await asyncio.gather(resolve_on_node(ctx, node, target.host), resolve_here(cfg.host))
        if not tool_ips:
            raise Unknown(f"the tool's database.host {cfg.host!r} does not resolve here")
        if _loopback(node_ips) or _loopback(tool_ips):
            same = _loopback(node_ips) and _loopback(tool_ips) and bool(node_ips & tool_ips) and await same_machine(ctx, node)
            why = "loopback on both sides of the same machine" if same else "a loopback address names a different machine on each side"
        else:
            same = bool(node_ips & tool_ips)
            why = f"both resolve to {', '.join(sorted(node_ips & tool_ips))}" if same else ""
    except Unknown as exc:
        return f"cannot compare {theirs} with {tool}: {exc}", fix
    if not same:
        detail = f"{target.host} → {', '.join(sorted(node_ips))} on {node}; {cfg.host} → {', '.join(sorted(tool_ips))} here"
        return f"{theirs} is not the tool's {tool} ({why or detail})", fix
    return "", f"{node}'s glance-manage uses {target.shown()}: the tool's database ({why})"
