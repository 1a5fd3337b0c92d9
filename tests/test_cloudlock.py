"""One run per cloud: the database lock against a real MariaDB (refusal naming the holder,
re-taken after its connection is killed, lost when another run takes it meanwhile)."""

from __future__ import annotations

import asyncio
import socket

import pymysql
import pytest

from glance_tui.cloudlock import CloudLock, CloudLocked, CloudLockLost, lock_name
from tests.fixtures.mariadb import GlanceDB, wait_until_waiting_for_lock


def _holder_id(db: GlanceDB, name: str) -> int | None:
    out = db.server.execute(f"SELECT IFNULL(IS_USED_LOCK('{name}'), 0);").strip()
    return int(out) or None


async def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_second_run_is_refused_naming_the_holder(glance_db: GlanceDB) -> None:
    cfg = glance_db.database_config()
    first, second = CloudLock(cfg, keepalive=0.5), CloudLock(cfg, keepalive=0.5)
    await first.acquire("run-A")
    try:
        assert _holder_id(glance_db, first.name) == first.connection
        with pytest.raises(CloudLocked) as refused:
            await second.acquire("run-B")
        text = refused.value.message
        assert f"@{socket.gethostname()} pid " in text and "run run-A" in text and "since 20" in text
        assert f"{glance_db.user}@127.0.0.1" in text  # the database's view of the holder
        assert second._db is None  # the refused run keeps no connection
    finally:
        await first.release()
    # released at once (the keep-alive connection is killed, not left sleeping)
    assert _holder_id(glance_db, first.name) is None
    await second.acquire("run-B")
    await second.release()


async def test_a_killed_lock_connection_is_retaken(glance_db: GlanceDB) -> None:
    events: list[tuple[str, dict]] = []
    lock = CloudLock(glance_db.database_config(), keepalive=0.5, on_event=lambda k, d: events.append((k, d)))
    await lock.acquire("run-K")
    try:
        old = lock.connection
        glance_db.server.execute(f"KILL {old};")
        await _wait(lambda: any(k == "retaken" for k, _ in events))
        await lock.ensure()
        assert lock.connection not in (None, old)
        assert _holder_id(glance_db, lock.name) == lock.connection
        assert events[0][1]["old_connection"] == old and events[0][1]["new_connection"] == lock.connection
    finally:
        await lock.release()


async def test_a_lock_taken_by_another_run_meanwhile_is_lost(glance_db: GlanceDB) -> None:
    events: list[tuple[str, dict]] = []
    lock = CloudLock(glance_db.database_config(), keepalive=0.5, on_event=lambda k, d: events.append((k, d)))
    await lock.acquire("run-L")
    other = pymysql.connect(host=glance_db.server.host, port=glance_db.server.port, user=glance_db.user,
                            password=glance_db.password, database=glance_db.schema, autocommit=True)
    try:
        waiter = asyncio.get_running_loop().run_in_executor(None, lambda: other.cursor().execute(
            "SELECT GET_LOCK(%s, 20) /* glance-tui lock holder {\"user\":\"ops\",\"host\":\"bastion-2\",\"pid\":7,\"since\":1,\"run\":\"other\"} */",
            (lock_name(glance_db.schema),)))
        await wait_until_waiting_for_lock(glance_db.server, other.thread_id())  # the other session now waits for the lock
        glance_db.server.execute(f"KILL {lock.connection};")
        await waiter
        await _wait(lambda: bool(lock.lost))
        with pytest.raises(CloudLockLost) as lost:
            await lock.ensure()
        # the other session is idle once it holds the lock: named by its connection and account
        assert "another run took it" in lost.value.message
        assert f"database connection {other.thread_id()} ({glance_db.user}@127.0.0.1" in lost.value.message
        assert [k for k, _ in events] == ["lost"]
    finally:
        other.close()
        await lock.release()
