"""With binary logging on and no SUPER, expand is blocked; the engine's offered remedy sets
log_bin_trust_function_creators (journaling the old value) and contract's last action restores it —
against a real MariaDB started with --log-bin."""

from __future__ import annotations

import pytest

from glance_tui import gates as G
from glance_tui.context import Context, RunState
from glance_tui.journal import Journal
from glance_tui.plan import ActionIO, restore_binlog_action
from glance_tui.probes import Cluster

pytestmark = pytest.mark.services


async def test_remedy_sets_and_contract_restores(mariadb_binlog_server, glance_db_factory, tmp_path):
    gdb = glance_db_factory(server=mariadb_binlog_server)
    mariadb_binlog_server.execute("SET GLOBAL log_bin_trust_function_creators = 0;")
    config = gdb.config()
    cluster = Cluster(config)
    journal = Journal.create(tmp_path, config_path=None, target_release="2024.1")
    ctx = Context(config, cluster, journal, RunState(), lambda e: None)
    try:
        result = await G.BINLOG_TRIGGERS.evaluate(ctx)
        assert not result.ok and result.remedy is None  # no privilege to fix it from here: instructions only
        assert "log_bin_trust_function_creators" in result.fix

        for host in ("127.0.0.1", "localhost"):
            mariadb_binlog_server.execute(f"GRANT BINLOG ADMIN ON *.* TO '{gdb.user}'@'{host}';")
        await cluster.db.close()  # grants apply to new sessions
        ctx.invalidate()
        result = await G.BINLOG_TRIGGERS.evaluate(ctx)
        assert not result.ok and result.remedy is not None

        await result.remedy.apply(ctx)
        assert ctx.state.log_bin_trust_old is False
        ctx.invalidate()
        assert (await G.BINLOG_TRIGGERS.evaluate(ctx)).ok
        assert mariadb_binlog_server.execute("SELECT @@global.log_bin_trust_function_creators;").strip() == "1"

        restore = restore_binlog_action()
        assert await restore.needed(ctx)
        await restore.run(ctx, ActionIO(operator=None))  # type: ignore[arg-type]
        assert mariadb_binlog_server.execute("SELECT @@global.log_bin_trust_function_creators;").strip() == "0"
        assert not await restore.needed(ctx)
        changes = [r for r in journal.records() if r["event"] == "db.variable"]
        assert [(c["old"], c["new"]) for c in changes] == [(False, True), (True, False)]
    finally:
        await cluster.close()
        mariadb_binlog_server.execute("SET GLOBAL log_bin_trust_function_creators = 0;")
