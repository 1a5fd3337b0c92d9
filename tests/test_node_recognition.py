"""Recognising Glance on a node without trusting a name: the truth table (process patterns ×
listener × health URL × load balancer) on REAL processes — a real uWSGI (master + 2 lazy-app
workers, Glance's reference ini settings) serving a tiny WSGI app, the simulated eventlet
``glance-api`` (a plain Python HTTP server), a renamed server — probed over the real sshd of
the simulated cluster, behind its real HAProxy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from glance_tui import gates as G
from glance_tui.cli import main
from glance_tui.config import Config, load_config
from glance_tui.context import Context, RunState
from glance_tui.errors import ConfigError
from glance_tui.journal import NullJournal
from glance_tui.lab import nodectl, nodens, procs
from glance_tui.lab.lab import Lab
from glance_tui.node import CODE_INSTALLED, CODE_MIXED, CODE_OLD, NodeFacts
from glance_tui.probes import Cluster

pytestmark = pytest.mark.services
UWSGI = Path(sys.executable).parent / "uwsgi"
NODE = "glance-1"

APP = '''\
import json, os, time
from urllib.parse import parse_qs

def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/slow":
        time.sleep(float(parse_qs(environ.get("QUERY_STRING", "")).get("s", ["1"])[0]))
    body = json.dumps({"versions": [{"id": "v2.15", "status": "CURRENT"}]}) if path == "/versions" else "ok"
    start_response("200 OK", [("Content-Type", "application/json"), ("X-Pid", str(os.getpid()))])
    return [body.encode()]
'''

# A plain HTTP server under a name no pattern knows (an operator's wrapper, a renamed binary).
RENAMED = '''\
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass

HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
'''


def where(lab: Lab, name: str = NODE):
    layout = lab.load_layout()
    n = next(x for x in layout.nodes if x.name == name)
    return n, lab.node_dir(name)


def reinstall(node_dir: Path) -> None:
    """A new install of the node's package in place (its glance-api's ctime is now)."""
    nodectl.install_package(nodectl.Node.load(node_dir), reinstall=True)


@dataclass
class Served:
    """A replacement server running inside the node's machine: its host pid and the pid the node's ps shows."""

    pid: int
    local: int


def group_pids(pid: int) -> set[int]:
    return {pid} | {int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()}


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def serving_instead(lab: Lab, argv_for) -> Iterator[Served]:
    """Stop the node's simulated glance-api and serve its API address with ``argv_for(host, port, dir)``
    instead; put the node back (its glance-api, its install time) afterwards."""
    n, node_dir = where(lab)
    ctl = lab.node(n)
    nodectl.stop(ctl)
    log = open(node_dir / "replacement.log", "a")
    # inside the node's machine (nsenter's child; one process group with it), where its ps looks
    proc = subprocess.Popen([*nodens.enter(node_dir), *argv_for(n.host, n.api_port, node_dir)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for(lambda: answers(f"http://{n.host}:{n.api_port}/healthcheck"), what="the replacement server to answer")
        server = next(iter(procs.processes(parent=proc.pid)))
        yield Served(server, nodens.local_pid(server) or 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
        wait_for(lambda: not answers(f"http://{n.host}:{n.api_port}/healthcheck") and procs.port_is_free(n.host, n.api_port), what="the port to be free")
        reinstall(node_dir)  # the package is put back; the service starts after it
        nodectl.start(ctl)


def uwsgi_argv(host: str, port: int, node_dir: Path) -> list[str]:
    """Glance's reference ini (master, lazy-apps workers, die-on-term), 2 workers, in the node's dir."""
    (node_dir / "tinyapp.py").write_text(APP)
    ini = node_dir / "glance-api-uwsgi.ini"
    ini.write_text("[uwsgi]\n" + "\n".join([
        f"http-socket = {host}:{port}", "master = true", "processes = 2", "lazy-apps = true", "enable-threads = true",
        "die-on-term = true", "exit-on-reload = true", "need-app = true", f"wsgi-file = {node_dir / 'tinyapp.py'}",
        "add-header = Connection: close", "disable-logging = true"]) + "\n")
    return [str(UWSGI), "--ini", str(ini)]  # COMM uwsgi, args `<venv>/bin/python <venv>/bin/uwsgi --ini …`


def renamed_argv(host: str, port: int, node_dir: Path) -> list[str]:
    script = node_dir / "imgserve"
    script.write_text(RENAMED)
    return [sys.executable, str(script), host, str(port)]


@contextlib.contextmanager
def uwsgi_node(lab: Lab) -> Iterator[Served]:
    with serving_instead(lab, uwsgi_argv) as proc:
        wait_for(lambda: len(group_pids(proc.pid)) == 3, what="the uWSGI master and its 2 workers")
        yield proc


def config_with(lab: Lab, tmp_path: Path, *, commands: str = "", api_port: int | None = None) -> Config:
    """The cluster's config, with extra ``[commands]`` lines or another API port for glance-1."""
    text = lab.config_path.read_text().replace("[commands]\n", f"[commands]\n{commands}\n", 1)
    if api_port is not None:
        n, _ = where(lab)
        text = text.replace(f'api_url = "http://{n.host}:{n.api_port}"', f'api_url = "http://{n.host}:{api_port}"')
    path = tmp_path / "recognition.toml"
    path.write_text(text)
    return load_config(path)


async def probe(config: Config, *, lb: bool = False, new_node: str | None = None) -> tuple[NodeFacts, Context]:
    """The real probe over the real sshd; with ``lb``, as plan and gates see it (with the LB's view)."""
    cluster = Cluster(config)
    ctx = Context(config, cluster, NullJournal(), RunState(new_node=new_node), lambda e: None)
    try:
        f = await (ctx.node_fact(NODE) if lb else cluster.probe_node(NODE))
    finally:
        await cluster.close()
    return f, ctx


# ---------------------------------------------------------------- the truth table


async def test_uwsgi_node_is_running_its_whole_tree_with_the_defaults(sim_lab, tmp_path):
    config = load_config(sim_lab.config_path)
    assert config.commands.process_patterns == []  # the defaults
    with uwsgi_node(sim_lab) as master:
        tree = {nodens.local_pid(pid) for pid in group_pids(master.pid)}  # as the node's ps shows them
        f, _ = await probe(config)
        n, _ = where(sim_lab)
    assert f.running is True, f.reason
    assert set(f.pids) == tree  # master + both workers
    assert f.code == CODE_INSTALLED and f.stale is False
    assert f"{n.host}:{n.api_port} is served by pid" in f.reason and "(uwsgi)" in f.reason


async def test_patterns_that_miss_a_served_port_read_unknown_naming_the_holder(sim_lab, tmp_path):
    config = config_with(sim_lab, tmp_path, commands='process_patterns = ["^no-such-program"]')
    with uwsgi_node(sim_lab) as master:
        f, _ = await probe(config)
        n, _ = where(sim_lab)
    assert f.running is None
    assert f.reason.startswith(f"{NODE}: nothing matches process_patterns, but {n.host}:{n.api_port} is served by pid {master.local} (uwsgi)"), f.reason
    assert "unknown" in f.service


async def test_a_renamed_server_holding_the_port_is_unknown_never_stopped(sim_lab, tmp_path):
    config = load_config(sim_lab.config_path)
    with serving_instead(sim_lab, renamed_argv) as proc:
        f, _ = await probe(config)
        n, _ = where(sim_lab)
    assert f.running is None, f.reason
    assert f"{n.host}:{n.api_port} is served by pid {proc.local} (python" in f.reason


async def test_health_that_answers_with_no_process_and_no_listener_read_is_unknown(sim_lab, tmp_path):
    # nothing recognised, the listener reading sees nothing (a template that prints nothing), yet the API answers
    config = config_with(sim_lab, tmp_path, commands='process_patterns = ["^no-such-program"]\nlisteners = "true"')
    with uwsgi_node(sim_lab):
        f, _ = await probe(config)
    assert f.running is None
    assert "nothing listens on" in f.reason and "/healthcheck answered 200" in f.reason, f.reason


async def test_a_failing_listener_read_is_unknown(sim_lab, tmp_path):
    config = config_with(sim_lab, tmp_path, commands='listeners = "echo no ss here >&2; exit 7"')
    f, _ = await probe(config)
    assert f.running is None and "listeners command failed (exit 7)" in f.reason


async def test_stopped_needs_no_process_no_listener_and_a_refused_health_url(sim_lab, tmp_path):
    config = load_config(sim_lab.config_path)
    n, node_dir = where(sim_lab)
    ctl = sim_lab.node(n)
    nodectl.stop(ctl)
    try:
        f, _ = await probe(config)
    finally:
        nodectl.start(ctl)
    assert f.running is False, f.reason
    assert f"nothing matches process_patterns, nothing listens on :{n.api_port}, GET http://{n.host}:{n.api_port}/healthcheck refuses connections" in f.reason
    g, _ = await probe(config)  # the simulated eventlet glance-api (a plain Python HTTP server) is recognised again
    assert g.running is True and g.code == CODE_INSTALLED and "match process_patterns" in g.reason


async def test_uwsgi_node_up_in_haproxy_with_requests_in_flight_never_reads_stopped(sim_lab, tmp_path):
    """The issue's failing example, and worse: every node reading says "stopped" (patterns that miss
    it, an api_url whose port nothing serves) while HAProxy routes requests to it."""
    layout = sim_lab.load_layout()
    n, _ = where(sim_lab)
    blind = config_with(sim_lab, tmp_path, commands='process_patterns = ["^no-such-program"]', api_port=procs.free_port(n.host))
    defaults = load_config(sim_lab.config_path)
    with uwsgi_node(sim_lab):
        async with httpx.AsyncClient(timeout=60) as client:
            cluster = Cluster(defaults)
            try:
                for _ in range(300):  # HAProxy's health checks see the uWSGI node UP (rise 2)
                    if (await cluster.probe_lb()).views[n.name].state == "UP":
                        break
                    await asyncio.sleep(0.1)
                slow = [asyncio.ensure_future(client.get(f"http://{layout.lb_host}:{layout.frontend_port}/slow?s=30")) for _ in range(6)]
                for _ in range(100):
                    view = (await cluster.probe_lb()).views[n.name]
                    if view.in_flight:
                        break
                    await asyncio.sleep(0.1)
                assert view.in_flight and view.state == "UP", view.status
            finally:
                await cluster.close()
            seen, _ = await probe(defaults, lb=True)
            alone, _ = await probe(blind)
            with_lb, ctx = await probe(blind, lb=True, new_node=NODE)
            ctx.cluster = Cluster(blind)
            try:
                gate = await G.NEW_NODE_STOPPED.evaluate(ctx)
            finally:
                await ctx.cluster.close()
            for request in slow:  # held long enough for every probe above; not waited for
                request.cancel()
            await asyncio.gather(*slow, return_exceptions=True)
    assert seen.running is True  # the defaults recognise uWSGI
    assert alone.running is False  # the node's own readings are all "nothing" ...
    assert with_lb.running is None  # ... but HAProxy shows it serving: unknown, never stopped
    assert "but the load balancer (glance-1) shows" in with_lb.reason and "session(s) on it" in with_lb.reason
    assert not gate.ok and "cannot tell whether Glance runs on glance-1" in gate.reason


async def test_a_lazy_worker_respawned_after_the_install_makes_the_node_stale(sim_lab, tmp_path):
    config = load_config(sim_lab.config_path)
    _, node_dir = where(sim_lab)
    with uwsgi_node(sim_lab) as master:
        time.sleep(1.5)
        reinstall(node_dir)  # the target is installed under the running uWSGI
        time.sleep(1.5)
        old, _ = await probe(config)
        workers = sorted(group_pids(master.pid) - {master.pid})
        os.kill(workers[0], signal.SIGKILL)  # uWSGI respawns it: a lazy app loads the code on disk now
        wait_for(lambda: len(group_pids(master.pid)) == 3 and workers[0] not in group_pids(master.pid), what="the respawned worker")
        mixed, _ = await probe(config)
    assert old.running is True and old.stale is True and old.code == CODE_OLD
    assert mixed.running is True and mixed.stale is True and mixed.code == CODE_MIXED
    assert "old and new code at once" in mixed.stale_text and "restart it" in mixed.stale_text
    assert not mixed.on(config.policy.target_release)


def test_check_passes_on_a_uwsgi_node_with_the_defaults(sim_lab, capsys):
    with uwsgi_node(sim_lab):
        code = main(["check", "-c", str(sim_lab.config_path), "--json"])
        report = json.loads(capsys.readouterr().out)
    assert code == 0, [g for g in report["gates"] if not g["ok"]]


def test_an_invalid_process_pattern_is_refused_at_load(sim_lab, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(sim_lab.config_path.read_text().replace("[commands]\n", '[commands]\nprocess_patterns = ["uwsgi (glance"]\n', 1))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "process_patterns" in err.value.message and "not a regular expression" in err.value.message
    assert main(["check", "-c", str(path)]) == 2
    out = capsys.readouterr()
    assert len(out.err.strip().splitlines()) == 1 and "Traceback" not in out.err
