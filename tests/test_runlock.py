"""One run at a time per config: the OS-level lock (flock), its one-line refusal, and its release
on every exit path — including ``kill -9``, where only the kernel can release it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glance_tui.cli import main
from glance_tui.config import load_config
from glance_tui.engine import Engine
from glance_tui.journal import journal_dir
from glance_tui.runlock import LOCK_NAME, RunLock, RunLocked

ROOT = Path(__file__).resolve().parents[1]
HOLD = """
import sys, time
from pathlib import Path
from glance_tui.runlock import RunLock
lock = RunLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example config (nothing is contacted: the lock is decided before any probe)."""
    monkeypatch.setenv("GLANCE_DB_PASSWORD", "not-used-here")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = tmp_path / "glance-tui.toml"
    path.write_text((ROOT / "config.example.toml").read_text())
    return path


def hold_in_subprocess(directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_lock_is_refused_at_once_naming_the_holder(tmp_path):
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    started = time.monotonic()
    with pytest.raises(RunLocked) as err:
        second.acquire()
    assert time.monotonic() - started < 1  # never waits
    message = err.value.message
    assert f"pid {os.getpid()}" in message and socket.gethostname() in message and "UTC" in message
    assert "glance-tui" in message and "\n" not in message
    assert err.value.exit_code == 1
    assert second.holder() is not None and not second.held
    first.release()
    assert second.holder() is None
    second.acquire()  # free again
    second.release()


def test_a_killed_holder_never_blocks(tmp_path):
    proc = hold_in_subprocess(tmp_path)
    lock = RunLock(tmp_path)
    try:
        with pytest.raises(RunLocked, match=f"pid {proc.pid} "):
            lock.acquire()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert (tmp_path / LOCK_NAME).read_text().strip()  # the stale file still names the dead holder…
        assert lock.holder() is None  # …but the kernel released the lock with the process
        lock.acquire()
        assert f'"pid": {os.getpid()}' in (tmp_path / LOCK_NAME).read_text()
    finally:
        proc.kill()
        proc.wait()
        lock.release()


async def test_engine_holds_the_lock_from_open_to_close(config_file):
    config = load_config(config_file)
    engine = Engine.open(config, resume=False)
    try:
        with pytest.raises(RunLocked, match="another glance-tui run holds this config's lock"):
            Engine.open(config, resume=True)
        with pytest.raises(RunLocked):
            Engine.check_unlocked(config)
        dry = Engine.open(config, resume=True, dry_run=True)  # a dry run changes nothing: no lock needed
        await dry.close()
        # the refusal touched no journal: the holder's run is still the unfinished one
        assert Engine.pending_journal(config).path == engine.journal.path
    finally:
        await engine.close()
    Engine.check_unlocked(config)
    again = Engine.open(config, resume=True)  # free after close
    assert again.journal.path == engine.journal.path
    await again.close()


def test_a_failing_open_releases_the_lock(config_file, monkeypatch):
    config = load_config(config_file)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("glance_tui.journal.Journal.create", broken)
    with pytest.raises(OSError):
        Engine.open(config, resume=False)
    monkeypatch.undo()
    Engine.check_unlocked(config)


def test_second_run_yes_and_tui_fail_with_one_line(config_file, capsys):
    config = load_config(config_file)
    proc = hold_in_subprocess(journal_dir(config.path))
    try:
        assert main(["run", "--yes", "-c", str(config_file)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pid {proc.pid} " in err and "since" in err
        assert main(["-c", str(config_file)]) == 1  # the TUI refuses before its screen opens
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pid {proc.pid} " in err
        # read-only commands do not take the lock
        assert main(["plan", "-c", str(config_file)]) == 0
        assert "Plan: Glance" in capsys.readouterr().out
    finally:
        proc.kill()
        proc.wait()


async def test_a_new_run_owes_the_binlog_restore_a_superseded_run_left(config_file):
    """The remedy set log_bin_trust_function_creators = 1, then the run was killed before saving
    its state; neither resuming it nor starting a new run may forget to restore the variable."""
    config = load_config(config_file)
    first = Engine.open(config, resume=False)
    first.journal.write("db.variable", name="log_bin_trust_function_creators", old=False, new=True)
    first.journal.write("command.start", node="glance-1", tag="glance-tui-0123456789abcdef", command="glance-manage db expand")
    await first.close()  # as a kill -9 would leave it: no state record, an expand without an end
    resumed = Engine.open(config, resume=True)
    assert resumed.journal.path == first.journal.path and resumed.state.log_bin_trust_old is False
    await resumed.close()
    time.sleep(1.1)  # run ids are per second
    new = Engine.open(config, resume=False)
    try:
        assert new.journal.path != first.journal.path and new.state.log_bin_trust_old is False
        restore = new.plan.step("contract").action("restore-binlog")
        assert await restore.needed(new.ctx)  # the new run restores it after contract
        records = list(new.journal.records())
        assert any(r["event"] == "state" and r["log_bin_trust_old"] is False for r in records)
        carried = [r for r in records if r["event"] == "command.start"]
        assert [(r["tag"], r["carried_from"]) for r in carried] == [("glance-tui-0123456789abcdef", first.journal.run_id)]
        assert first.journal.finished  # superseded
    finally:
        await new.close()
