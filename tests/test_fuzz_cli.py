"""The real CLI in a subprocess against hostile networks: silent and refusing services, an
unknown host key, Ctrl-C at any moment, credentials in a URL.

For every case: the exit code, output without a traceback or asyncio shutdown noise, a bound
on time, and no secret in stdout, stderr, the journal or crash.log. Cases that used to fail
one run in six are run many times.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from glance_tui.lab.procs import free_port
from tests.sigint_ready import marking, until_marked
from tests.test_fuzz_config import to_toml

ROOT = Path(__file__).resolve().parents[1]
SECRET = "Cli-fuzz-s3cret"
LB_SECRET = "Lb-fuzz-pw-8+"  # every secret in use has at least 8 characters
SHORT_SECRET = "q7"  # refused at load: redacting it would reveal it (test_a_short_secret_is_a_config_error)
NOISE = ("Traceback", "unhandled exception", "never awaited", "Task was destroyed", "Exception ignored", "Unclosed", "ResourceWarning")
TIMEOUT = 1  # every network timeout in these configs
BOUND = 25.0  # seconds per run: Python start-up and imports on a loaded 2-core machine, plus ~2 timeouts


def _listen_on_both(hosts: tuple[str, ...]) -> list:
    """One listening socket per host, all on the same free port (each node has its own address)."""
    import socket

    for _ in range(50):
        socks = [socket.socket()]
        socks[0].bind((hosts[0], 0))
        port = socks[0].getsockname()[1]
        try:
            for host in hosts[1:]:
                socks.append(socket.socket())
                socks[-1].bind((host, port))
        except OSError:
            for s in socks:
                s.close()
            continue
        for s in socks:
            s.listen(64)
        return socks
    raise RuntimeError("no port free on every host")


@pytest.fixture
def silent():
    """A TCP service on 127.0.0.1 and 127.0.0.2 (one port) that accepts and never answers (held open by a thread in this process)."""
    import selectors
    import threading

    socks = _listen_on_both(("127.0.0.1", "127.0.0.2"))
    held: list = []
    stop = threading.Event()

    def accept() -> None:
        with selectors.DefaultSelector() as sel:
            for s in socks:
                sel.register(s, selectors.EVENT_READ)
            while not stop.is_set():
                for key, _ in sel.select(0.2):
                    try:
                        held.append(key.fileobj.accept()[0])
                    except OSError:
                        continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield socks[0].getsockname()[1]
    stop.set()
    thread.join()
    for s in held + socks:
        s.close()


def config(tmp_path: Path, *, ssh_host: str = "127.0.0.1", ssh_port: int, db_port: int, lb_port: int, known_hosts: Path,
           identity: Path | None = None, stats_url: str | None = None, second: tuple[str, int] | None = None) -> Path:
    """Two nodes: g1 at ssh_host:ssh_port, g2 at ``second`` (default 127.0.0.2, same port): never one machine twice."""
    hosts = {1: (ssh_host, ssh_port), 2: second or ("127.0.0.2", ssh_port)}
    data: dict[str, Any] = {
        "database": {"host": "127.0.0.1", "port": db_port, "password_env": "CLI_FUZZ_PW", "connect_timeout": TIMEOUT, "query_timeout": 2 * TIMEOUT},
        "load_balancer": {"stats_url": stats_url or f"http://127.0.0.1:{lb_port}/stats", "backend": "glance_api", "timeout": TIMEOUT,
                          "username": "admin", "password_env": "CLI_FUZZ_LB_PW"},
        "ssh": {"known_hosts": str(known_hosts), "connect_timeout": TIMEOUT, **({"identity_file": str(identity)} if identity else {})},
        "nodes": [{"name": f"g{i}", "ssh_host": hosts[i][0], "ssh_port": hosts[i][1], "lb_server": f"g{i}", "api_url": f"http://127.0.0.{i}:{lb_port}"}
                  for i in (1, 2)],
        "policy": {"target_release": "2024.1"},
    }
    path = tmp_path / "glance-tui.toml"
    path.write_text(to_toml(data))
    return path


async def cli(path: Path | None, *args: str, state: Path, interrupt_after: float | None = None, lb_secret: str = LB_SECRET,
              env_extra: dict[str, str] | None = None) -> tuple[int, str, str, float]:
    """``path`` None: a command without a config (``init``)."""
    env = dict(os.environ, CLI_FUZZ_PW=SECRET, CLI_FUZZ_LB_PW=lb_secret, XDG_STATE_HOME=str(state), PYTHONWARNINGS="default", **(env_extra or {}))
    if interrupt_after is not None:  # counted from the program's CLI import, not from the spawn
        env, mark = marking(env, state / "hook")
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "glance_tui", *args, *(["-c", str(path)] if path else []), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    if interrupt_after is not None:
        await until_marked(mark, lambda: proc.returncode is None)
        await asyncio.sleep(interrupt_after)
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), BOUND + 30)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{args} still running after {BOUND + 30}s")
    return proc.returncode, out.decode(), err.decode(), time.monotonic() - started


def assert_clean(out: str, err: str, state: Path) -> None:
    # The program keeps library warnings off the terminal (in warnings.log): its own warnings
    # (a coroutine never awaited, an unclosed resource) are bugs wherever they land.
    logged = "".join(f.read_text(errors="replace") for f in state.rglob("warnings.log"))
    for noise in NOISE:
        assert noise not in err and noise not in out, f"{noise!r} in output:\n{err}\n{out}"
        assert noise not in logged, f"{noise!r} in warnings.log:\n{logged}"
    texts = [out, err] + [f.read_text(errors="replace") for f in state.rglob("*") if f.is_file()]
    for text in texts:
        assert SECRET not in text and LB_SECRET not in text


async def run_many(cases: list[tuple[Path, tuple[str, ...], Path]], parallel: int = 3) -> list[tuple[int, str, str, float]]:
    gate = asyncio.Semaphore(parallel)

    async def one(path: Path, args: tuple[str, ...], state: Path) -> tuple[int, str, str, float]:
        async with gate:
            return await cli(path, *args, state=state)

    return await asyncio.gather(*(one(*c) for c in cases))


# ---------------------------------------------------------------- silent and refusing services


@pytest.mark.parametrize(("args", "code"), [(("check",), 1), (("check", "--json"), 1), (("status",), 0), (("status", "--json"), 0),
                                             (("run", "--yes"), 1)])
async def test_silent_services_answer_within_the_timeouts(tmp_path, silent, args, code):
    """SSH and MariaDB accept and never speak; the stats page refuses: a clear answer, in time."""
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=silent, db_port=silent, lb_port=free_port(), known_hosts=kh)
    state = tmp_path / "state"
    rc, out, err, elapsed = await cli(path, *args, state=state)
    assert rc == code, (rc, out, err)
    assert elapsed < BOUND
    assert_clean(out, err, state)
    text = out + err
    assert "within 1s" in text or "within 2s" in text, text


@pytest.mark.parametrize("interrupt_after", [None, 1.5])
async def test_init_against_a_silent_stats_page(tmp_path, silent, interrupt_after):
    """``init`` whose stats page accepts and never answers: one line within its timeout, or one line at Ctrl-C; no file."""
    state, out = tmp_path / "state", tmp_path / "init.toml"
    rc, stdout, err, elapsed = await cli(None, "init", "--stats-url", f"http://127.0.0.1:{silent}/stats", "--stats-user", "admin",
                                         "--stats-password-env", "CLI_FUZZ_LB_PW",
                                         # interrupted: a timeout the Ctrl-C surely lands inside (at load, start-up alone can take 1 s)
                                         "--timeout", "1" if interrupt_after is None else "60", "-o", str(out),
                                         state=state, interrupt_after=interrupt_after)
    assert (rc, elapsed < BOUND) == ((2, True) if interrupt_after is None else (130, True)), (rc, stdout, err)
    assert err.count("\n") == 1 and not stdout and not out.exists(), err
    assert "within 1s" in err if interrupt_after is None else err.startswith("interrupted: nothing was changed (init: its config file")
    assert_clean(stdout, err, state)


async def test_refusing_services_many_times(tmp_path):
    """Everything refuses: run `check` and `status` repeatedly; not one run may print noise after the answer."""
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=free_port(), db_port=free_port(), lb_port=free_port(), known_hosts=kh)
    cases = [(path, args, tmp_path / f"state{i}") for i in range(4) for args in (("check",), ("status",))]
    for (_, args, state), (rc, out, err, elapsed) in zip(cases, await run_many(cases)):
        assert rc == (1 if args == ("check",) else 0), (rc, err)
        assert elapsed < BOUND
        assert_clean(out, err, state)


@pytest.mark.services
async def test_unknown_host_key_and_refused_ssh_many_times(tmp_path, sshd_factory, ssh_operator_key):
    """The 1-in-6 "unhandled exception during asyncio.run() shutdown": 10 runs each, against a real sshd."""
    sshd = sshd_factory("127.0.0.28")
    kh = tmp_path / "known_hosts"
    kh.write_text("")  # the node's key is unknown
    (tmp_path / "u").mkdir()
    (tmp_path / "r").mkdir()
    unknown = config(tmp_path / "u", ssh_host=sshd.host, ssh_port=sshd.port, db_port=free_port(), lb_port=free_port(),
                     known_hosts=kh, identity=ssh_operator_key)
    refused = config(tmp_path / "r", ssh_host=sshd.host, ssh_port=free_port(sshd.host), db_port=free_port(), lb_port=free_port(),
                     known_hosts=kh, identity=ssh_operator_key)
    cases = [(p, ("check",), tmp_path / f"state-{kind}{i}") for i in range(10) for kind, p in (("u", unknown), ("r", refused))]
    for (p, _, state), (rc, out, err, elapsed) in zip(cases, await run_many(cases)):
        assert rc == 1 and elapsed < BOUND, (rc, err)
        assert_clean(out, err, state)
        if p == unknown:
            assert "unknown" in out and "SHA256:" in out
        else:
            assert "refused" in out


# ---------------------------------------------------------------- secrets: refused when short, redacted everywhere else


@pytest.mark.parametrize("args", [("check",), ("status",), ("run", "--yes", "--dry-run")])
async def test_a_short_secret_is_a_config_error_that_never_shows_it(tmp_path, args):
    """``q7`` could not be redacted without revealing it (``glance-q7`` → ``glance-********``): refused at load, exit 2."""
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=free_port(), db_port=free_port(), lb_port=free_port(), known_hosts=kh)
    state = tmp_path / "state"
    rc, out, err, elapsed = await cli(path, *args, state=state, lb_secret=SHORT_SECRET)
    assert rc == 2 and out == "" and err.count("\n") == 1, (rc, out, err)
    assert "load_balancer: the load balancer password" in err and "shorter than 8 characters" in err and "fix:" in err
    assert SHORT_SECRET not in err and "CLI_FUZZ_LB_PW" not in err
    assert_clean(out, err, state)


async def test_dry_run_prints_and_journals_no_secret(tmp_path):
    """``run --yes --dry-run``: gate lines, command previews and the journal, with every service refusing."""
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=free_port(), db_port=free_port(), lb_port=free_port(), known_hosts=kh)
    state = tmp_path / "state"
    rc, out, err, elapsed = await cli(path, "run", "--yes", "--dry-run", state=state)
    assert rc in (0, 1) and elapsed < BOUND, (rc, err)
    assert "mysqldump --defaults-extra-file=/dev/stdin" in out or "gate" in out, out
    assert_clean(out, err, state)
    # a dry run is no resumed run, and what blocks is named by gate (each reason is in its own gate line, not repeated)
    assert out.startswith("journal: none (a dry run records nothing)\n"), out[:200]
    blocked = [line for line in out.splitlines() if "would block" in line]
    assert blocked and all(len(line) < 800 and " — fix:" not in line for line in blocked), blocked


def test_every_output_path_redacts(tmp_path, capsys):
    """The printer, gate results, action previews and the engine's events: a secret never passes."""
    import io

    from glance_tui.events import ActionStarted, GatesEvaluated, Notice, redacted
    from glance_tui.gate_types import Gate, GateResult
    from glance_tui.plan import Action
    from glance_tui.report import EventPrinter, gates_json, gates_text
    from glance_tui.secrets import register

    register(SECRET)
    out = io.StringIO()
    printer = EventPrinter(out)
    gate = GateResult("g", "a gate", False, f"server said {SECRET}", f"use {SECRET}")
    for event in (ActionStarted("1", "backup", "t", (f"mysqldump -p{SECRET}",), True), GatesEvaluated("1", (gate,)), Notice("info", SECRET)):
        printer(event)
        printer(redacted(event))
    assert SECRET not in out.getvalue() and out.getvalue().count("********") >= 6

    async def check(ctx):
        return gate

    evaluated = asyncio.run(Gate("g", "a gate", check).evaluate(None))
    assert SECRET not in evaluated.reason + evaluated.fix
    assert SECRET not in gates_text([gate]) + gates_json([gate])
    action = Action("x", "t", None, True, lambda ctx: [f"echo {SECRET}"], None, None)
    assert action.preview(None) == ["echo ********"]


@pytest.mark.parametrize("after", [0.8, 1.5, 2.5, 3.5])  # from when our code runs (not the interpreter's own start-up)
async def test_sigint_prints_one_line(tmp_path, silent, after):
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=silent, db_port=silent, lb_port=silent, known_hosts=kh)
    state = tmp_path / "state"
    rc, out, err, _ = await cli(path, "check", state=state, interrupt_after=after)
    assert_clean(out, err, state)
    if rc == 130:
        assert err == "interrupted: nothing was changed (check: it only reads)\n", err
    else:  # the answer came first: the normal, complete output (the signal may then end the exiting interpreter,
        # whose own status is then -SIGINT or, rarely, 255; the operator has the whole answer and a clean stderr)
        assert rc in (1, -signal.SIGINT, 255) and "gates pass" in out and err == "", (rc, out, err)


# ---------------------------------------------------------------- credentials in a URL


@pytest.mark.parametrize("args", [("check",), ("check", "--json"), ("status", "--json"), ("plan",), ("run", "--yes")])
async def test_credentials_in_the_stats_url_are_refused_and_never_printed(tmp_path, args):
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=free_port(), db_port=free_port(), lb_port=free_port(), known_hosts=kh,
                  stats_url=f"http://admin:{SECRET}@127.0.0.1:{free_port()}/stats")
    state = tmp_path / "state"
    rc, out, err, elapsed = await cli(path, *args, state=state)
    assert rc == 2 and out == "" and err.count("\n") == 1, (rc, out, err)
    assert "load_balancer.stats_url: credentials in the URL are refused" in err and "password_env" in err
    assert elapsed < BOUND
    assert_clean(out, err, state)
    assert not any(state.rglob("*.jsonl")), "nothing may be journaled for a config that does not load"


# ---------------------------------------------------------------- a bug inside the TUI


async def test_tui_crash_is_one_redacted_line_and_a_redacted_crash_log(tmp_path, monkeypatch, capsys):
    """Textual would print a traceback with local variables; the app records it redacted instead."""
    from glance_tui.secrets import register
    from tests.ui_helpers import make, ready

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    register(SECRET)
    app, _ = make(tmp_path)
    with pytest.raises(RuntimeError):  # run_test hands the app's exception to the test framework
        async with app.run_test() as pilot:
            await ready(pilot)
            password = SECRET  # noqa: F841 - a local that a traceback with locals would print
            try:
                raise RuntimeError(f"driver said: access denied for glance:{SECRET}@db")
            except RuntimeError as exc:
                app._handle_exception(exc)
            await pilot.pause()
    shown = " ".join(capsys.readouterr().err.split())  # Textual wraps it at the console width
    assert "internal error in glance-tui (a bug)" in shown and SECRET not in shown and "Traceback" not in shown
    crash = (tmp_path / "state" / "glance-tui" / "crash.log").read_text()
    assert "RuntimeError" in crash and SECRET not in crash


# ---------------------------------------------------------------- init and lab flags: the flag's one line, before anything slow


def _hostile_files(tmp_path: Path) -> dict[str, Path]:
    """Files an operator may point a flag at by mistake."""
    import asyncssh

    files = {name: tmp_path / name for name in ("empty", "notkey", "encrypted", "binary", "short", "existing", "password")}
    files["empty"].write_bytes(b"")
    files["notkey"].write_text("not a key\n")
    files["encrypted"].write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key("pkcs8-pem", passphrase="pass-phrase-1"))
    files["binary"].write_bytes(bytes(random.Random(5).randrange(256) for _ in range(512)))
    files["short"].write_text("q7\n")
    files["existing"].write_text("# the operator's own config\n")
    files["password"].write_text(SECRET + "\n")
    files["dir"] = tmp_path
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing-here")
    files["dangling"] = tmp_path / "dangling"
    return files


INIT_FLAG_CASES = [  # (flags, where the one line says it is, what it says); {name} is a file of _hostile_files
    (["--identity-file", "{dir}"], "--identity-file", "is a directory"),
    (["--identity-file", "{empty}"], "--identity-file", "not a private key"),
    (["--identity-file", "{notkey}"], "--identity-file", "not a private key"),
    (["--identity-file", "{encrypted}"], "--identity-file", "encrypted"),
    (["--identity-file", "{dangling}"], "--identity-file", "does not exist"),
    (["--identity-file", "/dev/zero"], "--identity-file", "not a regular file"),
    (["--known-hosts", "{dir}"], "--known-hosts", "is a directory"),
    (["--known-hosts", "{binary}"], "--known-hosts", "not UTF-8"),
    (["--known-hosts", "/dev/zero"], "--known-hosts", "not a regular file"),
    (["--db-password-file", "{dir}"], "--db-password-file", "is a directory"),
    (["--db-password-file", "{empty}"], "--db-password-file", "is empty"),
    (["--db-password-file", "{short}"], "shorter than 8", "shorter than 8"),
    (["--db-password-file", "/nonexistent/pw"], "--db-password-file", "does not exist"),
    (["--db-password-file", ""], "--db-password-file '' names no file", "leave the flag out"),  # fix named a --db-password-env flag
    (["--known-hosts", ""], "--known-hosts '' names no file", "leave the flag out"),
    (["--stats-user", "admin", "--stats-password-file", "{empty}"], "--stats-password-file", "is empty"),
    (["-o", "{dir}"], "init -o", "it is a directory"),
    (["-o", ""], "init -o", "an empty path"),
    (["-o", "{dangling}"], "init -o", "symbolic link to nothing"),
    (["-o", "/nonexistent/dir/c.toml"], "init -o", "does not exist"),
    (["-o", "/dev/no-such-device"], "init -o", "no such device"),
    (["-o", "{existing}"], "init -o", "already exists"),
    (["--db-password-file", "{password}", "-o", "{password}", "--force"], "init -o", "is the file --db-password-file names"),  # replaced it
    (["--known-hosts", "{existing}", "-o", "{existing}", "--force"], "init -o", "is the file --known-hosts names"),
    (["--stats-url", "http://xn--zz.example/stats"], "--stats-url", "not a valid international domain name"),  # was exit 70
    (["--runtime-socket", "tcp:h:99999"], "--runtime-socket", "port 99999"),
    (["--runtime-socket", "haproxy.sock"], "--runtime-socket", "not a socket address"),
    (["--ssh-port", "0"], "--ssh-port", "not from 1 to 65535"),
    (["--ssh-port", "70000"], "--ssh-port", "not from 1 to 65535"),
    (["--ssh-port", "twenty-two"], "--ssh-port", "invalid int"),
    (["--timeout", "nan"], "--timeout", "not from 0 to 300"),
    (["--target-release", "zed"], "--target-release", "not a release"),
]


@pytest.mark.parametrize(("flags", "where", "needle"), INIT_FLAG_CASES, ids=[" ".join(f) for f, _, _ in INIT_FLAG_CASES])
def test_a_bad_init_flag_is_its_one_line_before_any_probe(tmp_path, silent, capsys, monkeypatch, flags, where, needle):
    """The stats page never answers (60 s timeout): a refusal within seconds was made before anything was asked."""
    from glance_tui.cli import main

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    files = _hostile_files(tmp_path)
    argv = [f.format(**{k: str(v) for k, v in files.items()}) if "{" in f else f for f in flags]
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and not p.is_symlink()}
    started = time.monotonic()
    code = main(["init", "--stats-url", f"http://127.0.0.1:{silent}/stats", "--timeout", "60", *(["-o", str(tmp_path / "new.toml")]
                 if "-o" not in argv else []), *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: ") and "fix: " in err, (code, out, err)
    assert where in err and needle in err, err
    assert time.monotonic() - started < 10
    assert SECRET not in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in before} == before and not (tmp_path / "new.toml").exists()  # nothing written, nothing lost


LAB_FLAG_CASES = [
    (["--dry-run", "lab", "up"], "--dry-run applies to the assistant and to run, not to lab"),  # started the lab, dry run ignored
    (["lab", "status", "--dir", "/etc/passwd"], "is not a directory"),
    (["lab", "down", "--dir", "/dev/null"], "is not a directory"),
    (["lab", "down", "--dir", ""], "an empty lab directory"),  # was the default lab: `lab down` stopped it
    (["lab", "status", "--dir", "/tmp/x\n/evil\x1b[31m"], "has a control character"),  # printed raw on stdout
    (["lab", "up", "--nodes", "0"], "0 nodes"),
    (["lab", "rehearse", "--scenario", "nope"], "unknown scenario"),
    (["lab", "rehearse", "--node-kind", "lxc"], "invalid choice"),
    (["lab", "rehearse", "--clients", "0"], "--clients 0"),
    (["lab", "rehearse", "--size", "0"], "--size 0"),
    (["lab", "rehearse", "--imports", "nan"], "--imports nan"),
    (["lab", "rehearse", "--imports", "-0.1"], "--imports -0.1"),
    (["lab", "rehearse", "--imports", "1"], "--imports 1"),
    (["lab", "rehearse", "--json", "{dir}"], "it is a directory"),
    (["lab", "rehearse", "--scenario", "all", "--json", "{dir}/r.json"], "--json names one file"),  # was silently not written
    (["lab", "load", "--url", "http://127.0.0.1:1", "--duration", "nan"], "--duration nan"),
    (["lab", "load", "--url", "http://127.0.0.1:1", "--duration", "inf"], "--duration inf"),
    (["lab", "load", "--url", "http://127.0.0.1:1", "--duration", "-1"], "--duration -1"),
    (["lab", "load", "--url", "http://127.0.0.1:1", "--clients", "-3"], "--clients -3"),
    (["lab", "load", "--url", "http://127.0.0.1:1", "--max-requests", "-1"], "--max-requests -1"),
    (["lab", "load", "--url", "http://127.0.0.1:1", "--imports", "inf"], "--imports inf"),
    (["lab", "load", "--url", "notaurl"], "--url 'notaurl'"),
    (["lab", "load", "--url", "http://[::1"], "--url"),
    (["lab", "load", "--url", "http://xn--zz.example"], "not a valid international domain name"),  # was exit 70
    (["lab", "load", "--url", "http://127.0.0.1:1", "--json", "{dir}"], "it is a directory"),
    (["lab", "load", "--url", "http://127.0.0.1:1", "--json", ""], "an empty path"),
    (["lab", "load", "--url", "http://127.0.0.1:1", "--upload-rate", "0.1"], "--upload-rate 0.1 is less than 1 byte/s"),  # was silently unthrottled
    (["lab", "rehearse", "--upload-rate", "0.4"], "--upload-rate 0.4 is less than 1 byte/s"),
    (["lab", "load", "--url", "http://127.0.0.1:1/#x"], "#fragment"),
]


@pytest.mark.parametrize(("argv", "needle"), LAB_FLAG_CASES, ids=[" ".join(a) for a, _ in LAB_FLAG_CASES])
def test_a_bad_lab_flag_is_one_line_before_the_lab_is_touched(tmp_path, capsys, monkeypatch, argv, needle):
    """Each used to reset the whole lab first (minutes), run a NaN-long load with exit 0, or crash (exit 70)."""
    from glance_tui.cli import main

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # no lab here: reaching it would say "no lab"/start one
    started = time.monotonic()
    code = main([a.replace("{dir}", str(tmp_path)) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: ") and "fix: " in err, (code, out, err)
    assert needle in err, err
    assert time.monotonic() - started < 5
    assert not (tmp_path / "state" / "glance-tui" / "lab").exists()


# ---------------------------------------------------------------- init: a runtime socket that does not answer


@pytest.fixture(scope="module")
def init_cluster(tmp_path_factory, ssh_operator_key):
    """Two packaged nodes behind a real HAProxy (stats admin and a runtime API on TCP) and real sshd."""
    from glance_tui.lab.sshd import write_known_hosts
    from tests.init_nodes import GLANCE_VERSIONS, NodeAnswers, start_cluster

    work = tmp_path_factory.mktemp("fuzz-init")
    node = NodeAnswers(processes=["/usr/bin/python3 /usr/bin/glance-api --config-file={conf}"], units={"glance-api": "active"},
                       dpkg_version="2:28.2.0-0ubuntu1", candidate="2:29.0.0-0ubuntu1",
                       connection="mysql+pymysql://glance:glance@127.0.0.1:3306/glance", versions=GLANCE_VERSIONS)
    cluster = start_cluster(work, ssh_operator_key, {"glance-1": node, "glance-2": node}, hosts=["127.0.0.81", "127.0.0.82"],
                            backends={"glance_api": ["glance-1", "glance-2"]})
    known = write_known_hosts(work / "known_hosts", [n.sshd for n in cluster.nodes])
    yield cluster, known
    cluster.stop()


@pytest.mark.services
@pytest.mark.parametrize("socket", ["works", "unix:/nonexistent/haproxy.sock", "refused"])
def test_init_writes_the_admin_channel_it_checked(init_cluster, ssh_operator_key, tmp_path, capsys, monkeypatch, socket):
    """A runtime socket that did not answer was written as ``admin = "runtime"`` ("the runtime API acts instead"), and
    one that answered as admin was written as ``admin = "http"`` with the runtime API's check as its comment."""
    import tomllib

    from glance_tui.cli import main

    cluster, known = init_cluster
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    spec = {"works": f"tcp:127.0.0.1:{cluster.lbs[0].runtime_tcp_port}", "refused": f"tcp:127.0.0.1:{free_port()}"}.get(socket, socket)
    code = main(["init", "--stats-url", cluster.lbs[0].stats_url, "--runtime-socket", spec, "--ssh-port", str(cluster.ssh_port),
                 "--identity-file", str(ssh_operator_key), "--known-hosts", str(known), "--timeout", "3", "-o", "-"])
    out, err = capsys.readouterr()
    assert code == 0 and err.count("\n") == 1, err
    lb = tomllib.loads(out)["load_balancers"][0]
    admin_line = next(line for line in out.splitlines() if line.startswith("admin = "))
    asked = [line for line in out.splitlines() if line.startswith("# QUESTION: --runtime-socket")]
    assert "glance:glance@" not in out + err  # the nodes' database password is never copied
    if socket == "works":
        assert lb["admin"] == "runtime" and "has level admin" in admin_line and not asked, out
    else:
        assert lb["admin"] == "http" and "stats page" in admin_line and "accepts admin actions" in admin_line, admin_line
        assert len(asked) == 1 and spec in asked[0] and "cannot connect" in asked[0], asked


# ---------------------------------------------------------------- a relative XDG_STATE_HOME


@pytest.mark.parametrize("args", [("runs",), ("report", "--latest"), ("lab", "status"), ("check",)])
def test_a_relative_state_home_is_one_line_and_creates_nothing(tmp_path, args):
    """``XDG_STATE_HOME=state``: runs were recorded under whatever directory glance-tui started in (a resume from
    elsewhere did not find its run), and warnings.log was created there."""
    import subprocess

    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=free_port(), db_port=free_port(), lb_port=free_port(), known_hosts=kh)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = dict(os.environ, CLI_FUZZ_PW=SECRET, CLI_FUZZ_LB_PW=LB_SECRET, XDG_STATE_HOME="state", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "glance_tui", *args, *(["-c", str(path)] if args == ("check",) else [])],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=BOUND, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "XDG_STATE_HOME is a relative path (state)" in proc.stderr and "fix:" in proc.stderr
    assert list(cwd.iterdir()) == []


# ---------------------------------------------------------------- Python's development mode


@pytest.mark.parametrize("args", [("check",), ("status", "--json"), ("run", "--yes", "--dry-run"), ("plan",), ("runs",)])
async def test_development_mode_shows_nothing_but_the_answer(tmp_path, args):
    """``python -X dev -W error::DeprecationWarning``: asyncio's debug mode logs every step that holds the loop
    over 0.1 s ("Executing <Task …> took 0.28 seconds": the engine's imports ran inside the loop's first step)."""
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=free_port(), db_port=free_port(), lb_port=free_port(), known_hosts=kh)
    state = tmp_path / "state"
    env = dict(os.environ, CLI_FUZZ_PW=SECRET, CLI_FUZZ_LB_PW=LB_SECRET, XDG_STATE_HOME=str(state))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "dev", "-W", "error::DeprecationWarning", "-m", "glance_tui", *args,
        *(["-c", str(path)] if args != ("runs",) else []), cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = (b.decode() for b in await asyncio.wait_for(proc.communicate(), BOUND + 30))
    assert proc.returncode in (0, 1), (proc.returncode, err)
    import re

    # a step of a loaded CI machine may be slow now and then: only the load order is asserted exactly (below)
    slow = re.findall(r"Executing <.*?> took ([0-9.]+) seconds\n", err)
    assert all(float(t) < 1.0 for t in slow), err
    assert re.sub(r"Executing <.*?> took [0-9.]+ seconds\n", "", err) == "", err
    assert_clean(out, err, state)


@pytest.mark.parametrize("args", [("check",), ("status",), ("run", "--yes", "--dry-run")])
def test_the_engine_is_imported_before_the_event_loop_runs(tmp_path, args):
    """Imported inside the loop's first step, asyncssh and aiomysql held it ~0.25 s (what -X dev reports)."""
    import subprocess

    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=free_port(), db_port=free_port(), lb_port=free_port(), known_hosts=kh)
    probe = ("import asyncio, sys\n"
             "def run(command, *a, **k):\n"
             "    command.close()\n"
             "    print(sorted(m for m in ('glance_tui.engine', 'glance_tui.gates', 'asyncssh', 'aiomysql') if m in sys.modules))\n"
             "    return 0\n"
             "asyncio.run = run\n"
             "from glance_tui.cli import main\n"
             f"sys.exit(main({[*args, '-c', str(path)]!r}))\n")
    env = dict(os.environ, CLI_FUZZ_PW=SECRET, CLI_FUZZ_LB_PW=LB_SECRET, XDG_STATE_HOME=str(tmp_path / "state"))
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=BOUND)
    assert proc.returncode == 0 and proc.stdout == "['aiomysql', 'asyncssh', 'glance_tui.engine', 'glance_tui.gates']\n", proc


# ---------------------------------------------------------------- who ran it, from the environment


async def test_a_hostile_sudo_user_is_shown_escaped_in_every_record(tmp_path):
    """``SUDO_USER`` is journaled as who ran the change; the report printed its escape sequences and newline raw."""
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=free_port(), db_port=free_port(), lb_port=free_port(), known_hosts=kh)
    state = tmp_path / "state"
    rc, out, err, _ = await cli(path, "run", "--yes", state=state, env_extra={"SUDO_USER": "adm\x1b[2J\nin\u202e"})
    assert rc == 1, (rc, out, err)
    for args in (("report", "--latest"), ("report", "--latest", "--format", "html"), ("report", "--latest", "--format", "json"), ("runs",)):
        rc, out, err, _ = await cli(None, *args, state=state)
        assert rc == 0 and err == "", (args, rc, err)
        assert "\x1b" not in out and "\u202e" not in out, (args, out[:500])
        if args[-1] != "runs":
            assert "adm\\x1b[2J\\nin\\u202e" in out.replace("\\\\", "\\"), (args, out[:2000])
        assert_clean(out, err, state)


# ---------------------------------------------------------------- a node's short database password


def test_a_short_password_read_on_a_node_hides_in_its_url_and_garbles_nothing():
    """A node's ``connection`` with the password "glance" made every later "glance" print as ******** (node names,
    backends, commands in the journal and the report: unreadable) — the password is hidden where it stands."""
    from glance_tui.db_target import parse_connection
    from glance_tui.secrets import redact

    conf = "[database]\nconnection = mysql+pymysql://glance:glance@db.example:3306/glance?charset=utf8\n"
    target = parse_connection(conf)
    assert (target.user, target.host, target.schema) == ("glance", "db.example", "glance")
    assert redact("stop glance-api on glance-1 (backend glance_api)") == "stop glance-api on glance-1 (backend glance_api)"
    assert "glance:glance@" not in redact(conf) and "mysql+pymysql://********@db.example" in redact(conf)
    long_one = "Node-Conf-Pw-" + "7" * 12
    parse_connection(conf.replace("glance:glance@", f"glance:{long_one}@"))
    assert redact(f"printed {long_one} bare") == "printed ******** bare"  # one long enough to hide anywhere still is


@pytest.mark.services
def test_init_with_an_account_without_a_shell_asks_about_the_account(init_cluster, ssh_operator_key, tmp_path, capsys, monkeypatch):
    """An account that logs in without a shell (nologin) was asked as "this address answers no SSH … is it a Glance node?".
    The load balancer, /versions and SSH are real; the survey's answer is that of such an account (seen with
    ``--ssh-user nobody`` on a Debian node: exit 1, "This account is currently not available.")."""
    from glance_tui.cli import main
    from glance_tui.init import discover
    from glance_tui.init.nodeprobe import NodeFindings

    async def nologin(node, ssh, known):  # noqa: ANN001
        return NodeFindings(problem="the survey did not complete (exit 1: This account is currently not available.)", reached=True)

    monkeypatch.setattr(discover, "probe_node", nologin)
    cluster, known = init_cluster
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    code = main(["init", "--stats-url", cluster.lbs[0].stats_url, "--ssh-user", "svc", "--ssh-port", str(cluster.ssh_port),
                 "--identity-file", str(ssh_operator_key), "--known-hosts", str(known), "--timeout", "3", "-o", "-"])
    out, err = capsys.readouterr()
    assert code == 0 and err.count("\n") == 1, err
    asked = [line for line in out.splitlines() if line.startswith("# QUESTION: SSH logged in as svc, but the read-only survey failed")]
    assert len(asked) == 2 and "--ssh-user" in asked[0] and "answers no SSH" not in out, out


@pytest.mark.services
def test_init_says_where_it_wrote_in_one_line(init_cluster, ssh_operator_key, tmp_path, capsys, monkeypatch):
    """A path with an escape sequence and a newline was printed raw (three lines, the terminal recoloured); a path
    with a space was given back unquoted in the next command."""
    from glance_tui.cli import main

    cluster, known = init_cluster
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    target = tmp_path / "my \x1b[31mconf\nig.toml"
    code = main(["init", "--stats-url", cluster.lbs[0].stats_url, "--ssh-port", str(cluster.ssh_port),
                 "--identity-file", str(ssh_operator_key), "--known-hosts", str(known), "--timeout", "3", "-o", str(target)])
    out, err = capsys.readouterr()
    assert code == 0 and out == "" and err.count("\n") == 1 and "\x1b" not in err, err
    assert f"written: {tmp_path}/my \\x1b[31mconf\\nig.toml (" in err and f"-c '{tmp_path}/my \\x1b[31mconf\\nig.toml' check" in err, err
    assert target.is_file()


@pytest.mark.parametrize(("flags", "env"), [(("-W", "error"), {}), (("-W", "error::UserWarning"), {}), ((), {"PYTHONWARNINGS": "error"})],
                         ids=["-W error", "-W error::UserWarning", "PYTHONWARNINGS=error"])
@pytest.mark.parametrize("args", [("check",), ("plan",), ("runs",)])
async def test_warnings_as_errors_do_not_turn_a_library_warning_into_a_crash(tmp_path, flags, env, args):
    """asyncssh's import warns (DSA, cryptography >= 47): under -W error that warning was raised, and every command
    that imports asyncssh ended as an internal error (exit 70). It goes to warnings.log like any library warning."""
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=free_port(), db_port=free_port(), lb_port=free_port(), known_hosts=kh)
    state = tmp_path / "state"
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    environ.update(CLI_FUZZ_PW=SECRET, CLI_FUZZ_LB_PW=LB_SECRET, XDG_STATE_HOME=str(state), **env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *flags, "-m", "glance_tui", *args, *(["-c", str(path)] if args != ("runs",) else []), cwd=ROOT, env=environ,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = (b.decode() for b in await asyncio.wait_for(proc.communicate(), BOUND + 30))
    assert proc.returncode == (1 if args == ("check",) else 0) and err == "", (proc.returncode, err)
    assert "internal error" not in out and not (state / "glance-tui" / "crash.log").exists()


async def test_a_state_home_with_an_escape_sequence_is_shown_escaped(tmp_path):
    """``runs`` and ``run --yes`` print where the runs are: the path was printed raw (escape sequences reached the terminal)."""
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    path = config(tmp_path, ssh_port=free_port(), db_port=free_port(), lb_port=free_port(), known_hosts=kh)
    state = tmp_path / "st\x1b[31mate"
    rc, out, err, _ = await cli(None, "runs", state=state)
    assert rc == 0 and "\x1b" not in out and "st\\x1b[31mate" in out, out
    rc, out, err, _ = await cli(path, "run", "--yes", state=state)
    assert rc == 1 and "\x1b" not in out + err and out.startswith(f"journal: {tmp_path}/st\\x1b[31mate/"), out[:300]
    assert_clean(out, err, state)
