"""The HAProxy adapter and lab launcher against a real HAProxy 2.6 (plus a few parser unit tests)."""

from __future__ import annotations

import asyncio
import random
import re
import socket
from collections.abc import Callable

import httpx
import pytest

from glance_tui.adapters.haproxy import HAProxy, ServerStats, normalise_status, parse_csv, parse_servers_state, parse_socket
from glance_tui.adapters.haproxy_stats import StatsFormatError, admin_from_bits
from glance_tui.config import LoadBalancerConfig
from glance_tui.errors import AdapterError, GlanceTuiError
from glance_tui.lab.haproxy import HAProxyLab, HAProxyServer
from glance_tui.lab.procs import free_port
from tests.fixtures.haproxy import STATS_PASSWORD, SlowBackends, make_lb_config

SERVERS = ["glance-1", "glance-2", "glance-3"]


async def wait_for(lb: HAProxy, ok: Callable[[dict[str, ServerStats]], bool], timeout: float = 10.0) -> dict[str, ServerStats]:
    """Poll the stats until ``ok(servers)``; fail with the last snapshot."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        servers = await lb.servers()
        if ok(servers):
            return servers
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not reached within {timeout}s: {servers}")
        await asyncio.sleep(0.05)


def all_up(servers: dict[str, ServerStats]) -> bool:
    return all(s.state == "UP" and s.status == "UP" for s in servers.values())


# ---------------------------------------------------------------- unit: parsing

HEADER = ["pxname", "svname", "qcur", "scur", "status", "weight", "rate", "check_status"]
ROWS = [
    ["glance_api", "glance-1", "2", "5", "UP 1/2", "1", "7", "L7OK"],
    ["glance_api", "glance-2", "0", "0", "MAINT (via other/glance-2)", "1", "0", ""],
    ["glance_api", "BACKEND", "2", "5", "UP", "2", "7", ""],
]


def test_csv_parsed_by_column_name_in_any_order() -> None:
    order = HEADER[:]
    random.Random(7).shuffle(order)
    assert order != HEADER
    idx = [HEADER.index(c) for c in order]
    text = "# " + ",".join(order) + ",\n" + "".join(",".join(r[i] for i in idx) + ",\n" for r in ROWS)
    rows = parse_csv(text)
    assert [r["svname"] for r in rows] == ["glance-1", "glance-2", "BACKEND"]
    one = ServerStats.from_row(rows[0])
    assert (one.server, one.backend, one.status, one.state) == ("glance-1", "glance_api", "UP 1/2", "UP")
    assert (one.scur, one.qcur, one.in_flight, one.rate, one.weight, one.check_status) == (5, 2, 7, 7, 1, "L7OK")
    assert one.in_rotation
    two = ServerStats.from_row(rows[1])
    assert two.state == "MAINT" and not two.in_rotation and two.in_flight == 0


def test_not_a_csv_is_rejected() -> None:
    with pytest.raises(ValueError, match="the first line must start with '# '"):
        parse_csv("<html>Statistics Report</html>")


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("UP", "UP"), ("UP 1/2", "UP"), ("DOWN", "DOWN"), ("DOWN 1/2", "DOWN"), ("DRAIN", "DRAIN"),
        ("DRAIN (agent)", "DRAIN"), ("MAINT", "MAINT"), ("MAINT (via glance_api/x)", "MAINT"),
        ("MAINT (resolution)", "MAINT"), ("NOLB", "NOLB"), ("NOLB 2/3", "NOLB"), ("no check", "NOCHECK"),
        ("", "UNKNOWN"), ("OPEN", "UNKNOWN"),
    ],
)
def test_status_normalised(raw: str, state: str) -> None:
    assert normalise_status(raw) == state


def test_in_rotation_needs_weight_and_a_serving_state() -> None:
    base = dict(server="s", status="", scur=0, qcur=0, rate=0, check_status="", backend="b")
    assert ServerStats(state="NOCHECK", weight=1, **base).in_rotation
    assert not ServerStats(state="UP", weight=0, **base).in_rotation
    for state in ("DRAIN", "MAINT", "DOWN", "NOLB"):
        assert not ServerStats(state=state, weight=1, **base).in_rotation


def test_runtime_socket_specs() -> None:
    assert parse_socket("unix:/run/haproxy/admin.sock") == ("unix", "/run/haproxy/admin.sock")
    assert parse_socket("/run/haproxy/admin.sock") == ("unix", "/run/haproxy/admin.sock")
    assert parse_socket("tcp:10.0.0.5:9999") == ("10.0.0.5", 9999)
    assert parse_socket("tcp:[::1]:9999") == ("::1", 9999)
    with pytest.raises(AdapterError, match="tcp:HOST:PORT"):
        parse_socket("tcp:nohost")


# `show servers state glance_api` from HAProxy 2.6 (glance-1 drained and UP, glance-dead drained and DOWN).
SERVERS_STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 glance_api 1 glance-1 127.0.0.1 2 8 1 1 0 15 3 3 6 0 0 0 - 43675 - 0 0 - - 0
3 glance_api 2 glance-dead 127.0.0.1 0 8 1 1 0 8 2 0 6 0 0 0 - 59011 - 0 0 - - 0
5 glance_ext 1 glance-1 127.0.0.1 2 1 1 1 2 15 3 3 6 0 0 0 - 43675 - 0 0 - - 0
"""


def test_servers_state_gives_the_exact_admin_state() -> None:
    assert parse_servers_state(SERVERS_STATE, "glance_api") == {"glance-1": "DRAIN", "glance-dead": "DRAIN"}
    assert parse_servers_state(SERVERS_STATE, "glance_ext") == {"glance-1": "MAINT"}
    assert [admin_from_bits(v) for v in ("0", "1", "2", "4", "8", "16", "9", "32", "64", "128", "x", "-1", "")] == [
        "READY", "MAINT", "MAINT", "MAINT", "DRAIN", "DRAIN", "MAINT", "MAINT", "MAINT", "UNKNOWN", "UNKNOWN", "UNKNOWN", "UNKNOWN"]


@pytest.mark.parametrize(("answer", "problem"), [
    ("Can't find backend.\n", "no backend 'glance_api'"),
    ("", "unexpected answer to `show servers state`: ''"),
    ("Unknown command\n", "unexpected answer"),
    ("1\n# be_id be_name srv_id\n3 glance_api 1\n", "no be_name, srv_name or srv_admin_state field"),
    ("1\n# be_id be_name srv_id srv_name srv_admin_state\n3 glance_api\n", "line is too short"),
    ("1\n# be_id be_name srv_id srv_name srv_admin_state\n3 glance_api 1 s 0\n3 glance_api 2 s 8\n", "lists glance_api/s twice"),
])
def test_servers_state_garbage_is_an_error(answer: str, problem: str) -> None:
    with pytest.raises(StatsFormatError, match=re.escape(problem)):
        parse_servers_state(answer, "glance_api")


@pytest.mark.parametrize(("url", "problem"), [
    ("http://127.0.0.1:99999/stats", "port 99999 is not between 1 and 65535"),
    ("http://[::1/stats", "not a valid URL"),
    ("http://:80/stats", "needs http:// or https:// and a host"),
])
async def test_unusable_stats_url_is_a_clear_error(url: str, problem: str) -> None:
    cfg = LoadBalancerConfig(stats_url="http://127.0.0.1:8404/stats", backend="glance_api").model_copy(update={"stats_url": url})
    async with HAProxy(cfg) as lb:
        with pytest.raises(AdapterError, match=re.escape(problem)):
            await lb.servers()


async def test_userinfo_in_the_url_never_reaches_a_message() -> None:
    cfg = LoadBalancerConfig(stats_url="http://127.0.0.1:8404/stats", backend="glance_api")
    cfg = cfg.model_copy(update={"stats_url": f"http://admin:s3cret-Pw@127.0.0.1:{free_port()}/stats"})
    async with HAProxy(cfg) as lb:
        with pytest.raises(AdapterError) as err:
            await lb.servers()
    assert "s3cret-Pw" not in str(err.value) and "admin:" not in str(err.value) and "cannot reach" in str(err.value)


async def test_names_that_could_split_a_runtime_command_are_refused(haproxy_lab: HAProxyLab) -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    async with HAProxy(make_lb_config(haproxy_lab, "runtime"), transport=httpx.MockTransport(never)) as lb:
        for server in ("glance-1\nset server glance_api/glance-2 state maint", "glance 1", "glance-1;x", ""):
            with pytest.raises(AdapterError, match="characters HAProxy names cannot have"):
                await lb.drain(server)


# ---------------------------------------------------------------- in-process edge cases (beside the real path)

async def test_unexpected_post_answers_are_explained(haproxy_lab: HAProxyLab) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(303, headers={"location": "/stats;st=PART"})

    async with HAProxy(make_lb_config(haproxy_lab), transport=httpx.MockTransport(handler)) as lb:
        with pytest.raises(AdapterError, match=r"partially \(st=PART\)"):
            await lb.drain("glance-1")


async def test_html_instead_of_csv_names_the_fix(haproxy_lab: HAProxyLab) -> None:
    async with HAProxy(make_lb_config(haproxy_lab), transport=httpx.MockTransport(lambda r: httpx.Response(200, text="<html>"))) as lb:
        with pytest.raises(AdapterError, match="stats uri"):
            await lb.servers()


# ---------------------------------------------------------------- real HAProxy

CHANNELS = [("http", "unix"), ("runtime", "unix"), ("runtime", "tcp")]
CHANNEL_IDS = ["http", "runtime-unix", "runtime-tcp"]


@pytest.mark.services
async def test_servers_read_from_the_real_stats_csv(haproxy_lab: HAProxyLab) -> None:
    async with HAProxy(make_lb_config(haproxy_lab)) as lb:
        servers = await wait_for(lb, all_up)
        assert sorted(servers) == SERVERS
        for name, s in servers.items():
            assert (s.server, s.backend, s.weight, s.check_status, s.in_flight) == (name, "glance_api", 1, "L7OK", 0)
            assert s.in_rotation
        raw = await lb.all_rows()
        assert {"FRONTEND", "BACKEND"} <= {r["svname"] for r in raw}


@pytest.mark.services
async def test_unknown_backend_lists_the_known_ones(haproxy_lab: HAProxyLab) -> None:
    async with HAProxy(make_lb_config(haproxy_lab, backend="glance_nope")) as lb:
        with pytest.raises(AdapterError, match=r"no backend 'glance_nope' \(backends: glance_api\).*fix: set load_balancer.backend"):
            await lb.servers()


@pytest.mark.services
@pytest.mark.parametrize(("admin", "sock"), CHANNELS, ids=CHANNEL_IDS)
async def test_drain_then_ready(haproxy_lab: HAProxyLab, admin: str, sock: str) -> None:
    async with HAProxy(make_lb_config(haproxy_lab, admin, socket=sock)) as lb:  # type: ignore[arg-type]
        await wait_for(lb, all_up)
        try:
            await lb.drain("glance-2")
            servers = await lb.servers()
            assert servers["glance-2"].status == "DRAIN" and not servers["glance-2"].in_rotation
            assert servers["glance-1"].in_rotation and servers["glance-3"].in_rotation
        finally:
            await lb.ready("glance-2")
        servers = await lb.servers()
        assert servers["glance-2"].state == "UP" and servers["glance-2"].in_rotation


@pytest.mark.services
@pytest.mark.parametrize(("admin", "sock"), CHANNELS[:2], ids=CHANNEL_IDS[:2])
async def test_maint_stops_checks_and_ready_brings_it_back(haproxy_lab: HAProxyLab, admin: str, sock: str) -> None:
    async with HAProxy(make_lb_config(haproxy_lab, admin, socket=sock)) as lb:  # type: ignore[arg-type]
        await wait_for(lb, all_up)
        try:
            await lb.maint("glance-3")
            servers = await lb.servers()
            assert servers["glance-3"].state == "MAINT" and servers["glance-3"].check_status == ""
        finally:
            await lb.ready("glance-3")
        await wait_for(lb, all_up)


@pytest.mark.services
@pytest.mark.parametrize(("admin", "sock"), CHANNELS[:2], ids=CHANNEL_IDS[:2])
async def test_unknown_server_and_backend_are_clear_errors(haproxy_lab: HAProxyLab, admin: str, sock: str) -> None:
    async with HAProxy(make_lb_config(haproxy_lab, admin, socket=sock)) as lb:  # type: ignore[arg-type]
        with pytest.raises(AdapterError) as err:
            await lb.drain("glance-9")
        assert "has no" in err.value.what and "server" in err.value.what and "lb_server" in err.value.fix
        assert "'glance-9'" in err.value.what
        assert err.value.where == (lb.cfg.stats_url if admin == "http" else lb.cfg.runtime_socket)
        if admin == "http":
            assert "st=ERRP" in err.value.what
        servers = await lb.servers()
        assert all(s.state == "UP" for s in servers.values())
    async with HAProxy(make_lb_config(haproxy_lab, admin, socket=sock, backend="glance_nope")) as lb:  # type: ignore[arg-type]
        with pytest.raises(AdapterError, match=r"no backend 'glance_nope'.*fix: set load_balancer.backend"):
            await lb.ready("glance-1")


@pytest.mark.services
async def test_stats_page_without_admin_is_denied(haproxy_noadmin: HAProxyLab) -> None:
    async with HAProxy(make_lb_config(haproxy_noadmin, "http")) as lb:
        with pytest.raises(AdapterError, match=r"refused admin actions \(st=DENY\).*fix: add `stats admin if TRUE`"):
            await lb.drain("glance-1")
        assert (await lb.servers())["glance-1"].state != "DRAIN"


@pytest.mark.services
@pytest.mark.parametrize("sock", ["unix", "tcp"])
async def test_user_level_runtime_socket_is_denied(haproxy_noadmin: HAProxyLab, sock: str) -> None:
    async with HAProxy(make_lb_config(haproxy_noadmin, "runtime", socket=sock)) as lb:  # type: ignore[arg-type]
        with pytest.raises(AdapterError, match=r"refused \(socket level below admin\).*fix: use `stats socket \.\.\. level admin`"):
            await lb.drain("glance-1")


@pytest.mark.services
@pytest.mark.parametrize(("admin", "sock"), CHANNELS, ids=CHANNEL_IDS)
async def test_probe_admin_ok_changes_nothing(haproxy_lab: HAProxyLab, admin: str, sock: str) -> None:
    async with HAProxy(make_lb_config(haproxy_lab, admin, socket=sock)) as lb:  # type: ignore[arg-type]
        before = {n: s.status for n, s in (await wait_for(lb, all_up)).items()}
        probe = await lb.probe_admin()
        assert probe.ok and probe.channel == admin and probe.fix == ""
        assert {n: s.status for n, s in (await lb.servers()).items()} == before


@pytest.mark.services
@pytest.mark.parametrize(("admin", "sock", "fix"), [("http", "unix", "stats admin if TRUE"), ("runtime", "unix", "level admin"), ("runtime", "tcp", "level admin")])
async def test_probe_admin_refused(haproxy_noadmin: HAProxyLab, admin: str, sock: str, fix: str) -> None:
    async with HAProxy(make_lb_config(haproxy_noadmin, admin, socket=sock)) as lb:  # type: ignore[arg-type]
        probe = await lb.probe_admin()
        assert not probe.ok and probe.channel == admin and fix in probe.fix
        assert ("DENY" if admin == "http" else "level user") in probe.detail


@pytest.mark.services
async def test_probe_admin_with_unknown_backend(haproxy_lab: HAProxyLab) -> None:
    async with HAProxy(make_lb_config(haproxy_lab, backend="glance_nope")) as lb:
        probe = await lb.probe_admin()
        assert not probe.ok and "no backend 'glance_nope'" in probe.detail


@pytest.mark.services
async def test_in_flight_counts_while_slow_requests_run(haproxy_lab: HAProxyLab, slow_backends: SlowBackends) -> None:
    n = 6
    async with HAProxy(make_lb_config(haproxy_lab, "runtime")) as lb, httpx.AsyncClient(timeout=30) as client:
        await wait_for(lb, all_up)
        with slow_backends.holding():
            tasks = [asyncio.create_task(client.get(f"{haproxy_lab.frontend_url}/slow?s=20")) for _ in range(n)]
            servers = await wait_for(lb, lambda s: sum(x.in_flight for x in s.values()) == n and slow_backends.active == n)
            assert sum(x.scur for x in servers.values()) == n  # leastconn over 3 servers queues nothing
            busy = max(servers.values(), key=lambda s: s.in_flight)
            assert busy.in_flight > 0
            # Draining keeps the requests already on the server.
            await lb.drain(busy.server)
            try:
                drained = (await lb.servers())[busy.server]
                assert drained.state == "DRAIN" and drained.in_flight == busy.in_flight
            finally:
                await lb.ready(busy.server)
        await wait_for(lb, lambda s: all(x.in_flight == 0 for x in s.values()))
        responses = await asyncio.gather(*tasks)
        assert [r.status_code for r in responses] == [200] * n


@pytest.mark.services
async def test_basic_auth(haproxy_auth: HAProxyLab, stats_password_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with HAProxy(make_lb_config(haproxy_auth)) as lb:
        with pytest.raises(AdapterError, match=r"requires a login \(HTTP 401\).*fix: set load_balancer.username"):
            await lb.servers()
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong-Secret-4711\n")
    async with HAProxy(make_lb_config(haproxy_auth, password_file=wrong)) as lb:
        with pytest.raises(AdapterError, match=r"refused the configured credentials") as err:
            await lb.servers()
        assert "wrong-Secret-4711" not in str(err.value)
    async with HAProxy(make_lb_config(haproxy_auth, password_file=stats_password_file)) as lb:
        servers = await wait_for(lb, all_up)
        assert sorted(servers) == SERVERS
        assert (await lb.probe_admin()).ok
        with pytest.raises(AdapterError) as err:
            await lb.drain("glance-9")
        assert STATS_PASSWORD not in str(err.value) and STATS_PASSWORD not in repr(lb.cfg)


@pytest.mark.services
async def test_unreachable_stats_page_and_socket(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lab = HAProxyLab(tmp_path, "glance_api", [], stats_port=free_port(), runtime_tcp_port=free_port())
    async with HAProxy(make_lb_config(lab, timeout=2)) as lb:
        with pytest.raises(AdapterError, match=r"cannot reach the HAProxy stats page.*fix: check load_balancer.stats_url") as err:
            await lb.servers()
        assert err.value.where == f"{lab.stats_url};csv"
    for sock in ("unix", "tcp"):
        async with HAProxy(make_lb_config(lab, "runtime", socket=sock, timeout=2)) as lb:  # type: ignore[arg-type]
            with pytest.raises(AdapterError, match=r"cannot connect to the HAProxy runtime API.*fix: check load_balancer.runtime_socket"):
                await lb.probe_admin()


@pytest.mark.services
async def test_silent_stats_page_times_out(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as listener:  # accepts connections (kernel backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        lab = HAProxyLab(tmp_path, "glance_api", [], stats_port=listener.getsockname()[1])
        async with HAProxy(make_lb_config(lab, timeout=0.3)) as lb:
            with pytest.raises(AdapterError, match=r"did not answer within 0.3s"):
                await lb.servers()


# ---------------------------------------------------------------- lab launcher

@pytest.mark.services
def test_lab_refuses_a_busy_port(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        lab = HAProxyLab(tmp_path, "glance_api", [], stats_port=busy.getsockname()[1])
        with pytest.raises(GlanceTuiError, match=r"already in use \(needed for the HAProxy stats page\).*fix: stop whatever"):
            lab.start()
        assert not lab.is_running()


@pytest.mark.services
def test_lab_config_serves_glance(haproxy_lab: HAProxyLab) -> None:
    text = haproxy_lab.config_path.read_text()
    for line in ("mode http", "balance leastconn", "option httpchk GET /versions", "http-check expect status 200",
                 "option redispatch", "retries 3", "timeout server 10m", "timeout connect 2s", "stats admin if TRUE",
                 f"stats socket {haproxy_lab.runtime_socket} mode 600 level admin"):
        assert line in text
    assert haproxy_lab.is_running() and haproxy_lab.config_path.stat().st_mode & 0o777 == 0o600


@pytest.mark.services
def test_lab_start_stop(tmp_path, slow_backends: SlowBackends) -> None:  # type: ignore[no-untyped-def]
    lab = HAProxyLab(tmp_path, "glance_api", slow_backends.servers[:1], check_inter_ms=1000)
    lab.start()
    try:
        assert lab.is_running() and lab.runtime_socket.exists()
        assert httpx.get(f"{lab.stats_url};csv", timeout=5).text.startswith("# pxname,")
    finally:
        assert lab.stop() is True
    assert not lab.is_running() and not lab.runtime_socket.exists()
    assert lab.stop() is False


async def test_a_backup_server_is_read_from_the_bck_column(tmp_path, slow_backends: SlowBackends) -> None:
    servers = [HAProxyServer(s.name, s.host, s.port, backup=(i == 2)) for i, s in enumerate(slow_backends.servers)]
    lab = HAProxyLab(tmp_path / "haproxy-bck", "glance_api", servers, check_inter_ms=100)
    lab.start()
    try:
        async with HAProxy(make_lb_config(lab)) as lb:
            rows = await lb.servers()
        assert {name: row.backup for name, row in rows.items()} == {s.name: s.backup for s in servers}
    finally:
        lab.stop()
