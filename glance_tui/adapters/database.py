"""The Glance database as the upgrade sees it: version, grants, binary-log settings, alembic heads.

One aiomysql connection (autocommit) serialised by a lock; every connect and query is bounded
by the configured timeouts. A query that times out is killed server-side and its connection
dropped, so a stuck statement never blocks the engine or lingers on the server. A connect
that timed out is the answer for the queries queued behind it too (for :data:`RETRY_AFTER`
seconds): a silent server costs ``connect_timeout`` once, not once per query of a round.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import aiomysql
import pymysql

from glance_tui.config import DatabaseConfig
from glance_tui.errors import AdapterError
from glance_tui.secrets import redact

RETRY_AFTER = 2.0  # as for SSH: after a connect timed out, the next ones within this long share its answer


@dataclass(frozen=True)
class DatabaseFacts:
    server_version: str
    flavour: str  # "MariaDB" | "MySQL"
    version: tuple[int, int, int]
    grants: list[str]
    has_super: bool
    log_bin: bool
    log_bin_trust_function_creators: bool
    alembic_heads: list[str]  # [] when alembic_version does not exist
    tables: int


_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_GLOBAL_GRANT = re.compile(r"^GRANT\s+(?P<privs>.+?)\s+ON\s+\*\.\*\s+TO\s", re.IGNORECASE)


def parse_server_version(version: str, comment: str = "") -> tuple[str, tuple[int, int, int]]:
    """Flavour and (major, minor, patch) from ``VERSION()`` and ``@@version_comment``."""
    text = version.removeprefix("5.5.5-")  # MariaDB's old replication-compatibility prefix
    flavour = "MariaDB" if "mariadb" in f"{text} {comment}".lower() else "MySQL"
    match = _VERSION.search(text)
    numbers = tuple(int(g) for g in match.groups()) if match else (0, 0, 0)
    return flavour, numbers  # type: ignore[return-value]


def grants_have_super(grants: list[str]) -> bool:
    """True if a global grant includes SUPER or ALL PRIVILEGES."""
    return grants_have(grants, "SUPER")


def _flag(value: Any) -> bool:
    return str(value).strip().upper() in {"1", "ON", "TRUE"}


class Database:
    """Async access to the Glance schema with the Glance user's own credentials."""

    def __init__(self, cfg: DatabaseConfig) -> None:
        self.cfg = cfg
        self.where = f"database {cfg.host}:{cfg.port}"
        self._conn: aiomysql.Connection | None = None
        self._lock = asyncio.Lock()
        self._timed_out: tuple[float, AdapterError] | None = None  # (when, the error) of the last connect that timed out

    async def __aenter__(self) -> "Database":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ connection

    def _error(self, exc: BaseException, doing: str) -> AdapterError:
        cfg = self.cfg
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        detail = redact(str(exc.args[1]) if len(exc.args) > 1 else str(exc) or exc.__class__.__name__)
        if code in (1045, 1698):
            return AdapterError(f"access denied for user {cfg.user!r} while {doing}", where=self.where,
                                fix=f"check the password ({cfg.password.source}) and that {cfg.user!r} may connect from this host")
        if code == 1044:
            return AdapterError(f"user {cfg.user!r} has no access to schema {cfg.schema_name!r}", where=self.where,
                                fix=f"GRANT ALL PRIVILEGES ON `{cfg.schema_name}`.* TO the Glance user")
        if code == 1049:
            return AdapterError(f"unknown database {cfg.schema_name!r}", where=self.where,
                                fix="check database.schema in the config (the schema Glance's [database] connection uses)")
        if code in (2002, 2003, 2005, 2006, 2013):
            return AdapterError(f"cannot reach the database server while {doing} ({detail})", where=self.where,
                                fix="check database.host/port, that the server runs, and firewalls")
        return AdapterError(f"{doing} failed: {detail}", where=self.where, fix="see the server's message above")

    async def _connect(self, timeout: float | None = None) -> aiomysql.Connection:
        """The open connection, or a new one within ``timeout`` (default ``connect_timeout``).

        The Connection is built here rather than by ``aiomysql.connect`` so that a connect cut by a
        timeout (a server that accepts and never greets) closes its socket instead of leaking it.
        """
        if self._conn is not None and not self._conn.closed:
            return self._conn
        now = asyncio.get_running_loop().time()
        if self._timed_out is not None and now - self._timed_out[0] < RETRY_AFTER:
            raise self._timed_out[1]
        cfg = self.cfg
        limit = cfg.connect_timeout if timeout is None else min(timeout, cfg.connect_timeout)
        conn = aiomysql.Connection(
            host=cfg.host, port=cfg.port, user=cfg.user, password=cfg.password.reveal(), db=cfg.schema_name,
            connect_timeout=limit, autocommit=True, charset="utf8mb4",
        )
        try:
            async with asyncio.timeout(limit):  # TCP, the server's greeting and the login together
                await conn._connect()
        except TimeoutError:
            conn.close()
            error = AdapterError(f"the database server did not complete the connection (TCP, greeting and login) within {limit:g}s",
                                 where=self.where, fix="check database.host/port, that MariaDB/MySQL answers there, and the network; "
                                                       "raise database.connect_timeout if the server is slow")
            self._timed_out = (asyncio.get_running_loop().time(), error)
            raise error from None
        except (pymysql.err.MySQLError, OSError) as exc:
            conn.close()
            raise self._error(exc, "connecting") from None
        except BaseException:
            conn.close()
            raise
        self._conn, self._timed_out = conn, None
        return conn

    async def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; connecting, executing and fetching together take at most ``query_timeout``."""
        verb = sql.split()[0]
        limit = self.cfg.query_timeout
        async with self._lock:
            deadline = asyncio.get_running_loop().time() + limit
            conn = await self._connect(limit)
            try:
                async with conn.cursor() as cur:
                    left = max(deadline - asyncio.get_running_loop().time(), 0.001)
                    await asyncio.wait_for(cur.execute(sql, args or None), timeout=left)
                    return list(await cur.fetchall())  # a buffered cursor: the rows are already here
            except asyncio.TimeoutError:
                await self._abandon(conn)
                raise AdapterError(f"query did not finish within {limit:g}s (connecting included): {verb} …",
                                   where=self.where, fix="check the server's load and locks (SHOW PROCESSLIST); raise database.query_timeout if needed") from None
            except (pymysql.err.MySQLError, OSError) as exc:
                if isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError)):
                    await self._abandon(conn, kill=False)
                raise self._error(exc, f"running {verb}") from None
            except BaseException:  # cancelled mid-statement: the connection's state is unknown
                await self._abandon(conn, kill=False)
                raise

    async def _abandon(self, conn: aiomysql.Connection, *, kill: bool = True) -> None:
        """Drop a connection in an unknown state; kill its server thread so the statement stops.

        The kill (a fresh connection and ``KILL``) is bounded by ``connect_timeout`` as a whole.
        """
        thread_id = conn.server_thread_id[0] if kill and conn.server_thread_id else None
        conn.close()
        self._conn = None
        if thread_id is None:
            return
        try:
            await asyncio.wait_for(self._kill(thread_id), timeout=self.cfg.connect_timeout)
        except (asyncio.TimeoutError, pymysql.err.MySQLError, OSError, AdapterError):
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def _kill(self, thread_id: int) -> None:
        killer = await self._connect()
        async with killer.cursor() as cur:
            await cur.execute(f"KILL {int(thread_id)}")

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------ facts

    async def table_exists(self, name: str) -> bool:
        rows = await self._query(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s", (name,)
        )
        return bool(rows and rows[0][0])

    async def alembic_heads(self) -> list[str]:
        if not await self.table_exists("alembic_version"):
            return []
        rows = await self._query("SELECT version_num FROM alembic_version ORDER BY version_num")
        return [str(r[0]) for r in rows]

    async def facts(self) -> DatabaseFacts:
        version, comment, log_bin, trust = (await self._query(
            "SELECT VERSION(), @@version_comment, @@log_bin, @@log_bin_trust_function_creators"
        ))[0]
        grants = [str(r[0]) for r in await self._query("SHOW GRANTS")]
        tables = (await self._query("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()"))[0][0]
        flavour, numbers = parse_server_version(str(version), str(comment))
        return DatabaseFacts(
            server_version=str(version), flavour=flavour, version=numbers, grants=grants,
            has_super=grants_have_super(grants), log_bin=_flag(log_bin), log_bin_trust_function_creators=_flag(trust),
            alembic_heads=await self.alembic_heads(), tables=int(tables),
        )

    async def set_log_bin_trust_function_creators(self, value: bool) -> bool:
        """Set the global variable (needs SUPER); return the OLD value so it can be restored."""
        old = _flag((await self._query("SELECT @@GLOBAL.log_bin_trust_function_creators"))[0][0])
        try:
            await self._query(f"SET GLOBAL log_bin_trust_function_creators = {1 if value else 0}")
        except AdapterError as exc:
            if "SUPER" in exc.what.upper() or "denied" in exc.what.lower():
                raise AdapterError(
                    f"user {self.cfg.user!r} may not set log_bin_trust_function_creators (needs SUPER)",
                    where=self.where,
                    fix=f"have a DBA run SET GLOBAL log_bin_trust_function_creators = {1 if value else 0}; "
                        f"or GRANT SUPER ON *.* TO the Glance user for the upgrade",
                ) from None
            raise
        return old

    # ------------------------------------------------------------ for the cloud lock (its own Database)

    async def row(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        """The first row of one statement (None when there is none), bounded by ``query_timeout``."""
        rows = await self._query(sql, args)
        return tuple(rows[0]) if rows else None

    async def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Every row of one read-only statement, bounded by ``query_timeout`` (Glance's import work)."""
        return await self._query(sql, args)

    async def kill_connection(self, thread_id: int) -> None:
        """``KILL`` one of the account's own connections (releases its named locks at once); a
        thread that is already gone is fine."""
        try:
            await self._query(f"KILL {int(thread_id)}")
        except AdapterError as exc:
            if "unknown thread" not in exc.what.lower():
                raise

    # ------------------------------------------------------------ clients of the schema

    async def account(self) -> str:
        """``CURRENT_USER()`` as ``'user'@'host'``: the account a GRANT must name."""
        current = str((await self._query("SELECT CURRENT_USER()"))[0][0])
        user, _, host = current.rpartition("@")
        return f"{sql_quote(user)}@{sql_quote(host)}"

    async def sees_every_client(self) -> bool:
        """True when the account holds PROCESS (or ALL) globally: without it PROCESSLIST shows only
        the account's own threads, so another account's client would be invisible."""
        grants = [str(r[0]) for r in await self._query("SHOW GRANTS")]
        return grants_have(grants, "PROCESS")

    async def schema_clients(self, own: frozenset[int] | set[int] = frozenset()) -> list["DbClient"]:
        """Every connection whose current schema is ours, except this adapter's own (and ``own``)."""
        rows = await self._query(
            "SELECT ID, USER, HOST, COMMAND, TIME, CONNECTION_ID() FROM information_schema.PROCESSLIST WHERE DB = %s",
            (self.cfg.schema_name,),
        )
        clients = []
        for ident, user, host, command, seconds, me in rows:
            if int(ident) == int(me) or int(ident) in own:
                continue
            clients.append(DbClient(int(ident), str(user or ""), client_host(str(host or "")), str(command or ""),
                                    int(seconds) if seconds is not None else None))
        return sorted(clients, key=lambda c: (c.host, c.id))


@dataclass(frozen=True)
class DbClient:
    """One connection to the Glance schema as the server sees it (host without the port)."""

    id: int
    user: str
    host: str
    command: str
    seconds: int | None


def client_host(host: str) -> str:
    """PROCESSLIST's ``HOST`` without the client port: ``10.0.0.5:41234`` → ``10.0.0.5``,
    ``[::1]:5`` or ``::1:5`` → ``::1``; ``localhost`` (a socket) stays."""
    text = host.strip()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    head, sep, tail = text.rpartition(":")
    return head if sep and tail.isdigit() and head else text


def sql_quote(value: str) -> str:
    """A single-quoted SQL string (for a GRANT the operator copies)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def grants_have(grants: list[str], privilege: str) -> bool:
    """True if a global (``ON *.*``) grant includes ``privilege`` or ALL PRIVILEGES."""
    for line in grants:
        match = _GLOBAL_GRANT.match(line.strip())
        if match:
            privs = {p.strip().upper() for p in match.group("privs").split(",")}
            if privilege.upper() in privs or "ALL PRIVILEGES" in privs or "ALL" in privs:
                return True
    return False
