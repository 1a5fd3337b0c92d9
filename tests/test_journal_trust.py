"""The journal is trusted or refused, and the state directory is usable or named (no services).

Reading: a torn line is dropped, any other bad line (bytes, JSON that is not a record, a record
of the wrong shape, NaN) is named with its file and line; a run refuses it, a look skips it.
Writing: an unusable state directory or a full disk is one line naming the path and the fix,
nothing is left behind, and a journal that failed once refuses every later write.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from glance_tui.journal import Journal, JournalProblem, JournalWriteFailed, journal_dir, latest_journal, read_records, unfinished_journal
from glance_tui.journal_read import parse_line, scan, shape_problem
from glance_tui.record.model import read_run
from glance_tui.record.render import render
from glance_tui.record.runs import list_runs
from glance_tui.runlock import RunLock
from glance_tui.statedir import StateDirProblem, state_home, unusable

# lines that are not a record of this tool, appended to a good journal: each must be named, never crash later code
BAD_LINES = {
    "non-UTF-8": b'{"ts": 1.0, "run": "r", "event": "x\xff"}',
    "random bytes": bytes(range(1, 10)) + b"\x80\x81\xfe",
    "a JSON array": b"[1,2,3]",
    "a JSON string": b'"hello"',
    "ts a string": b'{"ts": "x", "run": "r", "event": "state"}',
    "step a list": b'{"ts": 1.0, "run": "r", "event": "step.start", "step": []}',
    "no event": b'{"ts": 1.0, "run": "r"}',
    "NaN": b'{"ts": NaN, "run": "r", "event": "state"}',
    "Infinity in a field": b'{"ts": 1.0, "run": "r", "event": "command", "duration": Infinity}',
    "1e999": b'{"ts": 1e999, "run": "r", "event": "state"}',
    "command.start without tag": b'{"ts": 1.0, "run": "r", "event": "command.start", "node": "n1", "command": "x"}',
    "tag a number": b'{"ts": 1.0, "run": "r", "event": "command.end", "tag": 5}',
    "ok a string": b'{"ts": 1.0, "run": "r", "event": "run.end", "ok": "yes"}',
    "samples wrong": b'{"ts": 1.0, "run": "r", "event": "drained", "node": "n1", "samples": [[1]]}',
    "nodes wrong": b'{"ts": 1.0, "run": "r", "event": "versions", "nodes": {"n1": [1]}}',
    "state started wrong": b'{"ts": 1.0, "run": "r", "event": "state", "started": {"n1": 3}}',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "backup missing a field": b'{"ts": 1.0, "run": "r", "event": "state", "backup": {"path": "/b.sql"}}',
    "override gates a number": b'{"ts": 1.0, "run": "r", "event": "state", "overrides": [{"step": "s", "gates": 3}]}',
    "seen stop a list": b'{"ts": 1.0, "run": "r", "event": "state", "started": {"n1": {"stopped_at": []}}}',
    "ts before 1970": b'{"ts": -1e308, "run": "r", "event": "state"}',
}


def good_journal(directory: Path) -> Journal:
    j = Journal.create(directory, config_path=None, target_release="2024.1")
    j.write("state", new_node="n1")
    j.write("command.start", node="n1", tag="glance-tui-aa", command="glance-manage db expand")
    return j


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_a_bad_line_is_named_refused_by_a_run_and_skipped_by_a_look(tmp_path, name):
    j = good_journal(tmp_path)
    append(j.path, BAD_LINES[name] + b"\n")
    j.write("command.end", node="n1", tag="glance-tui-aa", exit=0)  # the bad line is in the middle now
    found = scan(j.path)
    assert [b.line for b in found.bad] == [4] and not found.torn, found
    assert [r["event"] for r in found.records] == ["run.start", "state", "command.start", "command.end"]
    with pytest.raises(JournalProblem) as err:
        list(read_records(j.path))
    text = err.value.message
    assert f"{j.path}: line 4: " in text and f"mv {j.path} {j.path}.bad" in text and "glance-tui status" in text
    assert err.value.exit_code == 2 and "\n" not in text
    with pytest.raises(JournalProblem):
        unfinished_journal(tmp_path)  # a resume decides from it
    warned: list[str] = []
    pending = unfinished_journal(tmp_path, warned.append)  # a look: named, skipped
    assert pending is not None and pending.path == j.path and warned == [f"{found.bad[0]} (line skipped)"]
    assert [r["event"] for r in pending.records()][-1] == "command.end"
    rec = read_run(j.path, warned.append)
    assert any(n.startswith("journal line 4 skipped: ") for n in rec.notes)
    json.loads(render(rec, "json"), parse_constant=lambda c: pytest.fail(f"{c} in a report"))


def test_shapes_name_the_field_and_the_type():
    assert shape_problem({"ts": "x", "run": "r", "event": "e"}) == "the field 'ts' is a string, expected seconds since 1970"
    assert shape_problem({"ts": -1e308, "run": "r", "event": "e"}) == "the field 'ts' is a number, expected seconds since 1970"
    assert "expected a number (at most 1e15)" in shape_problem({"ts": 1, "run": "r", "event": "e", "waited": 1e300})
    assert shape_problem({"ts": 1, "run": "r", "event": "step.start", "step": []}) == "the field 'step' is a list, expected a string or null"
    assert shape_problem([1, 2, 3]) == "not a record (a JSON list, not an object)"
    assert shape_problem({"ts": 1, "run": "r", "event": "action.start", "step": "s"}) == "the field 'action' is missing"
    assert parse_line(b'{"ts": NaN}')[1].startswith("not a JSON record (NaN is not a JSON number")
    assert parse_line(b"\xff")[1] == "not UTF-8 text (byte 0xff at column 1)"
    rec, problem = parse_line(b'{"ts": 1.5, "run": "r", "event": "e", "extra": [NaN]}'.replace(b"NaN", b"1"))
    assert rec is not None and problem == ""  # a field no reader uses may hold anything JSON


def test_a_torn_last_line_is_dropped_and_a_later_write_marks_it(tmp_path):
    j = good_journal(tmp_path)
    append(j.path, b'{"ts": 1, "event": "action.st')  # killed mid-write
    assert [r["event"] for r in read_records(j.path)] == ["run.start", "state", "command.start"]
    assert scan(j.path).torn == [4]
    j.write("run.resume", pid=1)  # the resumed run ends the torn line and marks it
    lines = j.path.read_bytes().splitlines()
    assert lines[3] == b'{"ts": 1, "event": "action.st' and json.loads(lines[4])["event"] == "journal.torn"
    assert [r["event"] for r in read_records(j.path)][-2:] == ["journal.torn", "run.resume"]
    assert scan(j.path).torn == [4] and not scan(j.path).bad
    # the same bytes with no mark after them were not torn by a crash: refused
    append(j.path, b'{"ts": 2, "event": "x\n')
    j2 = Journal.open(j.path)
    j2.write("step.start", step="preflight", title="t")  # the file ends with a newline: no mark is added
    with pytest.raises(JournalProblem, match="line 7: not a JSON record"):
        list(read_records(j.path))
    # a line that is whole but unterminated is a record (a file copied without its last newline)
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(Journal.create(tmp_path / "w", config_path=None, target_release="2024.1").path.read_bytes().rstrip(b"\n"))
    assert [r["event"] for r in read_records(whole)] == ["run.start"]


@pytest.mark.parametrize("kind", ["fifo", "directory", "empty", "not a journal", "too big"])
def test_a_file_that_is_not_a_journal_is_named_never_waited_on(tmp_path, kind, monkeypatch):
    runs = tmp_path / "state" / "glance-tui" / "runs" / "abc"
    good = good_journal(runs)
    bad = runs / "29990101T000000Z-bad.jsonl"  # the newest
    if kind == "fifo":
        os.mkfifo(bad)
    elif kind == "directory":
        bad.mkdir()
    elif kind == "empty":
        bad.touch()
    elif kind == "not a journal":
        bad.write_text(Path("/etc/passwd").read_text())
    else:
        monkeypatch.setattr("glance_tui.journal_read.JOURNAL_LIMIT", good.path.stat().st_size)
        bad.write_bytes(good.path.read_bytes() * 10)
    with pytest.raises(JournalProblem) as err:  # a run would resume or supersede the newest: refused
        unfinished_journal(runs)
    assert str(bad) in err.value.message and f"mv {bad}" in err.value.message
    warned: list[str] = []
    assert latest_journal(runs, warned.append).path == good.path and str(bad) in warned[0]
    warned.clear()
    assert [r.run_id for r in list_runs(tmp_path / "state" / "glance-tui", warned.append)] == [good.run_id]
    assert len(warned) == 1 and str(bad) in warned[0] and warned[0].endswith("(skipped)")
    with pytest.raises(JournalProblem) as err:
        read_run(bad)
    assert err.value.exit_code == 2 and str(bad) in err.value.message


def test_report_invents_nothing_from_an_empty_file_or_a_foreign_one(tmp_path):
    for path, why in ((tmp_path / "zero.jsonl", "it is empty"), (Path("/etc/passwd"), "line 1: not a JSON record"),
                      (tmp_path / "other.jsonl", "its first record is 'state', not 'run.start'")):
        if path.parent == tmp_path:
            path.write_text('{"ts": 1, "run": "r", "event": "state"}\n' if "other" in path.name else "")
        with pytest.raises(JournalProblem) as err:
            read_run(path)
        assert f"{path} is not a glance-tui journal: {why}" in err.value.message
    only_start = Journal.create(tmp_path / "fresh", config_path=None, target_release="2024.1")
    rec = read_run(only_start.path)  # a run that recorded no step yet: no step is said to have been skipped
    assert rec.steps == [] and not [n for n in rec.notes if "has no record" in n], rec.notes


def test_every_state_the_engine_writes_passes(tmp_path):
    """The shapes the engine writes (a soft-gate override, a drain-timeout override, a backup, a seen stop) read back."""
    j = Journal.create(tmp_path, config_path=None, target_release="2024.1")
    j.write("state", new_node="n1", start_release="2023.1", log_bin_trust_old=False,
            backup={"path": "/b.sql", "size": 10, "sha256": "ab", "has_images_table": True, "where": "local"},
            overrides=[{"step": "node:n2", "gates": ["drain-timeout"], "reason": "typed"},
                       {"gate": "drain-timeout", "node": "n2", "reason": "typed", "in_flight": 2}],
            started={"n1": {"installed_at": 1700000000.5, "stopped_at": 1700000001.25}})
    assert [r["event"] for r in read_records(j.path)] == ["run.start", "state"]


def test_report_shows_an_unknown_action_id_as_written(tmp_path):
    j = Journal.create(tmp_path, config_path=None, target_release="2024.1")
    j.write("step.start", step="backup", title="Back up")
    j.write("action.start", step="backup", action="{evil} {0}", node=None, commands=[])
    assert read_run(j.path).steps[0].actions[0].title == "{evil} {0}"


def test_a_non_finite_number_is_never_written(tmp_path):
    j = Journal.create(tmp_path, config_path=None, target_release="2024.1")
    j.write("command", node="n1", command="x", duration=float("nan"), tail=["a"], nested={"v": float("inf")})
    last = json.loads(j.path.read_bytes().splitlines()[-1])
    assert last["duration"] is None and last["nested"] == {"v": None}
    assert [r["event"] for r in read_records(j.path)] == ["run.start", "command"]


# ---------------------------------------------------------------- the state directory


@pytest.fixture
def mounts(tmp_path):
    """``mount(name, options)``: a tmpfs under tmp_path (root only, else the test is skipped); all unmounted at teardown."""
    made: list[Path] = []

    def mount(name: str, options: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        made.append(where)
        return where

    yield mount
    for where in reversed(made):
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def tiny_fs(mounts):
    return mounts("tiny", "size=64k")


def fill(mount: Path) -> None:
    """Write zeros until the file system is full (ENOSPC)."""
    fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_a_full_disk_at_the_start_leaves_no_journal(tiny_fs):
    directory = tiny_fs / "runs" / "abc"
    directory.mkdir(parents=True)
    fill(tiny_fs)
    with pytest.raises(StateDirProblem) as err:
        Journal.create(directory, config_path=None, target_release="2024.1")
    assert "no space left on its file system" in err.value.message and str(directory) in err.value.message
    assert err.value.exit_code == 2 and list(directory.iterdir()) == []  # no 0-byte journal


def test_a_disk_that_fills_mid_run_refuses_every_later_write(tiny_fs):
    j = Journal.create(tiny_fs, config_path=None, target_release="2024.1")
    fill(tiny_fs)
    with pytest.raises(JournalWriteFailed) as err:
        j.write("command.start", node="n1", tag="glance-tui-bb", command="glance-manage db contract " + "x" * 8192)  # past the page
    assert "No space left on device" in err.value.message and "stopped before its next change" in err.value.message
    (tiny_fs / "filler").unlink()  # space comes back: this run still writes nothing more (it stopped)
    with pytest.raises(JournalWriteFailed):
        j.write("action.start", step="contract", action="contract")
    assert [r["event"] for r in read_records(j.path)] == ["run.start"]  # a resume reads what is there


def test_a_read_only_state_directory(mounts):
    mount = mounts("ro", "size=64k,ro")
    with pytest.raises(StateDirProblem, match="the file system is read-only"):
        Journal.create(mount / "runs" / "abc", config_path=None, target_release="2024.1")
    with pytest.raises(StateDirProblem, match="the file system is read-only"):
        RunLock(mount / "runs" / "abc").acquire()


def test_files_where_directories_belong(tmp_path, monkeypatch):
    state = tmp_path / "state-file"
    state.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    directory = journal_dir(tmp_path / "c.toml")
    with pytest.raises(StateDirProblem) as err:
        Journal.create(directory, config_path=None, target_release="2024.1")
    assert f"{state} is a file, not a directory" in err.value.message and f"XDG_STATE_HOME (now {state})" in err.value.message
    with pytest.raises(StateDirProblem, match="is a file, not a directory"):
        RunLock(directory).acquire()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "ok"))
    directory = journal_dir(tmp_path / "c.toml")
    directory.parent.mkdir(parents=True)
    directory.write_text("")  # the journal directory is a file
    with pytest.raises(StateDirProblem, match=f"{directory} is a file, not a directory"):
        Journal.create(directory, config_path=None, target_release="2024.1")
    directory.unlink()
    (directory / "run.lock").mkdir(parents=True)  # run.lock a directory
    with pytest.raises(StateDirProblem) as err:
        RunLock(directory).acquire()
    assert "run.lock: it is a directory" in err.value.message and "rmdir" in err.value.message


def test_no_home_and_the_other_errnos(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError("no home"))))
    with pytest.raises(StateDirProblem, match="HOME is not set"):
        state_home()
    for code, words in ((errno.EACCES, "permission denied"), (errno.EDQUOT, "no space left"), (errno.EIO, "Input/output error")):
        problem = unusable(OSError(code, os.strerror(code)), tmp_path / "x", "write")
        assert words in problem.message and "XDG_STATE_HOME" in problem.message and problem.exit_code == 2


def test_crash_log_in_an_unusable_state_directory_says_why(tmp_path, monkeypatch):
    from glance_tui.crash import bug_line

    state = tmp_path / "file"
    state.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    line = bug_line(RuntimeError("boom"))
    assert "nowhere" not in line and f"{state} is a file, not a directory" in line
