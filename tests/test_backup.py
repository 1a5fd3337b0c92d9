"""Step 1 (backup) against a real MariaDB and mysqldump, locally and on a node over real SSH."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from glance_tui.adapters.local import LocalShell
from glance_tui.adapters.ssh import NodeSSH
from glance_tui.backup import (
    BackupError,
    BackupRecord,
    build_backup_command,
    check_backup,
    defaults_file,
    run_backup,
    verify_backup,
)

pytestmark = pytest.mark.services

IMAGES_DDL = """
CREATE TABLE images (id VARCHAR(36) NOT NULL PRIMARY KEY, name VARCHAR(255), status VARCHAR(30) NOT NULL);
INSERT INTO images VALUES ('6f1e3c2a-0000-4000-8000-000000000001', 'cirros', 'active'),
                          ('6f1e3c2a-0000-4000-8000-000000000002', 'debian $HOME `x`', 'queued');
"""


@pytest.fixture(scope="module")
def glance_schema(glance_db_factory):
    gdb = glance_db_factory()
    gdb.execute(IMAGES_DDL)
    return gdb


def backup_dir(tmp_path: Path) -> str:
    return str(tmp_path / "back ups $(touch pwned)")


def test_command_quotes_everything_and_holds_no_secret(glance_schema, tmp_path) -> None:
    cfg = glance_schema.config(backup={"directory": backup_dir(tmp_path)})
    cmd = build_backup_command(cfg, stamp="20240501T120000Z")
    assert glance_schema.password not in cmd.command and "password" not in cmd.command
    assert "mysqldump --defaults-extra-file=/dev/stdin --host=127.0.0.1" in cmd.command
    assert "--single-transaction --routines --triggers" in cmd.command
    assert f"'{backup_dir(tmp_path)}/glance-{glance_schema.schema}-20240501T120000Z.sql'" in cmd.command
    assert cmd.node == "local" and cmd.timeout == cfg.backup.timeout
    assert glance_schema.password in defaults_file(cfg.database).replace('\\"', '"').replace("\\\\", "\\")
    with pytest.raises(BackupError, match="invalid backup stamp"):
        build_backup_command(cfg, stamp="../../etc/x")


@pytest.mark.parametrize("via", ["env", "file"])
async def test_local_backup_is_verified_and_restorable(glance_schema, tmp_path, via) -> None:
    cfg = glance_schema.config(via=via, backup={"directory": backup_dir(tmp_path)})
    lines: list[tuple[str, str]] = []
    record = await run_backup(cfg, LocalShell(), stamp="20240501T120000Z", on_line=lambda s, l: lines.append((s, l)))
    dump = Path(record.path)
    data = dump.read_bytes()
    assert record == BackupRecord(str(dump), len(data), hashlib.sha256(data).hexdigest(), True, "local")
    assert dump.parent == Path(backup_dir(tmp_path)) and not (tmp_path / "pwned").exists()
    assert oct(dump.stat().st_mode & 0o777) == "0o600" and not list(dump.parent.glob("*.partial"))
    assert all(glance_schema.password not in line for _, line in lines)
    # The dump restores into another schema with the same rows.
    restore = f"{glance_schema.schema}_restore_{via}"
    glance_schema.server.execute(f"CREATE DATABASE `{restore}`;")
    with dump.open() as fh:
        subprocess.run(["mariadb", "--no-defaults", "--user=root", f"--socket={glance_schema.server.socket}", restore], stdin=fh, check=True)
    out = glance_schema.server.execute(f"SELECT name FROM `{restore}`.images ORDER BY id; DROP DATABASE `{restore}`;")
    assert out.splitlines() == ["cirros", "debian $HOME `x`"]
    # Still valid, then tampered, then gone.
    shell = LocalShell()
    assert await verify_backup(shell, record)
    assert (await check_backup(shell, record)).ok
    dump.write_bytes(data + b"-- appended\n")
    check = await check_backup(shell, record)
    assert not check.ok and "changed" in check.reason and "new backup" in check.fix
    dump.unlink()
    check = await check_backup(shell, record)
    assert not check.ok and "no longer exists" in check.reason
    assert not await verify_backup(shell, record)
    assert not (await check_backup(shell, None)).ok


async def test_schema_without_images_is_refused(glance_db_factory, tmp_path) -> None:
    gdb = glance_db_factory()
    gdb.execute("CREATE TABLE not_glance (id INT PRIMARY KEY);")
    cfg = gdb.config(backup={"directory": backup_dir(tmp_path)})
    with pytest.raises(BackupError) as err:
        await run_backup(cfg, LocalShell(), stamp="s1")
    assert "no `images` table" in err.value.what and "database.schema" in err.value.fix
    assert gdb.password not in str(err.value)


async def test_mysqldump_failure_reports_the_tail_without_the_password(glance_schema, tmp_path, monkeypatch) -> None:
    wrong = "wr0ng-pass'word\"#"
    monkeypatch.setenv("GLANCE_TUI_TEST_BACKUP_WRONG", wrong)
    cfg = glance_schema.config(backup={"directory": backup_dir(tmp_path)}, database={"password_env": "GLANCE_TUI_TEST_BACKUP_WRONG"})
    with pytest.raises(BackupError) as err:
        await run_backup(cfg, LocalShell(), stamp="s2")
    assert "mysqldump failed" in err.value.what and "Access denied" in err.value.what
    assert wrong not in str(err.value) and glance_schema.password not in str(err.value)
    assert os.listdir(backup_dir(tmp_path)) == []  # the partial file was removed


async def test_backup_on_a_node_over_ssh(glance_schema, ssh_config_factory, tmp_path) -> None:
    cfg = ssh_config_factory(
        database=glance_schema.database_section(via="file"),
        backup={"where": "node-1", "directory": backup_dir(tmp_path)},
    )
    node = NodeSSH(cfg.node("node-1"), cfg.ssh)
    try:
        record = await run_backup(cfg, node, stamp="ssh1")
        assert record.where == "node-1" and record.has_images_table
        assert hashlib.sha256(Path(record.path).read_bytes()).hexdigest() == record.sha256
        assert await verify_backup(node, record)
    finally:
        await node.close()


async def test_a_verified_backup_is_not_hashed_again_until_the_file_changes(tmp_path, monkeypatch) -> None:
    """Steps ask "is the backup still valid?" at every turn: after one full check a ``stat``
    answers, and any write to the file (new ctime/size) brings the sha256 check back."""
    from types import SimpleNamespace

    import glance_tui.backup as backup_mod
    from glance_tui.backup import BackupRecord
    from glance_tui.context import Context, RunState
    from glance_tui.journal import NullJournal

    dump = tmp_path / "glance.sql"
    dump.write_text("CREATE TABLE `images` (id int);\n-- Dump completed on 2026-11-25\n")
    record = BackupRecord(str(dump), dump.stat().st_size, hashlib.sha256(dump.read_bytes()).hexdigest(), True, "local")
    full_checks = []
    real = backup_mod.verify_backup

    async def counted(shell, rec):
        full_checks.append(rec.path)
        return await real(shell, rec)

    monkeypatch.setattr(backup_mod, "verify_backup", counted)
    ctx = Context(SimpleNamespace(), SimpleNamespace(local=LocalShell()), NullJournal(), RunState(backup=record.as_dict()), lambda e: None)
    assert await ctx.backup_still_valid() is True
    for _ in range(3):
        ctx.invalidate()
        assert await ctx.backup_still_valid() is True
    assert len(full_checks) == 1
    with dump.open("a") as f:  # changed: same path, new size and ctime
        f.write("-- tampered\n")
    ctx.invalidate()
    assert await ctx.backup_still_valid() is False
    assert len(full_checks) == 2
    ctx.invalidate()
    assert await ctx.backup_still_valid() is False  # a failed check is never cached as good


# ---------------------------------------------------------------- the dump is a changing command: tagged, journaled first


def _context(cfg, tmp_path):
    from glance_tui.context import Context, RunState
    from glance_tui.journal import Journal
    from glance_tui.probes import Cluster

    journal = Journal.create(tmp_path / "journal", config_path=None, target_release="2024.1")
    return Context(cfg, Cluster(cfg), journal, RunState(), lambda event: None)


async def test_the_dump_is_tagged_and_journaled_before_it_is_sent(glance_schema, tmp_path) -> None:
    """Like stop, upgrade or expand: ``command.start`` with its tag is on disk before mysqldump starts."""
    from glance_tui.plan import ActionIO, backup_action

    ctx = _context(glance_schema.config(backup={"directory": backup_dir(tmp_path)}), tmp_path)
    sent: list[tuple[str, list[dict]]] = []
    run = ctx.cluster.local.run

    async def watched(command: str, **kw):
        if "mysqldump" in command:
            sent.append((kw.get("tag", ""), list(ctx.journal.records())))
        return await run(command, **kw)

    ctx.cluster.local.run = watched
    try:
        await backup_action().run(ctx, ActionIO(operator=None))
    finally:
        await ctx.cluster.close()
    [(tag, before)] = sent
    assert tag.startswith("glance-tui-") and before[-1]["event"] == "command.start" and before[-1]["tag"] == tag
    assert before[-1]["node"] == "local" and "mysqldump" in before[-1]["command"]
    records = list(ctx.journal.records())
    assert any(r["event"] == "command.end" and r["tag"] == tag and r["exit"] == 0 for r in records)
    assert glance_schema.password not in ctx.journal.path.read_text()
    assert ctx.state.backup and Path(ctx.state.backup["path"]).is_file()


async def test_a_dump_still_running_from_an_earlier_run_is_never_started_beside(glance_schema, tmp_path) -> None:
    """A run killed mid-dump leaves mysqldump running (its own session): the resumed run finds it by its tag."""
    import asyncio

    from glance_tui.adapters.local import shell_argv
    from glance_tui.adapters.ssh import new_tag
    from glance_tui.command_tags import CommandStillRunning, settle

    ctx = _context(glance_schema.config(backup={"directory": backup_dir(tmp_path)}), tmp_path)
    tag = new_tag()
    ctx.journal.write("command.start", node="local", tag=tag, command="mysqldump … (the earlier run's)")
    earlier = await asyncio.create_subprocess_exec(*shell_argv("sleep 60", tag), start_new_session=True)  # as LocalShell runs it
    try:
        with pytest.raises(CommandStillRunning, match="still running on local"):
            await settle(ctx, node="local", wait=False)
    finally:
        earlier.kill()
        await earlier.wait()
    await settle(ctx, node="local", wait=False)  # gone now: settled, and the action's own probe decides
    assert any(r["event"] == "command.settled" and r["tag"] == tag for r in ctx.journal.records())
    await ctx.cluster.close()


async def test_a_backup_directory_that_is_a_link_loop_is_named_as_such(glance_schema, tmp_path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    cfg = glance_schema.config(backup={"directory": str(loop / "dumps")})
    with pytest.raises(BackupError) as err:
        await run_backup(cfg, LocalShell(), stamp="20240501T120000Z")
    assert "Too many levels of symbolic links" in err.value.what and "does not exist" not in err.value.what
    assert glance_schema.password not in err.value.message
