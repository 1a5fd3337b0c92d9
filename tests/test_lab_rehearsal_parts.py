"""The rehearsal's own parts, without real Glance: the time split from a journal, the stats
black-hole in front of a real HAProxy, the LB state reader, the witness and the judge."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from glance_tui.journal import Journal, read_records
from glance_tui.lab.hazards import MAY_STOP, SCENARIOS, lb_states, wait_for_record
from glance_tui.lab.load import LoadReport, Targets
from glance_tui.lab.monitor import ProcessMonitor, ProcessSpan
from glance_tui.lab.rehearse import ProcedureReport, _judge, _judge_witness, report_text, scenario_names, time_text
from glance_tui.lab.statsproxy import StatsProxy
from glance_tui.lab.timesplit import split_journal


def rec(ts: float, event: str, **fields) -> dict:
    return {"ts": ts, "event": event, **fields}


def test_time_split_per_step_and_action() -> None:
    records = [
        rec(100.0, "run.start"),
        rec(101.0, "step.start", step="new-node", title="NEW NODE out of rotation"),
        rec(101.5, "action.start", step="new-node", action="drain", node="glance-1"),
        rec(101.7, "lb", node="glance-1", action="drain"),
        rec(102.0, "action.end", step="new-node", action="drain", ok=True),
        rec(102.0, "action.start", step="new-node", action="wait-drained", node="glance-1"),
        rec(110.0, "drained", node="glance-1", waited=8.0),
        rec(110.0, "action.end", step="new-node", action="wait-drained", ok=True),
        rec(110.2, "action.start", step="new-node", action="stop", node="glance-1"),
        rec(112.0, "command", node="glance-1", command="stop", exit=0, duration=1.2),
        rec(113.2, "action.end", step="new-node", action="stop", ok=True),
        rec(114.0, "step.end", step="new-node", ok=True),
        rec(120.0, "run.end", ok=True),
    ]
    split = split_journal(records)
    step = split["steps"][0]
    assert step["step"] == "new-node" and step["wall"] == 13.0
    actions = {a["action"]: a for a in step["actions"]}
    assert actions["drain"]["split"] == {"commands": 0.0, "drain": 0.0, "lb_health": 0.5, "overhead": 0.0}
    assert actions["wait-drained"]["split"]["drain"] == 8.0
    assert actions["stop"]["split"] == {"commands": 1.2, "drain": 0.0, "lb_health": 0.0, "overhead": 1.8}
    # the step's time outside its actions (gates, probes) is the tool's overhead
    assert step["split"] == {"commands": 1.2, "drain": 8.0, "lb_health": 0.5, "overhead": 3.3}
    assert sum(step["split"].values()) == pytest.approx(step["wall"])
    # preflight and planning before the first step and after the last count as overhead too
    assert split["total"]["wall"] == 20.0 and split["total"]["split"]["overhead"] == pytest.approx(10.3)
    text = time_text(ProcedureReport("drain", True, 20.0, time_split=split))
    assert "wait-drained glance-1" in text and "total (incl. preflight, planning)" in text


async def test_stats_proxy_blackholes_a_real_haproxy_stats_page(haproxy_lab) -> None:
    proxy = StatsProxy("127.0.0.1", haproxy_lab.stats_host, haproxy_lab.stats_port)
    await proxy.start()
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            assert "glance_api" in (await http.get(proxy.url() + ";csv")).text
            outage = asyncio.create_task(proxy.outage(6.0))  # well past the client's 2 s, even if the loop lags
            await asyncio.sleep(0.1)
            started = time.monotonic()
            with pytest.raises(httpx.TimeoutException):  # accepted, never answered
                await http.get(proxy.url() + ";csv")
            assert time.monotonic() - started >= 1.9
            await outage
            assert "glance_api" in (await http.get(proxy.url() + ";csv")).text  # answers again
        assert proxy.dropped > 0
    finally:
        await proxy.close()


def test_lb_states_reads_every_backend_row(haproxy_lab) -> None:
    states = lb_states({"lb-a": haproxy_lab.stats_url}, ["glance_api"])
    assert set(states) == {s.name for s in haproxy_lab.servers}
    assert all(set(places) == {"lb-a/glance_api"} and st.startswith("UP") for places in states.values() for st in places.values())
    broken = lb_states({"lb-a": haproxy_lab.stats_url, "lb-b": "http://127.0.0.1:9/stats"}, ["glance_api"], timeout=1)
    assert all(places["lb-b"].startswith("unreadable") for places in broken.values())


async def test_wait_for_record_sees_a_record_as_it_is_written(tmp_path) -> None:
    journal = Journal.create(tmp_path, config_path=None, target_release="2024.1")
    waiter = asyncio.create_task(wait_for_record(journal.path, lambda r: r.get("event") == "lb" and r.get("action") == "drain"))
    await asyncio.sleep(0.3)
    assert not waiter.done()
    journal.write("lb", node="glance-2", action="drain")
    assert (await asyncio.wait_for(waiter, 30))["node"] == "glance-2"
    assert len(list(read_records(journal.path))) == 2


def test_targets_move_like_a_vip() -> None:
    import random

    targets = Targets(["http://a:1", "http://a:2/"])
    assert {targets.pick(random.Random(i)) for i in range(20)} == {"http://a:1", "http://a:2"}
    targets.move_to(["http://b:1"])
    assert targets.pick(random.Random()) == "http://b:1" and targets.moved_at is not None


def witness(*spans: ProcessSpan) -> ProcessMonitor:
    monitor = ProcessMonitor({})
    monitor.spans = {(s.node, s.pid, s.started): s for s in spans}
    return monitor


def test_witness_catches_contract_under_old_code_and_a_running_new_node() -> None:
    records = [
        rec(10, "state", new_node="glance-1"),
        rec(20, "action.start", action="expand"), rec(25, "action.end", action="expand", ok=True),
        rec(50, "action.start", action="contract"), rec(55, "action.end", action="contract", ok=True),
    ]
    good = ProcedureReport("drain", True, 1.0)
    _judge_witness(good, records, witness(ProcessSpan("glance-1", 7, "2024.1", 30, 60), ProcessSpan("glance-2", 8, "2023.1", 1, 45)))
    assert good.problems == []
    bad = ProcedureReport("drain", True, 1.0)
    _judge_witness(bad, records, witness(ProcessSpan("glance-1", 7, "2024.1", 21, 60), ProcessSpan("glance-2", 8, "2023.1", 1, 52)))
    assert bad.problems == [
        "db contract ran while old code was serving: glance-2 (pid 8, 2023.1 code)",
        "db expand ran while the NEW NODE glance-1 was running (pid 7, 2024.1 code); the guide keeps it stopped",
    ]


def test_judge_stop_must_name_every_node_left_out_of_rotation() -> None:
    assert MAY_STOP == {"stats-outage", "stale-image"} and set(SCENARIOS) >= {"prestaged", "autostart", "failover", "stats-outage", "long-request"}
    load = LoadReport(url="u", clients=1, requests={"list": 5})
    named = ProcedureReport("drain", False, 1.0, scenario="stats-outage", stopped="stopped at step 2: cannot read lb-b; glance-1 stays drained",
                            out_of_rotation={"glance-1": {"lb-a/glance_api": "DRAIN"}})
    _judge(named, load, [named.stopped])
    assert named.ok and named.problems == []
    silent = ProcedureReport("drain", False, 1.0, scenario="stats-outage", stopped="stopped at step 2",
                             out_of_rotation={"glance-1": {"lb-a/glance_api": "DRAIN"}})
    _judge(silent, load, [silent.stopped])
    assert not silent.ok and "glance-1 is out of rotation (lb-a/glance_api DRAIN) but the tool did not say so" in silent.problems
    halted = ProcedureReport("drain", False, 1.0, scenario="failover", stopped="stopped at step 6")
    _judge(halted, load, [])
    assert halted.problems == ["the procedure did not finish: stopped at step 6"]
    assert "PROBLEM: the procedure did not finish" in report_text([halted])


def test_scenario_names() -> None:
    assert scenario_names("all") == list(SCENARIOS)
    assert "stale-image" not in scenario_names("all", "packages") and "prestaged" in scenario_names("all", "packages")
    assert scenario_names("all", "kolla") == [s for s in SCENARIOS if s not in ("prestaged", "autostart")]
    assert scenario_names("failover") == ["failover"]
    from glance_tui.errors import UsageError

    with pytest.raises(UsageError, match="unknown scenario 'nope'"):
        scenario_names("nope")


def test_witness_start_times_are_not_early(tmp_path) -> None:
    """A process's start, as the witness computes it, is within clock-tick precision of the
    real one: never a second early (btime is truncated), which put a NEW NODE started just
    after expand inside the expand window."""
    import subprocess
    import sys
    import time

    from glance_tui.lab import procs

    for _ in range(3):
        before = time.time()
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
        try:
            stat = open(f"/proc/{proc.pid}/stat").read()
            started = procs.start_time(stat, procs.boot_time())  # what the witness and nodectl compute
            assert before - 0.05 <= started <= time.time() + 0.05, (before, started)
        finally:
            proc.kill()
            proc.wait()
        time.sleep(0.3)  # another fraction of a second
