"""Every HAProxy instance × every Glance backend as one (adapters/lbset.py), against real HAProxy 2.6.

Two instances (as on two Kolla-Ansible controllers), each with an internal and an external
backend over the same three servers; the slow backends hold requests so in-flight counts are real.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from glance_tui.adapters.haproxy import ServerStats
from glance_tui.adapters.lbset import LBRead, LoadBalancers, ServerView
from glance_tui.config import LoadBalancerConfig
from glance_tui.errors import AdapterError
from glance_tui.lab.haproxy import HAProxyLab, HAProxyServer
from glance_tui.lab.procs import free_port
from glance_tui.probes import LBFacts
from tests.fixtures.haproxy import BACKEND, EXTERNAL, SlowBackends, kolla_lab, make_lb_config

SERVERS = ["glance-1", "glance-2", "glance-3"]
BOTH = [BACKEND, EXTERNAL]


def lbs_for(labs: dict[str, HAProxyLab], admin: dict[str, str] | None = None, **kwargs: object) -> LoadBalancers:
    """A LoadBalancers over ``{name: lab}`` with both backends on each (admin channel per name, default http)."""
    return LoadBalancers([
        make_lb_config(lab, (admin or {}).get(name, "http"), name=name, backends=BOTH, **kwargs)  # type: ignore[arg-type]
        for name, lab in labs.items()
    ])


async def wait_read(lbs: LoadBalancers, ok: Callable[[LBRead], bool], timeout: float = 10.0) -> LBRead:
    """Poll until ``ok(read)``; fail with the last read."""
    deadline = time.monotonic() + timeout
    while True:
        read = await lbs.read()
        if ok(read):
            return read
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {timeout}s: {read.errors} {[read.view(s).status for s in SERVERS]}")
        await asyncio.sleep(0.05)


def all_up(read: LBRead) -> bool:
    return not read.errors and all(read.view(s).state == "UP" and read.view(s).admin_state == "READY" for s in SERVERS)


@pytest.mark.services
async def test_in_flight_is_the_sum_over_every_instance_and_backend(haproxy_pair: list[HAProxyLab], slow_backends: SlowBackends) -> None:
    labs = {"ctl1": haproxy_pair[0], "ctl2": haproxy_pair[1]}
    sent = {"ctl1/glance_api": 1, "ctl1/glance_api_external": 2, "ctl2/glance_api": 3, "ctl2/glance_api_external": 4}
    total = sum(sent.values())
    lbs = lbs_for(labs, {"ctl2": "runtime"})
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await wait_read(lbs, all_up)
            with slow_backends.holding():
                tasks = []
                for where, n in sent.items():
                    lb, backend = where.split("/")
                    url = labs[lb].frontend_urls[backend]
                    tasks += [asyncio.create_task(client.get(f"{url}/slow?s=20")) for _ in range(n)]
                read = await wait_read(lbs, lambda r: sum(r.view(s).in_flight or 0 for s in SERVERS) == total and slow_backends.active == total)
                for where, n in sent.items():  # each place counts exactly what was sent through it
                    assert sum(row.in_flight for row in read.backends[where].values()) == n
                views = {s: read.view(s) for s in SERVERS}
                for view in views.values():
                    assert view.complete and len(view.rows) == 4
                    assert view.in_flight == sum(r.in_flight for r in view.rows.values())
                    facts = LBFacts.from_read(read)
                    assert facts.servers[view.server].in_flight == view.in_flight
                    assert facts.views[view.server].in_flight == view.in_flight
                busy = max(views.values(), key=lambda v: v.in_flight or 0)
                assert busy.in_flight and busy.in_flight > 0

                # Drain acts on all four places and keeps the requests already running.
                await lbs.drain(busy.server)
                try:
                    view = (await lbs.read()).view(busy.server)
                    assert {p: r.status for p, r in view.rows.items()} == dict.fromkeys(sent, "DRAIN")
                    assert view.admin_state == "DRAIN" and view.admin_out and view.in_rotation is False
                    assert view.in_flight == busy.in_flight
                    assert LBFacts.from_read(await lbs.read()).servers[busy.server].admin_out
                finally:
                    await lbs.ready(busy.server)
                view = (await lbs.read()).view(busy.server)
                assert view.admin_state == "READY" and not view.admin_out and view.in_rotation is True
            await wait_read(lbs, lambda r: all(r.view(s).in_flight == 0 for s in SERVERS))
            assert [r.status_code for r in await asyncio.gather(*tasks)] == [200] * total
    finally:
        await lbs.aclose()


@pytest.mark.services
async def test_maint_and_ready_act_on_every_place(haproxy_pair: list[HAProxyLab]) -> None:
    lbs = lbs_for({"ctl1": haproxy_pair[0], "ctl2": haproxy_pair[1]}, {"ctl1": "runtime"})
    try:
        await wait_read(lbs, all_up)
        await lbs.maint("glance-3")
        try:
            view = (await lbs.read()).view("glance-3")
            assert view.admin_state == "MAINT" and view.admin_out and view.state == "MAINT" and len(view.rows) == 4
            assert (await lbs.read()).view("glance-1").admin_state == "READY"
        finally:
            await lbs.ready("glance-3")
        await wait_read(lbs, all_up)
    finally:
        await lbs.aclose()


@pytest.mark.services
async def test_stopped_instance_is_named_and_nothing_is_known_for_certain(tmp_path: Path, slow_backends: SlowBackends) -> None:
    labs = {"ctl1": kolla_lab(tmp_path / "ctl1", slow_backends.servers), "ctl2": kolla_lab(tmp_path / "ctl2", slow_backends.servers)}
    for lab in labs.values():
        lab.start()
    lbs = lbs_for(labs, timeout=2)
    try:
        await wait_read(lbs, all_up)
        labs["ctl2"].stop()
        started = time.monotonic()
        read = await lbs.read()
        assert time.monotonic() - started < 3
        assert list(read.errors) == ["ctl2"] and "cannot reach the HAProxy stats page" in read.errors["ctl2"]
        assert read.error.startswith("ctl2: ")
        for server in SERVERS:
            view = read.view(server)
            assert view.unreachable == ("ctl2/glance_api", "ctl2/glance_api_external") and not view.missing
            assert view.in_flight is None and view.admin_state == "UNKNOWN" and not view.admin_out
            assert view.in_rotation is True  # ctl1 still routes to it
            assert view.combined() is None
        facts = LBFacts.from_read(read)
        assert facts.servers == {} and "ctl2" in facts.error and facts.views["glance-1"].in_flight is None

        with pytest.raises(AdapterError) as err:
            await lbs.drain("glance-2")
        text = str(err.value)
        assert "failed on 2 of 4 place(s)" in text and "ctl2/glance_api:" in text and "ctl2/glance_api_external:" in text
        assert "applied on ctl1/glance_api, ctl1/glance_api_external" in text
        view = (await lbs.read()).view("glance-2")
        assert all(r.admin_state == "DRAIN" for r in view.rows.values()) and not view.admin_out  # half-drained is not drained
        for backend in BOTH:  # put it back where it was drained
            await lbs.instances["ctl1"].admin("glance-2", "ready", backend)
        probes = await lbs.probe_admin()
        assert probes["ctl1"].ok and not probes["ctl2"].ok and "cannot reach" in probes["ctl2"].detail
    finally:
        await lbs.aclose()
        for lab in labs.values():
            lab.stop()


@pytest.mark.services
async def test_server_missing_from_one_backend_is_named(tmp_path: Path, haproxy_pair: list[HAProxyLab], slow_backends: SlowBackends) -> None:
    partial = kolla_lab(tmp_path / "ctl3", slow_backends.servers[:2])  # ctl3 lacks glance-3
    partial.start()
    lbs = lbs_for({"ctl1": haproxy_pair[0], "ctl3": partial})
    try:
        read = await wait_read(lbs, lambda r: all(r.view(s).state == "UP" for s in SERVERS[:2]))
        assert not read.errors
        view = read.view("glance-3")
        assert view.missing == ("ctl3/glance_api", "ctl3/glance_api_external") and not view.unreachable
        assert view.in_flight is None and not view.complete and view.admin_state == "UNKNOWN"
        assert "ctl3/glance_api: no row for glance-3" in view.problems
        facts = LBFacts.from_read(read)
        assert "glance-3" not in facts.servers and facts.servers["glance-1"].in_flight == 0
    finally:
        await lbs.aclose()
        partial.stop()
    nope = LoadBalancers([make_lb_config(haproxy_pair[0], name="ctl1", backends=[BACKEND, "glance_nope"])])
    try:
        read = await nope.read()
        assert read.errors == {"ctl1/glance_nope": "HAProxy has no backend 'glance_nope' (backends: glance_api, glance_api_external)"}
        view = read.view("glance-1")
        assert view.missing == ("ctl1/glance_nope",) and view.in_flight is None
    finally:
        await nope.aclose()


@pytest.mark.services
async def test_drained_server_that_a_health_check_marks_down(tmp_path: Path, slow_backends: SlowBackends) -> None:
    """HAProxy 2.6 shows DOWN, not DRAIN, for a drained server whose check fails: only the
    runtime API's srv_admin_state tells drained from READY-but-DOWN."""
    dead = HAProxyServer("glance-dead", "127.0.0.1", free_port())
    lab = kolla_lab(tmp_path / "h", [*slow_backends.servers[:1], dead])
    lab.start()
    with_socket = lbs_for({"ctl1": lab})
    csv_only = lbs_for({"ctl1": lab}, runtime=False)
    try:
        await wait_read(csv_only, lambda r: r.view("glance-dead").state == "DOWN" and r.view("glance-1").state == "UP")
        for action, exact in (("drain", "DRAIN"), ("ready", "READY")):
            await with_socket._act("glance-dead", action)
            shown = (await csv_only.read()).view("glance-dead")
            assert shown.state == "DOWN" and shown.admin_state == "UNKNOWN" and not shown.admin_out
            assert any("does not show whether it is drained (set runtime_socket" in p for p in shown.problems)
            assert shown.in_flight == 0  # counters are still known
            known = (await with_socket.read()).view("glance-dead")
            assert known.state == "DOWN" and known.admin_state == exact and known.admin_out is (exact == "DRAIN")
            assert (await with_socket.instances["ctl1"].admin_states(EXTERNAL))["glance-dead"] == exact
        await with_socket.maint("glance-dead")  # MAINT is shown even over DOWN
        shown = (await csv_only.read()).view("glance-dead")
        assert shown.state == "MAINT" and shown.admin_state == "MAINT" and shown.admin_out
        await with_socket.ready("glance-dead")
        assert (await with_socket.read()).view("glance-1").admin_state == "READY"
    finally:
        await with_socket.aclose()
        await csv_only.aclose()
        lab.stop()


@pytest.mark.services
async def test_one_silent_instance_costs_one_deadline(haproxy_pair: list[HAProxyLab]) -> None:
    with socket.socket() as listener:  # accepts (kernel backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        silent = HAProxyLab(Path("/nonexistent"), BACKEND, [], stats_port=listener.getsockname()[1])
        deadline = 2  # long beside the work around it, so that the bounds below leave a loaded machine room
        lbs = LoadBalancers([
            make_lb_config(haproxy_pair[0], name="ctl1", backends=BOTH, timeout=deadline),
            make_lb_config(silent, name="ctl9", backends=BOTH, timeout=deadline, runtime=False),
            make_lb_config(silent, name="ctl8", backends=BOTH, timeout=deadline, runtime=False),
        ])
        try:
            started = time.monotonic()
            read = await lbs.read()
            took = time.monotonic() - started
            assert took < 1.9 * deadline, took  # concurrent: one deadline, not one per instance or per backend
            assert sorted(read.errors) == ["ctl8", "ctl9"] and f"within {deadline}s" in read.errors["ctl9"]
            assert read.view("glance-1").rows.keys() == {"ctl1/glance_api", "ctl1/glance_api_external"}
            started = time.monotonic()
            with pytest.raises(AdapterError, match=rf"drain glance-1 failed on 4 of 6 place\(s\): ctl9/glance_api: HAProxy stats page did not answer within {deadline}s; .*"
                               r"ctl8/glance_api_external: .*; applied on ctl1/glance_api, ctl1/glance_api_external"):
                await lbs.drain("glance-1")
            assert time.monotonic() - started < 1.9 * deadline
        finally:
            for backend in BOTH:
                await lbs.instances["ctl1"].admin("glance-1", "ready", backend)
            await lbs.aclose()


def test_view_of_unknown_counters_is_unknown() -> None:
    good = ServerStats("s", "UP", "UP", 2, 1, 0, "L7OK", 1, "b")
    bad = ServerStats("s", "UP", "UP", None, 0, 0, "L7OK", 1, "b", problems=("scur is 'x', not a whole number ≥ 0",))
    view = ServerView("s", {"a/b": good, "c/b": bad})
    assert view.in_flight is None and view.combined() is not None and view.combined().in_flight is None  # type: ignore[union-attr]
    assert "c/b: scur is 'x', not a whole number ≥ 0" in view.problems
    assert ServerView("s", {"a/b": good, "c/b": good}).in_flight == 6
    unknown_weight = ServerStats("s", "UP", "UP", 0, 0, 0, "", None, "b")
    assert unknown_weight.in_rotation is None and ServerView("s", {"a/b": unknown_weight}).in_rotation is None
    drained = ServerStats("s", "DRAIN", "DRAIN", 0, 0, 0, "", 1, "b")
    maint = ServerStats("s", "MAINT", "MAINT", 0, 0, 0, "", 1, "b")
    mixed = ServerView("s", {"a/b": drained, "c/b": maint})
    assert mixed.admin_state == "MIXED" and mixed.admin_out and mixed.combined().admin_out  # type: ignore[union-attr]
    half = ServerView("s", {"a/b": drained, "c/b": good})
    assert half.admin_state == "MIXED" and not half.admin_out and not half.combined().admin_out  # type: ignore[union-attr]
    down = ServerStats("s", "DOWN", "DOWN", 0, 0, 0, "L4CON", 1, "b")
    assert down.admin_state == "UNKNOWN" and not ServerView("s", {"a/b": down}).admin_out


async def test_one_stats_request_per_instance_whatever_the_number_of_backends() -> None:
    header = "# pxname,svname,qcur,scur,status,weight,rate,check_status,"
    rows = [f"{b},glance-{i},0,{i},UP,1,0,L7OK," for b in BOTH for i in (1, 2)] + [f"{b},BACKEND,0,3,UP,2,0,," for b in BOTH]
    body = "\n".join([header, *rows]) + "\n"
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        csv = str(request.url).endswith(";csv")
        seen.append(f"{request.method} {request.url.host}{' csv' if csv else ''}")
        return httpx.Response(200, text=body if csv else process_page(4242, 3600))

    configs = [LoadBalancerConfig(name=f"ctl{n}", stats_url=f"http://10.0.0.{n}:8404/stats", backends=BOTH) for n in (1, 2)]
    lbs = LoadBalancers(configs, transport=httpx.MockTransport(handler))
    try:
        read = await lbs.read()
    finally:
        await lbs.aclose()
    # one CSV per instance, plus the top of its page: which HAProxy process answered
    assert sorted(seen) == ["GET 10.0.0.1", "GET 10.0.0.1 csv", "GET 10.0.0.2", "GET 10.0.0.2 csv"]
    assert {n: p.pid for n, p in read.processes.items()} == {"ctl1": 4242, "ctl2": 4242}
    assert read.view("glance-2").in_flight == 8 and read.view("glance-1").in_flight == 4  # 4 places each


def process_page(pid: int, uptime: int) -> str:
    """The top of HAProxy 2.6's stats page: its process block (what identifies the process)."""
    d, rest = divmod(uptime, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    return (f"<html><body><h1>Statistics Report</h1><p><b>pid = </b> {pid} (process #1, nbproc = 1, nbthread = 2)<br>\n"
            f"<b>uptime = </b> {d}d {h}h{m:02d}m{sec:02d}s<br>\n</p></body></html>")
