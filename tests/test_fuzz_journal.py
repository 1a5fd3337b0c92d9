"""The real CLI in a subprocess against broken journals and unusable state directories.

A bad journal line or file is named in one line: skipped by a look (``status``, ``check``,
``runs``, ``report``), refused with the file, the line and what to do by anything that would
resume or supersede it (``run --yes`` with or without ``--new-run``/``--dry-run``, the TUI) — exit
2, never 70. An unusable state directory (a file, read-only, full, ``run.lock`` a directory) is
one line naming the path and the fix, exit 2, with no journal left behind. A disk that fills
mid-run stops the run before its next change, saying what is done and what is left; freeing
space and running again finishes the upgrade.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glance_tui.journal import Journal, journal_dir, read_records
from tests.test_fuzz_cli import BOUND, ROOT, assert_clean, cli, config, run_many, silent  # noqa: F401 - silent is a fixture
from tests.test_journal_trust import BAD_LINES, fill, mounts  # noqa: F401 - mounts is a fixture

KINDS = ("non-UTF-8", "random bytes", "a JSON array", "ts a string", "step a list", "NaN", "command.start without tag")
REFUSING = (("run", "--yes"), ("run", "--yes", "--new-run"), ("run", "--yes", "--dry-run"), ("run", "--yes", "--dry-run", "--resume"), ())


def setup(tmp_path: Path, port: int, name: str) -> tuple[Path, Path, Path]:
    """A config on a silent service, its state directory, and a pending journal with a bad line 4."""
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=port, db_port=port, lb_port=port, known_hosts=kh)
    state = tmp_path / "state"
    j = Journal.create(journal_dir(path, state / "glance-tui"), config_path=path, target_release="2024.1")
    j.write("state", new_node="g1")
    j.write("command.start", node="g1", tag="glance-tui-aa", command="glance-manage db expand")
    with open(j.path, "ab") as fh:
        fh.write(BAD_LINES[name] + b"\n")
    j.write("command.end", node="g1", tag="glance-tui-aa", exit=0)
    return path, state, j.path


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.endswith("\n"), err
    return err


@pytest.mark.parametrize("name", KINDS)
async def test_a_bad_pending_journal_stops_a_run_and_is_named_by_a_look(tmp_path, silent, name):
    path, state, journal = setup(tmp_path, silent, name)
    cases = [(path, args, state) for args in REFUSING] + [(path, ("status",), state), (path, ("check",), state)]
    # the runs that take the run lock go one at a time: two at once, one is rightly refused by the
    # other's lock (taken before any journal is read) and never gets to read the journal
    locking = [c for c in cases if c[1][:1] == ("run",) and "--dry-run" not in c[1]]
    results = dict(zip(map(id, locking), await run_many(locking, parallel=1)))
    rest = [c for c in cases if id(c) not in results]
    results.update(zip(map(id, rest), await run_many(rest)))
    for args, (rc, out, err, elapsed) in zip([c[1] for c in cases], [results[id(c)] for c in cases]):
        assert_clean(out, err, state)
        assert elapsed < BOUND, (args, elapsed)
        if args in REFUSING:  # a resume (or a new run's carry-over) decides from it: refused before anything is probed
            assert rc == 2, (args, rc, out, err)
            line = one_line(err)
            assert f"{journal}: line 4: " in line and f"mv {journal} {journal}.bad" in line and "glance-tui status" in line
        else:  # a look: the line is named, the look goes on (the silent cluster is unknown: check fails)
            assert rc == (0 if args == ("status",) else 1), (args, rc, err)
            assert f"warning: {journal}: line 4: " in err and "(line skipped)" in err
            assert "internal error" not in err
    assert not (state / "glance-tui" / "crash.log").exists()
    assert len(list(journal.parent.glob("*.jsonl"))) == 1  # nothing superseded, nothing new


async def test_runs_and_report_skip_what_is_not_a_journal_and_never_hang(tmp_path, silent):
    path, state, journal = setup(tmp_path, silent, "a JSON array")
    runs = journal.parent
    os.mkfifo(runs / "20990101T000000Z-fifo.jsonl")
    (runs / "20990101T000001Z-dir.jsonl").mkdir()
    (runs / "20990101T000002Z-bin.jsonl").write_bytes(os.urandom(2000).replace(b"\n", b"x"))
    (runs / "20990101T000003Z-types.jsonl").write_text('{"ts": "x", "run": 1, "event": "run.start"}\n')
    (runs / "20990101T000004Z-zero.jsonl").write_text("")
    env = dict(os.environ, XDG_STATE_HOME=str(state))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "glance_tui", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=BOUND)

    listed = run("runs", "--json")
    assert listed.returncode == 0 and [r["run"] for r in json.loads(listed.stdout)["runs"]] == [journal.stem], listed.stderr
    warnings = listed.stderr.splitlines()
    assert len(warnings) == 6 and all(w.startswith("warning: ") for w in warnings), warnings
    for name in ("fifo", "dir", "bin", "types", "zero"):
        assert any(f"-{name}.jsonl" in w and w.endswith("(skipped)") for w in warnings), (name, warnings)
    assert any(f"{journal}: line 4: " in w for w in warnings)
    latest = run("report", "--format", "json")  # the newest that is a journal, the others named
    assert latest.returncode == 0, latest.stderr
    data = json.loads(latest.stdout, parse_constant=lambda c: pytest.fail(f"{c} in a report"))
    assert data["run_id"] == journal.stem and any(n.startswith("journal line 4 skipped") for n in data["notes"])
    for bad in ("fifo", "dir", "bin", "types", "zero"):
        refused = run("report", str(runs / f"{next(p.name for p in runs.iterdir() if f'-{bad}.' in p.name)}"))
        assert refused.returncode == 2 and one_line(refused.stderr).startswith("error: ") and "Traceback" not in refused.stderr, (bad, refused)
    for foreign in ("/etc/passwd", "/dev/null"):
        refused = run("report", foreign)
        assert refused.returncode == 2 and refused.stdout == "" and "INTERRUPTED" not in refused.stdout, (foreign, refused)


async def test_a_nan_in_a_journal_never_reaches_the_report_json(tmp_path, silent):
    path, state, journal = setup(tmp_path, silent, "Infinity in a field")
    env = dict(os.environ, XDG_STATE_HOME=str(state))
    done = subprocess.run([sys.executable, "-m", "glance_tui", "report", str(journal), "--format", "json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=BOUND)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout, parse_constant=lambda c: pytest.fail(f"{c} in a report"))
    assert not [n for n in data["notes"] if "has no record" in n], "no step was recorded, so none was skipped either"
    assert f"{journal}: line 4: not a JSON record (Infinity is not a JSON number" in done.stderr


# ---------------------------------------------------------------- unusable state directories


def _state_file(tmp: Path, cfg: Path, mount) -> tuple[Path, str]:
    state = tmp / "a-file"
    state.write_text("")
    return state, f"{state} is a file, not a directory"


def _journal_dir_file(tmp: Path, cfg: Path, mount) -> tuple[Path, str]:
    state = tmp / "state"
    directory = journal_dir(cfg, state / "glance-tui")
    directory.parent.mkdir(parents=True)
    directory.write_text("")
    return state, f"{directory} is a file, not a directory"


def _lock_dir(tmp: Path, cfg: Path, mount) -> tuple[Path, str]:
    state = tmp / "state"
    lock = journal_dir(cfg, state / "glance-tui") / "run.lock"
    lock.mkdir(parents=True)
    return state, f"{lock}: it is a directory — fix: remove it (`rmdir {lock}`)"


def _read_only(tmp: Path, cfg: Path, mount) -> tuple[Path, str]:
    return mount("ro", "size=64k,ro"), "the file system is read-only"


def _full(tmp: Path, cfg: Path, mount) -> tuple[Path, str]:
    where = mount("full", "size=64k")
    fill(where)
    return where, "no space left on its file system"


@pytest.mark.parametrize("make", [_state_file, _journal_dir_file, _lock_dir, _read_only, _full], ids=lambda f: f.__name__.strip("_"))
async def test_an_unusable_state_directory_is_one_line_and_leaves_nothing(tmp_path, silent, mounts, make):
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=silent, db_port=silent, lb_port=silent, known_hosts=kh)
    state, words = make(tmp_path, path, mounts)
    # the TUI is refused before its screen opens when the lock cannot be read; otherwise inside it (see below)
    tui = [()] if make in (_state_file, _journal_dir_file, _lock_dir) else []
    for args in [("run", "--yes"), ("run", "--yes", "--new-run"), *tui]:
        rc, out, err, elapsed = await cli(path, *args, state=state)
        assert rc == 2 and words in one_line(err), (args, rc, err)
        assert "internal error" not in err and "Errno" not in err and elapsed < BOUND
        if state.is_dir():
            assert not [p for p in state.rglob("*.jsonl")], "no journal may be left behind"
            assert_clean(out, err, state)
    rc, out, err, _ = await cli(path, "status", state=state)  # a look writes nothing: it still works
    assert rc == 0 and "internal error" not in err, err


async def message_screen(pilot):
    """The dialog the app shows (waited for)."""
    from screens.dialogs import MessageScreen
    from tests.ui_helpers import wait_for

    await wait_for(pilot, lambda: isinstance(pilot.app.screen, MessageScreen), what="a message dialog")
    return pilot.app.screen


async def test_the_tui_shows_a_state_directory_problem_in_a_dialog(tmp_path, monkeypatch):
    """Inside the app (the pre-check passed, then opening the run failed): a dialog with one line, no errno."""
    from glance_tui.engine import Engine
    from screens.app import GlanceApp
    from tests.ui_scripted import scripted_config

    config = scripted_config(tmp_path)
    state = tmp_path / "a-file"
    state.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    app = GlanceApp(lambda resume: Engine.open(config, resume=resume), config=config, resume=False, multiplexer=True)
    async with app.run_test() as pilot:
        screen = await message_screen(pilot)
        assert screen.title_text == "Cannot open the run"
        text = str(screen.text)
        assert f"{state} is a file, not a directory" in text and "Errno" not in text and "XDG_STATE_HOME" in text
        await pilot.press("enter")
    assert app.return_code == 2


# ---------------------------------------------------------------- the disk fills mid-run


def fill_slack(journal: Path) -> None:
    """Append newlines to ``journal`` until the file system refuses (the rest of its last page)."""
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\n")
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.mark.services
def test_a_disk_that_fills_mid_run_stops_before_the_next_change_and_resumes(sim_lab, tmp_path, mounts, capsys, monkeypatch):
    from glance_tui.cli import main

    sim_lab.reset()
    state = mounts("state", "size=4m")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    env = dict(os.environ, XDG_STATE_HOME=str(state))
    proc = subprocess.Popen([sys.executable, "-m", "glance_tui", "run", "--yes", "--quiet", "-c", str(sim_lab.config_path)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journals = state / "glance-tui" / "runs"

    def records() -> list[dict]:
        return [r for p in sorted(journals.rglob("*.jsonl")) for r in read_records(p)]

    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if any(r["event"] == "action.end" and r.get("step") == "new-node" and r.get("action") == "drain" and r.get("ok") for r in records()):
            fill(state)
            for journal in journals.rglob("*.jsonl"):  # tmpfs still has room in the journal's last page:
                fill_slack(journal)                   # blank lines (which every reader skips) take it
            break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, (proc.returncode, out[-2000:], err)
    line = one_line(err)
    assert "cannot be written (No space left on device)" in line and "the run stopped in step 2" in line
    assert "done: step 0, 1" in line and "left: step 2" in line and "free space" in line, line
    seen = records()
    assert not any(r["event"] == "action.start" and r.get("action") == "stop" for r in seen)
    assert main(["status", "-c", str(sim_lab.config_path), "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    new_node = next(n for n in snap["nodes"] if n["name"] == "glance-1")
    assert new_node["running"] is True, "the stop whose start record could not be written was sent"
    (state / "filler").unlink()  # space again: the same command resumes from the cluster's truth and finishes
    assert main(["run", "--yes", "--quiet", "-c", str(sim_lab.config_path)]) == 0, capsys.readouterr().out[-3000:]
    final = records()
    assert final[-1]["event"] == "run.end" and final[-1]["ok"] is True
    assert sum(1 for r in final if r["event"] == "action.start" and r.get("action") == "expand") == 1


async def test_the_tui_shows_a_journal_that_cannot_be_written_as_a_stop_not_a_bug(tmp_path):
    """A step worker that ends with JournalWriteFailed (the disk filled mid-step): a dialog with the line, not "please report it"."""
    from glance_tui.journal import JournalWriteFailed
    from screens.failures import WorkerFailed
    from tests.ui_helpers import make, ready

    app, _ = make(tmp_path)
    error = JournalWriteFailed("the journal /x/run.jsonl cannot be written (No space left on device); the run stopped in step 2 (Drain) — "
                               "done: step 0, 1; left: step 2, 3", fix="free space")
    async with app.run_test() as pilot:
        await ready(pilot)
        app.post_message(WorkerFailed("step", "step 2", error))
        screen = await message_screen(pilot)
        assert screen.title_text == "The run stopped: its journal cannot be used"
        assert "done: step 0, 1; left: step 2, 3" in str(screen.text) and "please report" not in screen.title_text


async def test_the_journal_screen_names_a_bad_line_instead_of_crashing(tmp_path):
    from screens.journal import JournalScreen
    from tests.ui_helpers import make, ready, wait_for

    app, engine = make(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        with open(engine.journal.path, "ab") as fh:
            fh.write(BAD_LINES["a JSON array"] + b"\n" + BAD_LINES["a JSON array"] + b"\n")
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen))
        await wait_for(pilot, lambda: any("cannot be trusted" in line.text for line in app.screen.query_one("#journal").lines))
        text = "".join("".join(line.text for line in app.screen.query_one("#journal").lines).split())  # unwrapped
        assert f"{engine.journal.path}:line" in text and "notarecord" in text


@pytest.fixture
def as_nobody():
    """``run(args, env) -> CompletedProcess``: the CLI as user nobody (root bypasses permissions), in a directory nobody can read."""
    import shutil
    import tempfile

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv")
    where = Path(tempfile.mkdtemp(prefix="glance-tui-nobody-"))
    where.chmod(0o755)

    def run(args: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable, "-m", "glance_tui", *args],
                              cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=BOUND)

    yield where, run
    shutil.rmtree(where, ignore_errors=True)


def test_an_unreadable_journal_and_an_unwritable_home(as_nobody, silent):
    where, run = as_nobody
    runs = where / "state" / "glance-tui" / "runs" / "abc"
    runs.mkdir(parents=True)
    for part in (where / "state", where / "state" / "glance-tui", runs.parent, runs):
        part.chmod(0o755)
    locked = runs / "20990101T000000Z-locked.jsonl"
    locked.write_text("{}\n")
    locked.chmod(0)
    listed = run(("runs",), {"XDG_STATE_HOME": str(where / "state")})
    assert listed.returncode == 0 and one_line(listed.stderr) == f"warning: journal {locked} is not readable (permission denied) (skipped)\n"
    refused = run(("report", str(locked)), {"XDG_STATE_HOME": str(where / "state")})
    assert refused.returncode == 2 and "permission denied" in one_line(refused.stderr)

    kh = where / "known_hosts"
    kh.write_text("")
    cfg = config(where, ssh_port=silent, db_port=silent, lb_port=silent, known_hosts=kh)
    cfg.chmod(0o644)
    home = where / "home"
    home.mkdir(mode=0o755)  # owned by root: not writable for nobody
    env = {"HOME": str(home), "XDG_STATE_HOME": "", "CLI_FUZZ_PW": "pw-nobody-1", "CLI_FUZZ_LB_PW": "pw-nobody-2"}
    done = run(("run", "--yes", "-c", str(cfg)), env)
    assert done.returncode == 2, done
    line = one_line(done.stderr)
    assert f"{home}/.local" in line and "permission denied" in line and "set XDG_STATE_HOME to a writable directory" in line
    assert not list(home.rglob("*"))
