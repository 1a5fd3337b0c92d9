"""A hostile stats page: malformed, slow, oversized and silent, served by an in-process fake.

Beside the real HAProxy tests (test_haproxy.py, test_lbset.py), for the edge cases HAProxy itself
never produces. Every case must end within the configured timeout plus a small slack, as a
one-line AdapterError that names the problem (or a counter that is unknown), never a traceback
and never "0 in flight". A few pages are also put in front of `glance-tui status` / `check` as
subprocesses, to see what the operator sees.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from glance_tui.adapters.haproxy import HAProxy
from glance_tui.adapters.lbset import LBRead, LoadBalancers
from glance_tui.config import LoadBalancerConfig
from glance_tui.errors import AdapterError
from glance_tui.lab.procs import free_port
from glance_tui.probes import LBFacts
from tests.test_lbset import process_page

TIMEOUT = 2.0
SLACK = 0.95 * TIMEOUT  # room for a loaded 2-core machine, yet less than a second deadline (one read, one deadline)
HEADER = "# pxname,svname,qcur,qmax,scur,smax,status,weight,rate,check_status,"
FRONT = "stats,FRONTEND,,,0,1,OPEN,,0,,"
GOOD = [
    "glance_api,glance-1,0,0,{scur},3,UP,1,0,L7OK,",
    "glance_api,glance-2,0,0,0,2,UP,1,0,L7OK,",
    "glance_api,BACKEND,0,0,0,5,UP,2,0,,",
]


def page(*rows: str, header: str = HEADER, scur: str = "2") -> bytes:
    return ("\n".join([header, FRONT, *(r.format(scur=scur) for r in (rows or GOOD))]) + "\n").encode()


def without(column: str) -> bytes:
    """The good page with one column removed (by name, from the header and every row)."""
    names = HEADER[2:].split(",")
    i = names.index(column)
    lines = page().decode()[2:].splitlines()
    cut = [",".join(f for j, f in enumerate(ln.split(",")) if j != i) for ln in lines]
    return ("# " + "\n".join(cut) + "\n").encode()


Send = Callable[[socket.socket, threading.Event], None]


def answer(body: bytes, status: str = "200 OK", headers: str = "") -> Send:
    def send(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n{headers}Connection: close\r\n\r\n".encode() + body)
    return send


def trickle(head: bool) -> Send:
    """One byte per second: of the body (after complete headers), or of the status line itself."""
    def send(conn: socket.socket, stop: threading.Event) -> None:
        if not head:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n")
        data = (b"HTTP/1.1 200 OK\r\n" if head else page())
        for i in range(len(data)):
            if stop.wait(1.0):
                return
            conn.sendall(data[i:i + 1])
    return send


def silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(30)


def endless(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + page())
    row = b"glance_api,glance-x,0,0,0,0,UP,1,0,L7OK,\n" * 1000
    while not stop.is_set():
        conn.sendall(row)


def short_body(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n" + page()[:40])


RANDOM = random.Random(9).randbytes(4096)

# case -> (what the server sends, a fragment the error must contain)
BROKEN: dict[str, tuple[Send, str]] = {
    "html": (answer(b"<html><body>Statistics Report</body></html>"), "the first line must start with '# '"),
    "empty": (answer(b""), "not an HAProxy stats CSV: the page is empty"),
    "random-bytes": (answer(RANDOM), "is not UTF-8 text"),
    "header-then-random-bytes": (answer(HEADER.encode() + b"\n" + RANDOM), "is not UTF-8 text"),
    "bare-header": (answer((HEADER + "\n").encode()), "a header but no rows"),
    "no-svname": (answer(without("svname")), "no svname column"),
    "no-pxname": (answer(without("pxname")), "no pxname column"),
    "ragged-row": (answer(page("glance_api,glance-1,0,0,1", *GOOD[1:])), "line 3 has 5 fields, the header has 11"),
    "unbalanced-quote": (answer(page('glance_api,"glance-1,0,0,{scur},3,UP,1,0,L7OK,', *GOOD[1:])), "unbalanced quote"),
    "nul-byte": (answer(page("glance_api,glance-1,0,0,1\x00,3,UP,1,0,L7OK,", *GOOD[1:])), "line 3 contains a NUL byte"),
    "duplicated-server": (answer(page(GOOD[0], GOOD[1], GOOD[0].replace("{scur}", "0"), GOOD[2])), "glance_api/glance-1 appears twice (lines 3 and 5)"),
    "duplicated-column": (answer(page(header=HEADER.replace("smax", "scur"))), "names column(s) twice: scur"),
    "empty-svname": (answer(page("glance_api,,0,0,1,3,UP,1,0,L7OK,", *GOOD[1:])), "line 3 has an empty pxname or svname"),
    "oversized-field": (answer(page("glance_api,glance-1,0,0,1,3,UP " + "x" * 200_000 + ",1,0,L7OK,", *GOOD[1:])),
                        "line 3 has a field longer than 131072 characters"),
    "oversized-page": (answer(page() + b"#" * (5 * 1024 * 1024)), "sent more than 4 MiB"),
    "endless-page": (endless, "sent more than 4 MiB"),
    "short-body": (short_body, "stats page"),
    # near-empty pages: a header and nothing else was "RuntimeError: coroutine raised StopIteration"
    "header-only": (answer(b"# "), "the header line '# ' names no columns"),
    "header-only-newline": (answer(b"# \n"), "the header has no pxname and no svname column"),
    "header-blank-lines": (answer(b"# \n\n\n"), "the header has no pxname and no svname column"),
    "header-spaces": (answer(b"#    \n"), "the header has no pxname and no svname column"),
    "hash-alone": (answer(b"#"), "the first line must start with '# '"),
    "newline-alone": (answer(b"\n"), "the page is empty"),
    "header-without-rows": (answer(b"# pxname,svname\n"), "the stats CSV has a header but no rows"),
    "header-comma": (answer(b"# ,\n"), "the header has no pxname and no svname column"),
    "http-500": (answer(b"oops", "500 Internal Server Error"), "answered HTTP 500"),
    # an admin POST's redirect: its Location is put in the message bounded and escaped (httpx
    # itself refuses a Location over 64 KiB or with control characters: its reason is bounded too)
    "huge-location": (answer(b"", "303 See Other", "Location: /stats;st=" + "x" * 60_000 + "\r\n"), "answered HTTP 303"),
    "escape-location": (answer(b"", "303 See Other", "Location: /stats\x1b[2K\x07;st=\r\n"), "Invalid URL in location header"),
    "too-long-location": (answer(b"", "303 See Other", "Location: /stats;st=" + "x" * 82_000 + "\r\n"), "URL too long"),
    "redirect": (answer(b"", "302 Found", "Location: /elsewhere\r\n"), "answered HTTP 302"),
    "bad-gzip": (answer(b"not gzip at all", headers="Content-Encoding: gzip\r\n"), "could not be decoded"),
    "one-byte-per-second": (trickle(head=False), f"did not finish its answer within {TIMEOUT:g}s"),
    "status-line-one-byte-per-second": (trickle(head=True), f"within {TIMEOUT:g}s"),
    "accept-and-never-answer": (silent, f"did not answer within {TIMEOUT:g}s"),
}

# case -> (page, the counter problem named); the page parses, the counter is unknown
BAD_COUNTERS: dict[str, tuple[bytes, str]] = {
    "scur-missing": (without("scur"), "the stats CSV has no scur column"),
    "qcur-missing": (without("qcur"), "the stats CSV has no qcur column"),
    "scur-text": (page(scur="many"), "scur is 'many', not a whole number ≥ 0"),
    "scur-negative": (page(scur="-1"), "scur is '-1'"),
    "scur-fraction": (page(scur="1.5"), "scur is '1.5'"),
    "scur-exponent": (page(scur="1e3"), "scur is '1e3'"),
    "scur-empty": (page(scur=""), "scur is ''"),
    "scur-huge": (page(scur="9" * 40), "scur is '99999999999999999999…'"),
    "scur-arabic-digit": (page(scur="\u0663"), "scur is '\u0663'"),
    "qcur-negative": (page("glance_api,glance-1,-4,0,0,3,UP,1,0,L7OK,", *GOOD[1:]), "qcur is '-4'"),
}


class FakeStats:
    """An HTTP server on 127.0.0.1 that answers /CASE/stats;csv as BROKEN/BAD_COUNTERS say (and
    /CASE/stats with a sound process block: the CSV is what each case breaks)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []

    def url(self, case: str) -> str:
        return f"http://127.0.0.1:{self.port}/{case}/stats"

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                path = request.split(b" ", 2)[1].decode()
                case = path.split("/")[1]
                if request.startswith(b"GET ") and not path.endswith(";csv") and (case in BAD_COUNTERS or case in BROKEN):
                    # the top of the stats page: which HAProxy process answers (read with every CSV)
                    body = process_page(4242, 3600).encode()
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                elif case in BAD_COUNTERS:
                    answer(BAD_COUNTERS[case][0])(conn, self.stop)
                elif case in BROKEN:
                    BROKEN[case][0](conn, self.stop)
                else:  # a stray client (another test's probe reaching this port): not a case
                    conn.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass  # the client gave up (size bound, deadline): that is the point

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeStats]:
    server = FakeStats()
    server.start()
    yield server
    server.close()


def lb_config(url: str, name: str = "ctl1") -> LoadBalancerConfig:
    return LoadBalancerConfig(name=name, stats_url=url, backends=["glance_api"], timeout=TIMEOUT)


async def timed_read(configs: list[LoadBalancerConfig]) -> LBRead:
    """One read of every instance, which must end within the timeout plus the slack."""
    lbs = LoadBalancers(configs)
    try:
        started = time.monotonic()
        read = await lbs.read()
        assert time.monotonic() - started < TIMEOUT + SLACK
        return read
    finally:
        await lbs.aclose()


def assert_one_line(message: str, fragment: str) -> None:
    assert fragment in message, message
    assert "Traceback" not in message and "\n" not in message and "field larger than field limit" not in message


@pytest.mark.parametrize("case", list(BROKEN))
async def test_broken_page_is_a_clear_error_in_time(fake: FakeStats, case: str) -> None:
    fragment = BROKEN[case][1]
    async with HAProxy(lb_config(fake.url(case))) as lb:
        started = time.monotonic()
        with pytest.raises(AdapterError) as err:
            await lb.servers()
        assert time.monotonic() - started < TIMEOUT + SLACK
    assert_one_line(str(err.value), fragment)
    read = await timed_read([lb_config(fake.url(case)), lb_config(fake.url("scur-text"), "ctl2")])
    assert list(read.errors) == ["ctl1"]
    assert_one_line(read.errors["ctl1"], fragment)
    view = read.view("glance-1")
    assert view.unreachable == ("ctl1/glance_api",) and view.in_flight is None and not view.admin_out
    facts = LBFacts.from_read(read)
    assert facts.servers == {} and facts.error.startswith("ctl1: ")


@pytest.mark.parametrize("case", ["huge-location", "escape-location", "too-long-location"])
async def test_a_redirect_location_in_a_message_is_bounded_and_escaped(fake: FakeStats, case: str) -> None:
    """An 82 KB ``Location`` was echoed whole (an 82 KB `check` output); control characters must not reach the terminal."""
    async with HAProxy(lb_config(fake.url(case))) as lb:
        with pytest.raises(AdapterError) as err:
            await lb.drain("glance-1")
    message = str(err.value)
    expected = {"huge-location": "unexpected redirect '/stats;st=xxx", "escape-location": "Invalid URL in location header",
                "too-long-location": "URL too long"}[case]
    assert_one_line(message, expected)
    assert len(message) < 500 and "\x1b" not in message and "\x07" not in message, message


async def test_refused_connection_is_a_clear_error(fake: FakeStats) -> None:
    async with HAProxy(lb_config(f"http://127.0.0.1:{free_port()}/stats")) as lb:
        started = time.monotonic()
        with pytest.raises(AdapterError) as err:
            await lb.servers()
        assert time.monotonic() - started < TIMEOUT + SLACK
    assert_one_line(str(err.value), "cannot reach the HAProxy stats page")


@pytest.mark.parametrize("case", list(BAD_COUNTERS))
async def test_bad_counter_is_unknown_never_zero(fake: FakeStats, case: str) -> None:
    problem = BAD_COUNTERS[case][1]
    async with HAProxy(lb_config(fake.url(case))) as lb:
        servers = await lb.servers()
    one = servers["glance-1"]
    assert one.in_flight is None
    assert any(problem in p for p in one.problems), one.problems
    assert servers["glance-2"].in_flight == (None if "missing" in case else 0)  # a bad value spoils only its row
    lbs = LoadBalancers([lb_config(fake.url(case))])
    try:
        facts = LBFacts.from_read(await lbs.read())
    finally:
        await lbs.aclose()
    assert facts.servers["glance-1"].in_flight is None and facts.views["glance-1"].in_flight is None
    assert any(problem in p for p in facts.views["glance-1"].problems)


async def test_missing_status_column_is_unknown_state(fake: FakeStats) -> None:
    BAD_COUNTERS["status-missing"] = (without("status"), "")
    try:
        async with HAProxy(lb_config(fake.url("status-missing"))) as lb:
            one = (await lb.servers())["glance-1"]
    finally:
        del BAD_COUNTERS["status-missing"]
    assert (one.state, one.admin_state, one.in_rotation, one.admin_out) == ("UNKNOWN", "UNKNOWN", False, False)
    assert "the stats CSV has no status column" in one.problems
    assert one.in_flight == 2  # the counters themselves were readable


async def test_down_row_with_a_silent_runtime_api_costs_one_deadline(fake: FakeStats) -> None:
    """DOWN hides DRAIN, so the read also asks the runtime API; both share the instance's deadline."""
    BAD_COUNTERS["down-row"] = (page("glance_api,glance-1,0,0,{scur},3,DOWN,1,0,L4CON,", *GOOD[1:]), "")
    try:
        with socket.socket() as listener:  # accepts (kernel backlog) and never answers
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            cfg = lb_config(fake.url("down-row")).model_copy(update={"runtime_socket": f"tcp:127.0.0.1:{listener.getsockname()[1]}"})
            read = await timed_read([cfg, lb_config(fake.url("down-row"), "ctl2")])
    finally:
        del BAD_COUNTERS["down-row"]
    assert not read.errors
    view = read.view("glance-1")
    assert view.in_flight == 4 and view.state == "DOWN" and view.admin_state == "UNKNOWN" and not view.admin_out
    assert f"ctl1/glance_api: admin state unknown: HAProxy runtime API did not answer within {TIMEOUT:g}s" in view.problems
    assert any(p.startswith("ctl2/glance_api: admin state unknown: status 'DOWN'") and "set runtime_socket" in p for p in view.problems)
    assert read.view("glance-2").admin_state == "READY"


# ---------------------------------------------------------------- what the operator sees

def write_config(tmp_path: Path, stats_url: str) -> Path:
    """A config whose load balancer is the fake page; nodes and database are unreachable on purpose."""
    closed = free_port()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    password = tmp_path / "db-password"
    password.write_text("db-Secret-1234\n")
    password.chmod(0o600)
    nodes = "".join(
        f'[[nodes]]\nname = "glance-{i}"\nssh_host = "127.0.0.{i}"\nlb_server = "glance-{i}"\napi_url = "http://127.0.0.{i}:{closed}"\n\n'
        for i in (1, 2)
    )
    path = tmp_path / "glance-tui.toml"
    path.write_text(
        f'[database]\nhost = "127.0.0.1"\nport = {closed}\npassword_file = "{password}"\nconnect_timeout = 1\nquery_timeout = 1\n\n'
        f'[[load_balancers]]\nname = "ctl1"\nstats_url = "{stats_url}"\nbackends = ["glance_api"]\ntimeout = {TIMEOUT}\n\n'
        f'[ssh]\nport = {closed}\nknown_hosts = "{known_hosts}"\nconnect_timeout = 1\n\n'
        f'{nodes}[policy]\ntarget_release = "2024.1"\n'
    )
    return path


def glance_tui(*args: str, timeout: float = 30) -> tuple[int, str, float]:
    """Exit code, stdout and duration of the CLI. (stderr is not asserted on: the SSH and database
    failures of this config are other modules' business; the LB lines are on stdout.)"""
    started = time.monotonic()
    done = subprocess.run([str(Path(sys.executable).parent / "glance-tui"), *args], capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, time.monotonic() - started


@pytest.mark.parametrize(("case", "fragment"), [
    ("one-byte-per-second", f"did not finish its answer within {TIMEOUT:g}s"),
    ("random-bytes", "is not UTF-8 text"),
    ("duplicated-server", "glance_api/glance-1 appears twice"),
    ("oversized-field", "has a field longer than 131072 characters"),
])
def test_status_and_check_name_the_problem(fake: FakeStats, tmp_path: Path, case: str, fragment: str) -> None:
    cfg = write_config(tmp_path, fake.url(case))
    code, out, took = glance_tui("status", "-c", str(cfg))
    assert code == 0 and "Traceback" not in out and "field larger than field limit" not in out, out
    lb_lines = [ln for ln in out.splitlines() if ln.startswith("load balancer:")]
    assert len(lb_lines) == 1 and "ctl1: " in lb_lines[0] and fragment in lb_lines[0], out
    assert took < TIMEOUT + 15, took  # was: killed at 60 s (issue 9); SSH and database fail fast here, the LB read is bounded
    code, out, took = glance_tui("check", "-c", str(cfg))
    assert code == 1 and "Traceback" not in out, out
    lb_gates = [ln for ln in out.splitlines() if "cannot read every load balancer" in ln]
    assert lb_gates and all(fragment in ln for ln in lb_gates), out
    assert "db-Secret-1234" not in out


def test_status_shows_unknown_counter_as_question_mark(fake: FakeStats, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, fake.url("scur-negative"))
    code, out, _ = glance_tui("status", "-c", str(cfg))
    assert code == 0 and "Traceback" not in out, out
    row = next(ln for ln in out.splitlines() if ln.startswith("glance-1"))
    assert " ? " in row and " 0 " not in row.split("UP", 1)[1][:12], out
