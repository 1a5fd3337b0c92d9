"""The whole database's truth on the simulated cluster (real MariaDB, HAProxy, sshd per node):
every client of the schema known, one database for the tool and glance-manage, one run per cloud,
another run's database change found on the node."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pymysql
import pytest

from glance_tui import gates as G
from glance_tui.cloudlock import CloudLocked, CloudLockLost
from glance_tui.command_tags import CommandStillRunning, database_changers, settle_database
from glance_tui.config import Config, parse_config
from glance_tui.db_clients import check_clients
from glance_tui.db_target import parse_connection
from glance_tui.engine import Engine
from glance_tui.journal import read_records
from glance_tui.lab import nodens
from glance_tui.lab.lab import DB_SCHEMA, DB_USER, Lab
from glance_tui.lab.mariadb import sql_string
from glance_tui.operator import Unattended
from glance_tui.adapters.database import Database, client_host
from tests.fixtures.mariadb import GlanceDB, wait_until_waiting_for_lock

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[1]


def lab_data(lab: Lab) -> dict[str, Any]:
    return tomllib.loads(lab.config_path.read_text())


def config_copy(lab: Lab, tmp_path: Path, name: str = "copy.toml", **changes: Any) -> Config:
    """The lab's config as another operator's copy (another path), with ``changes`` per section."""
    data = lab_data(lab)
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values}
    path = tmp_path / name
    path.write_text("# a copy of the lab's config (validated from the data below; the file gives it its own path)\n")
    config = parse_config(data, where=str(path))
    config._path = path.resolve()
    return config


def client(lab: Lab, bind: str, user: str = DB_USER) -> pymysql.Connection:
    """A connection to the Glance schema from ``bind`` (as a host with that address would make)."""
    layout = lab.load_layout()
    return pymysql.connect(host="127.0.0.1", port=layout.db_port, user=user, password=lab.password_file.read_text().strip(),
                           database=DB_SCHEMA, bind_address=bind, autocommit=True)


def grant_from(lab: Lab, host: str) -> None:
    layout = lab.load_layout()
    lab.mariadb(layout).execute(f"CREATE USER IF NOT EXISTS {sql_string(DB_USER)}@{sql_string(host)} IDENTIFIED BY "
                                f"{sql_string(lab.password_file.read_text().strip())};"
                                f"GRANT ALL PRIVILEGES ON `{DB_SCHEMA}`.* TO {sql_string(DB_USER)}@{sql_string(host)};")


# ---------------------------------------------------------------- 17.2: every client of the schema


def test_processlist_host_loses_its_port() -> None:
    assert client_host("10.0.0.5:41234") == "10.0.0.5"
    assert client_host("localhost") == "localhost"
    assert client_host("[::1]:3306") == "::1"
    assert client_host("::1:3306") == "::1"


async def test_without_process_the_clients_are_unknown_and_the_grant_is_named(glance_db: GlanceDB) -> None:
    db = Database(glance_db.database_config())
    ctx = SimpleNamespace(cluster=SimpleNamespace(db=db), config=glance_db.config(), own_db_connections=set)
    try:
        reason, fix = await check_clients(ctx, contract=False)  # type: ignore[arg-type]
    finally:
        await db.close()
    assert "lacks the PROCESS privilege" in reason
    assert fix == f"as a database admin run: GRANT PROCESS ON *.* TO '{glance_db.user}'@'127.0.0.1'"


async def test_another_accounts_client_is_seen_only_with_process(glance_db: GlanceDB) -> None:
    """Why PROCESS is required: without it the server hides another account's connections."""
    server = glance_db.server
    other = f"{glance_db.user}_region2"
    server.execute(f"CREATE USER {sql_string(other)}@'127.0.0.1' IDENTIFIED BY 'pw2';"
                   f"GRANT ALL PRIVILEGES ON `{glance_db.schema}`.* TO {sql_string(other)}@'127.0.0.1';")
    region2 = pymysql.connect(host=server.host, port=server.port, user=other, password="pw2", database=glance_db.schema)
    try:
        db = Database(glance_db.database_config())
        try:
            assert not await db.sees_every_client()
            assert [c.user for c in await db.schema_clients()] == []
        finally:
            await db.close()
        server.execute(f"GRANT PROCESS ON *.* TO {sql_string(glance_db.user)}@'127.0.0.1';")
        db = Database(glance_db.database_config())
        try:
            assert await db.sees_every_client()
            seen = await db.schema_clients()
            assert [(c.user, c.host, c.id) for c in seen] == [(other, "127.0.0.1", region2.thread_id())]
        finally:
            await db.close()
    finally:
        region2.close()
        server.execute(f"REVOKE PROCESS ON *.* FROM {sql_string(glance_db.user)}@'127.0.0.1'; DROP USER {sql_string(other)}@'127.0.0.1';")


async def test_the_database_gates_guard_expand_migrate_and_contract(sim_config: Config, tmp_path: Path) -> None:
    engine = Engine(sim_config, journal=_journal(tmp_path))
    engine.ctx.state.new_node = "glance-1"
    engine._rebuild("test")
    plan = engine.plan
    await engine.close()
    assert any(g.id == "db-clients" for g in plan.step("preflight").gates)
    assert G.ONE_DATABASE in plan.step("expand").gates and G.ONE_DATABASE in plan.step("migrate").gates
    contract = plan.step("contract").action("contract")
    assert G.ONE_DATABASE in contract.gates and G.DB_CLIENTS_ON_TARGET in contract.gates


async def test_an_unknown_client_fails_preflight_until_it_is_known(sim_lab: Lab, sim_config: Config, tmp_path: Path) -> None:
    grant_from(sim_lab, "127.0.1.99")
    stranger = client(sim_lab, "127.0.1.99")  # a second region's Glance, a retired node, a script
    try:
        engine = Engine(sim_config, journal=_journal(tmp_path))
        try:
            result = await G.Gate("db-clients", "", G._db_clients).evaluate(engine.ctx)
        finally:
            await engine.close()  # another glance-tui's connection would be a client like any other
        assert not result.ok and "127.0.1.99 (1 connection(s) as glance" in result.reason
        assert "database.known_clients" in result.fix
        known = config_copy(sim_lab, tmp_path, database={"known_clients": ["127.0.1.99"]})
        other = Engine(known, journal=_journal(tmp_path / "k"))
        try:
            result = await G.Gate("db-clients", "", G._db_clients).evaluate(other.ctx)
        finally:
            await other.close()
        assert result.ok, result.reason
    finally:
        stranger.close()


def test_check_names_an_unknown_client_and_the_fix(sim_lab: Lab, sim_config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    from glance_tui.cli import main

    grant_from(sim_lab, "127.0.1.98")
    stranger = client(sim_lab, "127.0.1.98")
    try:
        assert main(["check", "-c", str(sim_lab.config_path)]) == 1
    finally:
        stranger.close()
    out = capsys.readouterr().out
    assert "unknown client(s) of schema 'glance': 127.0.1.98" in out and "database.known_clients" in out
    assert sim_lab.password_file.read_text().strip() not in out


async def test_contract_blocks_on_a_node_client_still_on_old_code(sim_lab: Lab, sim_config: Config, tmp_path: Path) -> None:
    node = client(sim_lab, "127.0.1.12")  # glance-2's Glance, still 2023.1
    engine = Engine(sim_config, journal=_journal(tmp_path))
    try:
        assert (await G.Gate("db-clients", "", G._db_clients).evaluate(engine.ctx)).ok  # a node is a known client
        result = await G.DB_CLIENTS_ON_TARGET.evaluate(engine.ctx)
        assert not result.ok and "127.0.1.12" in result.reason and "is glance-2, not (known to be) running 2024.1" in result.reason
    finally:
        node.close()
        await engine.close()


def test_lab_nodes_connect_from_their_own_address(sim_lab: Lab) -> None:
    layout = sim_lab.load_layout()
    for n in layout.nodes:
        conf = (sim_lab.node_dir(n.name) / "glance-api.conf").read_text()
        target = parse_connection(conf)
        assert f"bind_address={n.host}" in conf and target.host == "127.0.0.1" and target.schema == DB_SCHEMA
        with client(sim_lab, n.host) as conn, conn.cursor() as cur:  # the grant for the node's address exists
            cur.execute("SELECT SUBSTRING_INDEX(USER(), '@', -1)")
            assert cur.fetchone()[0] == n.host


# ---------------------------------------------------------------- 17.3: one database


async def _one_database(config: Config, tmp_path: Path, new_node: str = "glance-1") -> G.GateResult:
    engine = Engine(config, journal=_journal(tmp_path))
    engine.ctx.state.new_node = new_node
    try:
        return await G.ONE_DATABASE.evaluate(engine.ctx)
    finally:
        await engine.close()


async def test_the_new_nodes_database_is_the_tools(sim_lab: Lab, sim_config: Config, tmp_path: Path) -> None:
    result = await _one_database(sim_config, tmp_path)
    assert result.ok and "loopback on both sides of the same machine" in result.reason


@pytest.mark.parametrize("connection, expected", [
    ("mysql+pymysql://glance:SECRETPW@127.0.0.1:{port}/glance_other", "glance-1's [database] connection mysql+pymysql://********@127.0.0.1:{port}/glance_other is not the tool's"),
    ("mysql+pymysql://glance:SECRETPW@127.0.0.2:{port}/glance", "is not the tool's"),
    ("mysql+pymysql://glance:SECRETPW@localhost:{port}/glance?unix_socket=/run/mysqld.sock", "uses a unix socket"),
    ("mysql+pymysql://glance:SECRETPW@no-such-host.invalid:{port}/glance", "resolves to no address on glance-1"),
    ("sqlite:////var/lib/glance/glance.sqlite", "not MySQL/MariaDB"),
    (None, "has no [database] connection"),
])
async def test_another_database_on_the_new_node_is_a_hard_gate(sim_lab: Lab, tmp_path: Path, connection: str | None, expected: str) -> None:
    port = sim_lab.load_layout().db_port
    conf = tmp_path / "node.conf"
    conf.write_text("[DEFAULT]\nbind_port = 9292\n" + (f"[database]\nconnection = {connection.format(port=port)}\n" if connection else ""))
    config = config_copy(sim_lab, tmp_path, commands={"read_config": f"cat {conf}"})
    result = await _one_database(config, tmp_path)
    assert not result.ok and expected.format(port=port) in result.reason
    assert "SECRETPW" not in result.reason + result.fix


async def test_localhost_on_the_node_is_the_same_server_here(sim_lab: Lab, tmp_path: Path) -> None:
    port = sim_lab.load_layout().db_port
    conf = tmp_path / "node.conf"
    conf.write_text(f"[database]\nconnection = mysql+pymysql://glance:pw@localhost:{port}/glance\n")
    config = config_copy(sim_lab, tmp_path, commands={"read_config": f"cat {conf}"})
    assert (await _one_database(config, tmp_path)).ok


async def test_an_unreadable_node_config_blocks(sim_lab: Lab, tmp_path: Path) -> None:
    config = config_copy(sim_lab, tmp_path, commands={"read_config": f"cat {tmp_path / 'missing.conf'}"})
    result = await _one_database(config, tmp_path)
    assert not result.ok and "cannot tell which database glance-1's glance-manage changes" in result.reason
    assert "read_config" in result.fix


# ---------------------------------------------------------------- 17.4: one run per cloud


def _journal(base: Path):
    from glance_tui.journal import Journal

    return Journal.create(base / "journal", config_path=base / "cfg.toml", target_release="2024.1")


async def test_a_second_run_from_another_copy_is_refused_naming_the_holder(sim_lab: Lab, sim_config: Config, tmp_path: Path) -> None:
    first = Engine.open(sim_config, resume=False, journal_base=tmp_path / "state-a")
    try:
        await first.hold_cloud_lock()
        copy = config_copy(sim_lab, tmp_path, "other-bastion.toml")
        second = Engine.open(copy, resume=False, journal_base=tmp_path / "state-b")  # another lock file: the flock allows it
        try:
            with pytest.raises(CloudLocked) as refused:
                await second.run_step(second.plan.step("preflight"), Unattended(None))
        finally:
            await second.close()
        assert f"pid {os.getpid()}" in refused.value.message and f"run {first.journal.path.stem}" in refused.value.message
        refused_run = list(read_records(second.journal.path))
        assert not [r for r in refused_run if r["event"] == "step.start"]  # refused before anything
        assert refused_run[-1]["event"] == "run.end" and refused_run[-1]["ok"] is False  # never left pending
        # the CLI of another operator (own XDG_STATE_HOME, own config copy): exit 1 at once, naming the holder
        path = tmp_path / "cli-copy.toml"
        path.write_text(sim_lab.config_path.read_text())
        env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state-c")}
        # (a subprocess the loop awaits: the holder's keep-alive must keep running meanwhile, as in a real run)
        cli = await asyncio.create_subprocess_exec(sys.executable, "-m", "glance_tui", "run", "--yes", "-c", str(path), cwd=ROOT, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(cli.communicate(), 120)
        stderr = err.decode()
        assert cli.returncode == 1, stderr
        assert "another glance-tui run holds the database lock" in stderr and f"pid {os.getpid()}" in stderr
        assert "Traceback" not in stderr
    finally:
        await first.close()


async def test_the_run_retakes_its_lock_after_the_connection_is_killed(sim_lab: Lab, sim_config: Config, tmp_path: Path) -> None:
    engine = Engine.open(sim_config, resume=False, journal_base=tmp_path)
    try:
        await engine.hold_cloud_lock()
        lock = engine.cloud_lock
        old = lock.connection
        sim_lab.mariadb(sim_lab.load_layout()).execute(f"KILL {old};")
        for _ in range(200):
            if lock.connection not in (None, old):
                break
            await asyncio.sleep(0.05)
        await engine.hold_cloud_lock()  # what every action does first
        assert lock.connection not in (None, old)
        retaken = [r for r in read_records(engine.journal.path) if r["event"] == "cloudlock.retaken"]
        assert retaken and retaken[0]["old_connection"] == old and retaken[0]["new_connection"] == lock.connection
    finally:
        await engine.close()


async def test_a_run_that_lost_its_lock_stops_before_the_next_action(sim_lab: Lab, sim_config: Config, tmp_path: Path) -> None:
    engine = Engine.open(sim_config, resume=False, journal_base=tmp_path)
    other = client(sim_lab, "127.0.0.1")
    try:
        await engine.hold_cloud_lock()
        lock = engine.cloud_lock
        name = lock.name
        # another run waits for the lock; the run's lock connection drops: the other run gets it first
        waiting = asyncio.get_running_loop().run_in_executor(None, lambda: other.cursor().execute("SELECT GET_LOCK(%s, 20)", (name,)))
        server = sim_lab.mariadb(sim_lab.load_layout())
        await wait_until_waiting_for_lock(server, other.thread_id())
        server.execute(f"KILL {lock.connection};")
        await waiting
        for _ in range(200):
            if lock.lost:
                break
            await asyncio.sleep(0.05)
        with pytest.raises(CloudLockLost):
            await engine.run_step(engine.plan.step("backup"), Unattended("glance-1"))
        events = [r["event"] for r in read_records(engine.journal.path)]
        assert "cloudlock.lost" in events and "action.start" not in events and "step.start" not in events
    finally:
        other.close()
        await engine.close()


# ---------------------------------------------------------------- 17.4: another run's db change on a node


def test_database_changers_are_read_from_the_processes_answer() -> None:
    answer = ("1700000000\n 10 1 5 sh sh -c glance-manage db expand glance-tui-change-0123456789abcdef\n"
              " 11 1 5 glance-manage /usr/bin/python3 /usr/bin/glance-manage db check\n"
              " 12 1 5 sh sh -c ps glance-tui-0123456789abcdef\n"
              " 13 1 5 python3 /opt/v/bin/glance-manage --config-dir /etc/glance db contract\n")
    assert database_changers(answer) == ["pid 10 `glance-manage … db expand`", "pid 13 `glance-manage … db contract`"]
    tagged = "1700000000\n 20 1 9 sh sh -c systemctl stop glance-api glance-tui-change-0123456789abcdef\n"
    assert database_changers(tagged) == ["pid 20 (tag glance-tui-change-0123456789abcdef) `sh -c systemctl stop glance-api glance-tui-change-012345678…`"]
    for bad in ("not a clock\n", "1700000000\n 20 9 sh sh -c x\n"):  # the PPID column is part of the format
        with pytest.raises(ValueError):
            database_changers(bad)


async def test_another_journals_expand_on_a_node_is_waited_for(sim_lab: Lab, sim_config: Config, tmp_path: Path) -> None:
    node_dir = sim_lab.node_dir("glance-2")
    fake = tmp_path / "glance-manage"
    fake.write_text("#!/bin/sh\nsleep 60\n")
    fake.chmod(0o755)
    # as another run's `glance-manage db expand` looks in ps on that node: run inside the node's machine
    # (nsenter's child, in nsenter's process group)
    proc = subprocess.Popen([*nodens.enter(node_dir), "/bin/sh", str(fake), "--config-file", "/etc/glance/glance-api.conf", "db", "expand"],
                            start_new_session=True)
    engine = Engine(sim_config, journal=_journal(tmp_path))
    try:
        with pytest.raises(CommandStillRunning) as refused:
            await settle_database(engine.ctx, wait=False)
        assert "glance-2:" in refused.value.message and "db expand" in refused.value.message
        waiting = asyncio.ensure_future(settle_database(engine.ctx, poll=0.2))
        await asyncio.sleep(1.0)
        assert not waiting.done()  # still running: nothing is started beside it
        os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.wait_for(waiting, 30)
        events = [r["event"] for r in read_records(engine.journal.path)]
        assert "command.foreign" in events and "command.foreign.settled" in events
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        await engine.close()
