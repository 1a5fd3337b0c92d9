"""The database adapter against a real MariaDB: facts, grants, binary-log settings, errors."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time

import pytest

from glance_tui.adapters.database import Database, grants_have_super, parse_server_version
from glance_tui.errors import AdapterError, GlanceTuiError
from glance_tui.lab import procs
from glance_tui.lab.mariadb import MariaDB

pytestmark = pytest.mark.services


def test_parse_server_version() -> None:
    assert parse_server_version("10.11.6-MariaDB-0+deb12u1") == ("MariaDB", (10, 11, 6))
    assert parse_server_version("5.5.5-10.6.12-MariaDB") == ("MariaDB", (10, 6, 12))
    assert parse_server_version("8.0.36", "MySQL Community Server - GPL") == ("MySQL", (8, 0, 36))
    assert parse_server_version("5.7.44-log", "Percona Server (GPL)") == ("MySQL", (5, 7, 44))


def test_grants_have_super() -> None:
    assert grants_have_super(["GRANT SUPER ON *.* TO `glance`@`%`"])
    assert grants_have_super(["GRANT SELECT, SUPER, RELOAD ON *.* TO `g`@`h`"])
    assert grants_have_super(["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"])
    assert not grants_have_super(["GRANT USAGE ON *.* TO `g`@`h`", "GRANT ALL PRIVILEGES ON `glance`.* TO `g`@`h`"])
    assert not grants_have_super(["GRANT SUPER READ ONLY ADMIN ON *.* TO `g`@`h`"])


async def test_facts_of_a_fresh_schema(glance_db) -> None:
    async with Database(glance_db.database_config()) as db:
        facts = await db.facts()
    assert facts.flavour == "MariaDB"
    assert facts.version >= (5, 5, 0) and facts.server_version.startswith(".".join(map(str, facts.version)))
    assert not facts.has_super
    assert any(f"`{glance_db.schema}`" in g for g in facts.grants)
    assert (facts.log_bin, facts.log_bin_trust_function_creators) == (False, False)
    assert facts.alembic_heads == [] and facts.tables == 0


async def test_password_from_file_and_heads_absent_one_two(glance_db_factory) -> None:
    gdb = glance_db_factory()
    async with Database(gdb.database_config(via="file")) as db:
        assert await db.alembic_heads() == []
        assert not await db.table_exists("alembic_version")
        gdb.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);"
                    "INSERT INTO alembic_version VALUES ('2023_1_contract01');")
        assert await db.table_exists("alembic_version")
        assert await db.alembic_heads() == ["2023_1_contract01"]
        gdb.execute("INSERT INTO alembic_version VALUES ('2024_1_expand01');")
        facts = await db.facts()
    assert facts.alembic_heads == ["2023_1_contract01", "2024_1_expand01"]
    assert facts.tables == 1


async def test_super_user_sets_and_restores_trust_function_creators(glance_db_factory) -> None:
    gdb = glance_db_factory(grant_super=True)
    async with Database(gdb.database_config()) as db:
        facts = await db.facts()
        assert facts.has_super and not facts.log_bin_trust_function_creators
        try:
            assert await db.set_log_bin_trust_function_creators(True) is False
            assert (await db.facts()).log_bin_trust_function_creators is True
        finally:
            assert await db.set_log_bin_trust_function_creators(False) is True
        assert (await db.facts()).log_bin_trust_function_creators is False


async def test_setting_trust_function_creators_is_refused_without_super(glance_db) -> None:
    async with Database(glance_db.database_config()) as db:
        with pytest.raises(AdapterError) as err:
            await db.set_log_bin_trust_function_creators(True)
        assert "SUPER" in err.value.what and "GRANT SUPER" in err.value.fix
        assert (await db.facts()).log_bin_trust_function_creators is False


async def test_log_bin_on(mariadb_binlog_server, glance_db_factory) -> None:
    gdb = glance_db_factory(server=mariadb_binlog_server)
    async with Database(gdb.database_config()) as db:
        facts = await db.facts()
    assert facts.log_bin is True and facts.log_bin_trust_function_creators is False


async def test_wrong_password_is_clear_and_secret_free(glance_db, monkeypatch) -> None:
    monkeypatch.setenv("GLANCE_TUI_TEST_WRONG_PW", "not-the-password-xyz")
    cfg = glance_db.database_config(password_env="GLANCE_TUI_TEST_WRONG_PW")
    with pytest.raises(AdapterError) as err:
        async with Database(cfg) as db:
            await db.facts()
    text = str(err.value)
    assert "access denied" in text and f"{glance_db.server.host}:{glance_db.server.port}" in text
    assert "GLANCE_TUI_TEST_WRONG_PW" in err.value.fix
    assert "not-the-password-xyz" not in text and glance_db.password not in text


async def test_unknown_schema(glance_db) -> None:
    glance_db.server.execute(f"GRANT SELECT ON `nosuch_{glance_db.schema}`.* TO '{glance_db.user}'@'127.0.0.1';")
    with pytest.raises(AdapterError, match="unknown database"):
        async with Database(glance_db.database_config(schema=f"nosuch_{glance_db.schema}")) as db:
            await db.alembic_heads()


async def test_unreachable_server(glance_db) -> None:
    port = procs.free_port()
    with pytest.raises(AdapterError) as err:
        async with Database(glance_db.database_config(port=port)) as db:
            await db.facts()
    assert "cannot reach" in err.value.what and f"127.0.0.1:{port}" in str(err.value)
    assert glance_db.password not in str(err.value)


async def test_a_silent_database_costs_connect_timeout_once(glance_db) -> None:
    """Extra edge case beside the real path: a TCP listener that accepts but never speaks.

    The queries of one round (facts, heads, a table check, as the gates ask them) share the one
    connect that timed out: connect_timeout = 3 means about 3 s, not 3 s per query (it was 8-10 s).
    """
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        async with Database(glance_db.database_config(port=port, connect_timeout=3)) as db:
            answers = await asyncio.gather(db.facts(), db.alembic_heads(), db.table_exists("images"), db.facts(), return_exceptions=True)
        elapsed = time.monotonic() - started
        for answer in answers:
            assert isinstance(answer, AdapterError), answer
            assert f"database 127.0.0.1:{port}" in answer.message and "within 3s" in answer.message, answer.message
        assert elapsed < 3 * 3, elapsed  # loose: the configured deadline, once
    finally:
        server.close()


async def _processlist(gdb, needle: str) -> list[str]:
    out = await asyncio.to_thread(gdb.server.execute, "SELECT INFO FROM information_schema.processlist WHERE INFO IS NOT NULL;")
    return [line for line in out.splitlines() if needle in line and "processlist" not in line]


async def test_query_timeout_kills_the_statement(glance_db) -> None:
    async with Database(glance_db.database_config(query_timeout=1)) as db:
        started = time.monotonic()
        with pytest.raises(AdapterError, match="did not finish within 1s"):
            await db._query("SELECT SLEEP(30)")
        assert time.monotonic() - started < 15  # the statement was not waited out (a loaded machine needs more than 1 s)
        assert await _processlist(glance_db, "SLEEP(30)") == []
        assert await db.alembic_heads() == []  # the adapter reconnects after a timeout


async def test_locked_table_times_out_through_the_public_api(glance_db_factory) -> None:
    gdb = glance_db_factory()
    gdb.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);")
    locker = subprocess.Popen(
        ["mariadb", "--no-defaults", "--unbuffered", "--skip-column-names", "--user=root", f"--socket={gdb.server.socket}", gdb.schema],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    locker.stdin.write("SELECT CONNECTION_ID(); LOCK TABLES alembic_version WRITE; SELECT 'locked'; SELECT SLEEP(30);\n")
    locker.stdin.flush()
    locker_id = int(locker.stdout.readline())
    try:
        assert locker.stdout.readline().strip() == "locked"
        async with Database(gdb.database_config(query_timeout=1)) as db:
            with pytest.raises(AdapterError) as err:
                await db.alembic_heads()
        assert "did not finish within 1s" in err.value.what and "SHOW PROCESSLIST" in err.value.fix
    finally:
        locker.kill()
        locker.wait()
        gdb.server.execute(f"KILL {locker_id};")  # release the lock now, not when SLEEP(30) ends


def test_launcher_refuses_a_busy_port_and_restarts_with_its_data(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(GlanceTuiError, match="already in use"):
            MariaDB(tmp_path / "busy", port=busy.getsockname()[1]).start()
    server = MariaDB(tmp_path / "own")
    assert not server.is_running() and server.stop() is False
    server.start()
    try:
        with pytest.raises(GlanceTuiError, match="already running"):
            server.start()
        server.create_database("kept", "keeper", "k'pw")
        assert server.stop() is True and not server.is_running()
        server.start()  # same datadir and port: no re-initialisation, the schema is still there
        assert "kept" in server.execute("SHOW DATABASES;").split()
    finally:
        server.stop()


async def test_query_timeout_bounds_the_connect_too(glance_db) -> None:
    """A silent TCP service (accepts, never greets): the query fails within query_timeout, and our socket is closed."""
    peers: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    server = await asyncio.start_server(lambda r, w: peers.append((r, w)), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(AdapterError) as err:
            async with Database(glance_db.database_config(port=port, connect_timeout=30, query_timeout=1)) as db:
                await db.facts()
        assert time.monotonic() - started < 10  # query_timeout (1 s), far from connect_timeout (30 s)
        assert "within 1s" in err.value.what and glance_db.password not in str(err.value)
        assert len(peers) == 1
        reader, _ = peers[0]
        assert await asyncio.wait_for(reader.read(), 2) == b""  # EOF: the client closed its half, nothing leaked
    finally:
        server.close()
        for _, w in peers:
            w.close()


async def test_refusing_port_fails_at_once(glance_db) -> None:
    port = procs.free_port()
    started = time.monotonic()
    with pytest.raises(AdapterError, match="cannot reach the database server"):
        async with Database(glance_db.database_config(port=port, connect_timeout=30, query_timeout=30)) as db:
            await db.alembic_heads()
    assert time.monotonic() - started < 10  # at once: no deadline (30 s) waited out
