"""``-o`` and every report the tool writes: nothing at the path is clobbered (issue 18, item 1).

On real files, FIFOs (with a reader thread), symbolic links, ``/dev/full`` (ENOSPC),
read-only directories, and through the real CLI in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from glance_tui.errors import UsageError
from glance_tui.outfile import write_output

ROOT = Path(__file__).resolve().parents[1]
ROOT_USER = os.geteuid() == 0


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp") or p.name.endswith(".partial"))


def test_a_new_file_is_0600_and_nothing_else_is_left(tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    assert write_output(out, "hello\n") == out
    assert out.read_text() == "hello\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_an_existing_file_keeps_its_mode_and_owner(tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    out.write_text("old\n")
    os.chmod(out, 0o644)
    if ROOT_USER:
        os.chown(out, 12345, 23456)
    write_output(out, "new\n")
    info = out.stat()
    assert out.read_text() == "new\n"
    assert stat.S_IMODE(info.st_mode) == 0o644
    if ROOT_USER:
        assert (info.st_uid, info.st_gid) == (12345, 23456)


def test_a_link_planted_at_any_temporary_name_is_never_followed(tmp_path: Path) -> None:
    """The old ``r.md.partial`` attack, and links at names like the new temporary files: none is written."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "r.md.partial").symlink_to(victim)
    for i in range(50):
        (tmp_path / f".r.md.{i:08x}.tmp").symlink_to(victim)
    write_output(tmp_path / "r.md", "report\n")
    assert victim.read_text() == "precious\n"
    assert (tmp_path / "r.md").read_text() == "report\n" and not (tmp_path / "r.md").is_symlink()


def test_a_link_to_a_file_is_followed_like_a_redirect_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "docs" / "real.md"
    real.parent.mkdir()
    real.write_text("old\n")
    os.chmod(real, 0o640)
    link = tmp_path / "r.md"
    link.symlink_to(real)
    assert write_output(link, "new\n") == real
    assert link.is_symlink() and real.read_text() == "new\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert leftovers(real.parent) == [] and leftovers(tmp_path) == []


def test_a_dangling_link_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "r.md"
    link.symlink_to(tmp_path / "elsewhere" / "x")
    with pytest.raises(UsageError, match="symbolic link to nothing"):
        write_output(link, "x\n")
    assert link.is_symlink() and not (tmp_path / "elsewhere").exists()


def fifo_reader(fifo: Path) -> tuple[threading.Thread, list[bytes]]:
    """A FIFO at ``fifo`` and a thread reading it to the end (a shell redirect into it blocks until one opens it)."""
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    return reader, got


def test_a_fifo_is_written_like_a_redirect_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    reader, got = fifo_reader(fifo)
    assert write_output(fifo, "through the pipe\n") is None
    reader.join(10)
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert leftovers(tmp_path) == []


def test_a_link_to_a_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    reader, got = fifo_reader(fifo)
    link = tmp_path / "out"
    link.symlink_to(fifo)
    write_output(link, "x\n")
    reader.join(10)
    assert got == [b"x\n"] and link.is_symlink()


def test_dev_null_stays_a_device(tmp_path: Path) -> None:
    before = os.stat("/dev/null")
    assert write_output("/dev/null", "gone\n") is None
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino


def test_a_full_device_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        write_output("/dev/full", "x" * 100_000)
    assert "No space left on device" in str(caught.value) and "\n" not in str(caught.value)


def test_a_full_disk_removes_the_temporary_file_and_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC and EDQUOT mid-write (os.write fails as a full filesystem makes it fail)."""
    import errno

    import glance_tui.outfile as outfile

    out = tmp_path / "r.md"
    out.write_text("old\n")
    for code in (errno.ENOSPC, errno.EDQUOT):
        def full(fd: int, data: object, code: int = code) -> int:
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(outfile.os, "write", full)
        with pytest.raises(UsageError, match=os.strerror(code)):
            write_output(out, "new\n")
        monkeypatch.undo()
        assert out.read_text() == "old\n" and leftovers(tmp_path) == []


def test_a_file_that_may_not_grow(tmp_path: Path) -> None:
    """A real write that fails mid-way (RLIMIT_FSIZE: EFBIG, as a quota fails): the temporary file is removed."""
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); "
            "from glance_tui.outfile import write_output\n"
            "try:\n  write_output(sys.argv[1], 'x' * 100000)\nexcept Exception as e:\n  print(e)")
    out = tmp_path / "r.md"
    out.write_text("old\n")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "File too large" in done.stdout, done
    assert out.read_text() == "old\n" and leftovers(tmp_path) == []


def test_ctrl_c_while_writing_removes_the_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import glance_tui.outfile as outfile

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(outfile.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_output(tmp_path / "r.md", "x\n")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_while_writing_removes_the_temporary_file_and_still_kills(tmp_path: Path) -> None:
    """SIGTERM while the temporary file exists (held open by a slow fsync): it is removed, and SIGTERM still ends the process."""
    code = ("import os, sys, glance_tui.outfile as o\n"
            "real = o.os.fsync\n"
            "def slow(fd):\n  print('writing', flush=True); import time; time.sleep(30)\n"
            "o.os.fsync = slow\n"
            "o.write_output(sys.argv[1], 'x')\n")
    out = tmp_path / "r.md"
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    assert len(leftovers(tmp_path)) == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == -signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_directories_sockets_and_missing_devices_are_refused(tmp_path: Path) -> None:
    import socket

    with pytest.raises(UsageError, match="is a directory"):
        write_output(tmp_path, "x")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s"))
    try:
        with pytest.raises(UsageError, match="a socket"):
            write_output(tmp_path / "s", "x")
    finally:
        sock.close()
    with pytest.raises(UsageError, match="no such device"):
        write_output("/dev/glance-tui-no-such-device", "x")
    assert not Path("/dev/glance-tui-no-such-device").exists()


def test_a_read_only_directory_is_one_line(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "r.md").write_text("old\n")
    os.chmod(ro, 0o555)
    try:
        if ROOT_USER:  # root writes through permissions: a read-only bind mount is what stops it
            pytest.skip("root ignores directory permissions")
        with pytest.raises(UsageError, match="Permission denied"):
            write_output(ro / "r.md", "new\n")
        assert (ro / "r.md").read_text() == "old\n" and leftovers(ro) == []
    finally:
        os.chmod(ro, 0o755)


def test_a_read_only_filesystem_is_one_line() -> None:
    """/proc/sys is read-only for writes of new files; /sys is a read-only filesystem in most containers."""
    target = Path("/sys/glance-tui-test.md")
    with pytest.raises(UsageError) as caught:
        write_output(target, "x\n")
    assert "\n" not in str(caught.value) and not target.exists()


# ---------------------------------------------------------------- through the CLI


def _report(tmp_path: Path, *args: str, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    from glance_tui.journal import Journal

    made = sorted(tmp_path.glob("*.jsonl"))
    if made:
        journal = made[0]
    else:  # a real journal, as the engine writes it
        written = Journal.create(tmp_path, config_path=None, target_release="2024.1")
        written.write("step.start", step="new-node", title="Drain and stop the NEW NODE (glance-1)")
        journal = written.path
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    return subprocess.run([sys.executable, "-m", "glance_tui", "report", str(journal), *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT, env=env)


def test_report_o_through_a_planted_partial_link_leaves_the_victim(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "r.md.partial").symlink_to(victim)
    done = _report(tmp_path, "-o", str(tmp_path / "r.md"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"written: {tmp_path / 'r.md'}\n"
    assert victim.read_text() == "precious\n" and "# " in (tmp_path / "r.md").read_text()


def test_report_o_dash_is_standard_output(tmp_path: Path) -> None:
    done = _report(tmp_path, "--format", "json", "-o", "-")
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout)
    assert not (tmp_path / "-").exists()


def test_report_o_dev_stdout_is_written_like_a_redirect(tmp_path: Path) -> None:
    out = tmp_path / "captured"
    with out.open("w") as fh:
        done = _report(tmp_path, "--format", "json", "-o", "/dev/stdout", stdout=fh.fileno())
    assert done.returncode == 0, done.stderr
    json.loads(out.read_text())  # the document alone: no "written:" line mixed in


def test_report_o_to_a_full_device_and_a_directory_is_one_line_exit_2(tmp_path: Path) -> None:
    for target in ("/dev/full", str(tmp_path)):
        done = _report(tmp_path, "-o", target)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith("error: -o: cannot write"), done.stderr


def test_report_o_to_a_fifo_with_a_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    reader, got = fifo_reader(fifo)
    started = time.monotonic()
    done = _report(tmp_path, "-o", str(fifo))
    reader.join(10)
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert got and got[0].startswith(b"# ") and time.monotonic() - started < 60
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_the_labs_report_writer_never_follows_a_planted_link(tmp_path: Path) -> None:
    from glance_tui.lab.rehearse import write_reports

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "rehearsal.json").symlink_to(tmp_path / "nowhere" / "x")
    with pytest.raises(UsageError, match="symbolic link to nothing"):
        write_reports([], tmp_path / "rehearsal.json")
    write_reports([], tmp_path / "r.json")
    assert (tmp_path / "r.json").read_text() == "[]\n" and stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o600
    assert victim.read_text() == "precious\n" and leftovers(tmp_path) == []


def test_a_fifo_swapped_for_a_file_after_the_look_is_neither_truncated_nor_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The path was a FIFO when looked at, a regular file (someone else's) when opened."""
    import glance_tui.outfile as outfile

    target = tmp_path / "pipe"
    target.write_text("someone else's data\n")
    real_lstat = os.lstat
    fifo_info = os.stat_result((stat.S_IFIFO | 0o600,) + tuple(real_lstat(target))[1:])
    monkeypatch.setattr(outfile.os, "lstat", lambda p: fifo_info if Path(p) == target else real_lstat(p))
    with pytest.raises(UsageError, match="changed while being opened"):
        write_output(target, "report\n")
    assert target.read_text() == "someone else's data\n"
