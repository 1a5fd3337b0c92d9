"""One run per cloud: a named lock on the Glance database server, held for the run's lifetime.

The local ``flock`` (runlock.py) only stops a second run from the same machine and config path;
an operator on another bastion, after ``sudo -i`` or with a copied config shares nothing with
it — but every run talks to the same database. So a run also takes ``GET_LOCK('glance-tui:
<schema>', grace)`` on a connection of its own. The server releases a named lock when its
connection ends (a killed run, a dropped network), so it is never stale; ``grace`` (the
keep-alive period + 1 s) covers a holder killed mid-statement, which the server lets go only
when that statement ends.

Who holds it must be discoverable by the run that is refused. A user variable is private to
its session and a table in the Glance schema would change what we upgrade; instead, the
holding connection is never idle: it runs ``SELECT SLEEP(n), IS_USED_LOCK(name) =
CONNECTION_ID() /* glance-tui lock holder {json} */`` in a loop. ``IS_USED_LOCK(name)`` names
the holder's connection, and ``information_schema.PROCESSLIST`` shows that connection's
account, client host and statement — the comment with the OS user, host, pid, start time and
run id. (Another account's connections need the PROCESS privilege, which the db-clients gate
requires anyway; without it the refusal still names the connection id.) The loop is also
the keep-alive: when the statement fails, the connection is gone and so is the lock — it is
re-taken on a new connection, and if that is refused (another run took it) or impossible
within ``retake_for`` seconds the lock is *lost*: :meth:`CloudLock.ensure`, called before
every action, then stops the run between actions.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable

from glance_tui.adapters.database import Database, client_host
from glance_tui.config import DatabaseConfig
from glance_tui.errors import GlanceTuiError
from glance_tui.runlock import RunLocked

PREFIX = "glance-tui:"
MARK = "glance-tui lock holder "
_HOLDER = re.compile(r"/\* " + re.escape(MARK) + r"(\{.*?\}) \*/", re.DOTALL)
# MySQL refuses lock names over 64 characters.
NAME_LIMIT = 64


class CloudLocked(RunLocked):
    """Another glance-tui run (any machine, user or config copy) holds this database's lock."""


class CloudLockLost(GlanceTuiError):
    """The run's database lock is gone and could not be taken back: the run stops between actions."""


def lock_name(schema: str) -> str:
    name = PREFIX + schema
    return name if len(name) <= NAME_LIMIT else PREFIX + hashlib.sha256(schema.encode()).hexdigest()[:40]


def identity(run_id: str) -> dict[str, Any]:
    """Who this run is, as the refused run will print it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname(), "pid": os.getpid(), "since": round(time.time()), "run": run_id}


def _comment(who: dict[str, Any]) -> str:
    """The holder's identity as an SQL comment that survives pymysql's %-formatting."""
    text = json.dumps(who, ensure_ascii=True, separators=(",", ":")).replace("*/", "*\\/")
    return f"/* {MARK}{text} */".replace("%", "%%")


@dataclass(frozen=True)
class LockHolder:
    connection: int
    account: str  # the database's view: user@client host
    who: dict[str, Any] | None  # the holder's own description (None when not visible)

    def describe(self) -> str:
        if not self.who:
            return (f"database connection {self.connection} ({self.account or 'account not visible'}; "
                    "its details need the PROCESS privilege)")
        w = self.who
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(w["since"])) if isinstance(w.get("since"), (int, float)) else "?"
        return (f"{w.get('user', '?')}@{w.get('host', '?')} pid {w.get('pid', '?')} since {since}, run {w.get('run', '?')} "
                f"(database connection {self.connection} from {self.account or '?'})")


async def find_holder(db: Database, name: str, tries: int = 20) -> LockHolder | None:
    """The connection holding ``name`` and what it says about itself; None when the lock is free."""
    for attempt in range(tries):
        row = await db.row("SELECT IS_USED_LOCK(%s)", (name,))
        if row is None or row[0] is None:
            return None
        conn = int(row[0])
        info = await db.row("SELECT USER, HOST, INFO FROM information_schema.PROCESSLIST WHERE ID = %s", (conn,))
        if info is not None:
            user, host, statement = info
            account = f"{user}@{client_host(str(host or ''))}"
            match = _HOLDER.search(str(statement or ""))
            if match:
                try:
                    return LockHolder(conn, account, json.loads(match.group(1).replace("*\\/", "*/")))
                except ValueError:
                    pass
            if attempt == tries - 1:
                return LockHolder(conn, account, None)
        elif attempt == tries - 1:
            return LockHolder(conn, "", None)
        await asyncio.sleep(0.05)  # between two keep-alive statements INFO is briefly empty
    return None


class CloudLock:
    """The run's lock on the database server (see the module's doc)."""

    def __init__(self, cfg: DatabaseConfig, *, keepalive: float | None = None, retake_for: float | None = None,
                 on_event: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.cfg = cfg
        self.name = lock_name(cfg.schema_name)
        self.keepalive = keepalive if keepalive is not None else max(min(2.0, cfg.query_timeout / 3), 0.1)
        self.retake_for = retake_for if retake_for is not None else max(30.0, 3 * cfg.connect_timeout)
        self.on_event = on_event or (lambda kind, data: None)
        self._db: Database | None = None
        self._who: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self.connection: int | None = None
        self.lost: str = ""
        self._retaking = False

    def connection_ids(self) -> set[int]:
        """The lock's own connection (the db-clients gate does not count it as a client)."""
        return {self.connection} if self.connection is not None else set()

    async def acquire(self, run_id: str) -> None:
        """Take the lock now, or raise :class:`CloudLocked` naming the holder (never waits)."""
        if self._task is not None:
            return await self.ensure()
        self._who = identity(run_id)
        self._db = Database(self.cfg)
        try:
            if not await self._take(self._db):
                holder = await find_holder(self._db, self.name)
                raise self._refusal(holder)
        except BaseException:
            await self._db.close()
            self._db = None
            raise
        self._task = asyncio.ensure_future(self._keep())

    def _refusal(self, holder: LockHolder | None) -> CloudLocked:
        who = holder.describe() if holder else "a run that has just ended (retry)"
        return CloudLocked(f"another glance-tui run holds the database lock {self.name!r} — {who}",
                           where=f"database {self.cfg.host}:{self.cfg.port}",
                           fix="wait for that run to finish or stop it (a killed run releases the lock by itself); "
                               "check/status/plan and --dry-run work meanwhile")

    @property
    def grace(self) -> float:
        """How long GET_LOCK waits: a holder that died mid-SLEEP is let go by the server when its
        SLEEP ends (at most ``keepalive``); a live holder keeps it, and the run is refused."""
        return min(self.keepalive + 1.0, self.cfg.query_timeout * 0.8)

    async def _take(self, db: Database) -> bool:
        row = await db.row("SELECT GET_LOCK(%s, %s), CONNECTION_ID()", (self.name, self.grace))
        if row is None or row[0] is None:
            raise GlanceTuiError(f"GET_LOCK({self.name!r}) answered NULL", where=f"database {self.cfg.host}:{self.cfg.port}",
                                 fix="check the database server's log")
        if int(row[0]) != 1:
            return False
        self.connection = int(row[1])
        return True

    async def _keep(self) -> None:
        assert self._db is not None
        statement = f"SELECT SLEEP(%s), IS_USED_LOCK(%s) = CONNECTION_ID() {_comment(self._who)}"
        while True:
            try:
                row = await self._db.row(statement, (self.keepalive, self.name))
                if row is not None and row[1] == 1:
                    continue
                why = "the server no longer lists this connection as the holder"
            except GlanceTuiError as exc:
                why = exc.what
            if not await self._retake(why):
                return

    async def _retake(self, why: str) -> bool:
        """Take the lock back on a new connection; False (and ``lost`` set) when that fails."""
        assert self._db is not None
        self._retaking = True
        old = self.connection
        self.connection = None
        deadline = time.monotonic() + self.retake_for
        try:
            await self._db.close()
            while True:
                try:
                    if await self._take(self._db):
                        self.on_event("retaken", {"old_connection": old, "new_connection": self.connection, "why": why})
                        return True
                    holder = await find_holder(self._db, self.name)
                    if holder is None or (holder.connection == old and time.monotonic() < deadline):
                        continue  # free again, or still our dropped connection the server has not let go yet
                    self.lost = f"another run took it: {holder.describe()}"
                    break
                except GlanceTuiError as exc:
                    await self._db.close()
                    if time.monotonic() >= deadline:
                        self.lost = f"it could not be taken back within {self.retake_for:g}s: {exc.what}"
                        break
                    await asyncio.sleep(1.0)
            self.on_event("lost", {"old_connection": old, "why": why, "detail": self.lost})
            return False
        finally:
            self._retaking = False

    async def ensure(self) -> None:
        """Before an action: the lock is held now (waits while it is being re-taken), else
        :class:`CloudLockLost`."""
        deadline = time.monotonic() + self.retake_for + 5
        while self._retaking and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if self._task is None:
            raise CloudLockLost("this run does not hold the database lock", fix="start the run again")
        if self._task.done() and not self.lost:  # the keep-alive ended without saying why: not known to be held
            self.lost = "its keep-alive stopped unexpectedly"
        if self.lost or self._retaking:
            raise CloudLockLost(f"this run lost the database lock {self.name!r}: {self.lost or 're-taking it did not finish'}",
                                fix="nothing more is changed by this run; check who holds the lock, then resume "
                                    "(the resumed run re-probes the cluster)")

    async def release(self) -> None:
        """Give the lock back at once: the keep-alive connection is killed (closing it alone would
        leave the server holding the lock until its SLEEP ends)."""
        task, self._task = self._task, None
        db, self._db = self._db, None
        conn, self.connection = self.connection, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if db is None:
            return
        try:
            if conn is not None:
                await db.kill_connection(conn)
        except GlanceTuiError:
            pass  # the server drops the lock with the connection anyway, at the end of its SLEEP
        finally:
            await db.close()
