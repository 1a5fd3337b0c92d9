"""Hazards of a real run, injected against real MariaDB, HAProxy and sshd (simulated Glance):
``kill -9`` of the tool at every action boundary and in the middle of a long command, sshd killed
mid-command, the stats endpoint unreachable while draining, MariaDB down at expand, and a node
that cannot start. Each time the tool either handles it or halts with the node out of rotation
and says what to do next; a resume then completes without repeating anything that took effect.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from glance_tui.adapters.ssh import tag_pattern
from glance_tui.cli import main
from glance_tui.config import load_config
from glance_tui.engine import Engine
from glance_tui.events import ActionFinished, DrainProgress, Event
from glance_tui.journal import Journal, binlog_trust_to_restore, carry_over, read_records, unfinished_commands
from glance_tui.lab import nodens
from glance_tui.lab.lab import Lab
from glance_tui.lab.procs import processes, read_pid
from glance_tui.operator import Unattended
from glance_tui.probes import Cluster

ROOT = Path(__file__).resolve().parents[1]
CHANGING = {"backup", "drain", "stop", "upgrade", "start", "ready", "expand", "migrate", "contract", "restore-binlog"}


# ---------------------------------------------------------------- journal bookkeeping (no services)


def test_unfinished_commands_are_the_starts_without_an_end(tmp_path):
    j = Journal.create(tmp_path, config_path=None, target_release="2024.1")
    for tag in ("glance-tui-a", "glance-tui-b", "glance-tui-c", "glance-tui-d"):
        j.write("command.start", node="n1", tag=tag, command=f"cmd {tag}")
    j.write("command.end", node="n1", tag="glance-tui-a", exit=0)
    j.write("command.end", node="n1", tag="glance-tui-b", lost=True, error="SSH connection lost")  # may still run
    j.write("command.settled", node="n1", tag="glance-tui-c", waited=0)
    assert [r["tag"] for r in unfinished_commands(j.records())] == ["glance-tui-b", "glance-tui-d"]


def test_binlog_restore_due_survives_a_crash_before_the_state_was_saved(tmp_path):
    j = Journal.create(tmp_path, config_path=None, target_release="2024.1")
    assert binlog_trust_to_restore(j.records()) is None
    j.write("db.variable", name="log_bin_trust_function_creators", old=False, new=True)  # then kill -9
    assert binlog_trust_to_restore(j.records()) is False
    j.write("state", new_node="n1", log_bin_trust_old=False)
    j.write("db.variable", name="log_bin_trust_function_creators", old=True, new=False, why="restored")
    assert binlog_trust_to_restore(j.records()) is None


def test_a_new_run_carries_over_unfinished_commands_and_the_binlog_restore(tmp_path):
    old = Journal.create(tmp_path, config_path=None, target_release="2024.1")
    old.write("state", log_bin_trust_old=False)
    old.write("command.start", node="n1", tag="glance-tui-x", command="glance-manage db expand")
    old.write("command.start", node="n2", tag="glance-tui-y", command="stop")
    old.write("command.end", node="n2", tag="glance-tui-y", exit=0)
    time.sleep(1.1)  # run ids are per second
    new = Journal.create(tmp_path, config_path=None, target_release="2024.1")
    assert carry_over(old, new) is False
    carried = unfinished_commands(new.records())
    assert [(r["tag"], r["node"], r["carried_from"]) for r in carried] == [("glance-tui-x", "n1", old.run_id)]
    newer = Journal.create(tmp_path / "again", config_path=None, target_release="2024.1")
    assert carry_over(new, newer) is False  # carried again, still naming the run that sent it
    assert unfinished_commands(newer.records())[0]["carried_from"] == old.run_id


# ---------------------------------------------------------------- helpers for the cluster tests


def config_with(lab: Lab, tmp_path: Path, name: str, **commands: str) -> Path:
    """A copy of the lab's config with some ``[commands]`` templates replaced (its own journal)."""
    text = lab.config_path.read_text()
    for key, template in commands.items():
        assert not re.search(rf"^{key} = ", text, flags=re.M), key  # the lab's config keeps the defaults
        text = text.replace("[commands]\n", f"[commands]\n{key} = {json.dumps(template)}\n", 1)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def lab_command(lab: Lab, key: str) -> str:
    """The template the lab's config uses for ``key`` (the packaged-node default)."""
    return getattr(load_config(lab.config_path).commands, key)


def held_until(release: Path, word: str, template: str) -> str:
    """``template``, but when its arguments contain ``word`` it first waits until ``release`` exists (a long command)."""
    wait = f"while [ ! -e {release} ] && [ -d {release.parent} ]; do sleep 0.2; done"  # never outlives the test dir
    return f"sh -c 'case \" $* \" in *\" {word} \"*) {wait};; esac; exec \"$@\"' held-{word} {template}"


@pytest.fixture
def release(tmp_path: Path) -> Iterator[Path]:
    """The file a held command waits for (see :func:`held_until`); created at teardown in any case."""
    path = tmp_path / "release"
    yield path
    path.touch()


def events(state: Path) -> list[dict]:
    return [r for p in sorted((state / "glance-tui" / "runs").rglob("*.jsonl")) for r in read_records(p)]


def start_tool(config: Path, state: Path) -> subprocess.Popen:
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    return subprocess.Popen([sys.executable, "-m", "glance_tui", "run", "--yes", "--quiet", "-c", str(config)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_changed(lab: Lab, tmp_path: Path, key: str, change: Callable[[str], str]) -> tuple[Path, Path, subprocess.Popen]:
    """Reset the lab and start ``run --yes`` on a config whose ``key`` template is ``change``d."""
    lab.reset()
    state = tmp_path / "state"
    config = config_with(lab, tmp_path, f"changed-{key}", **{key: change(lab_command(lab, key))})
    return config, state, start_tool(config, state)


def kill_when(proc: subprocess.Popen, state: Path, hit: Callable[[list[dict]], bool], timeout: float = 400) -> bool:
    """``kill -9`` the tool as soon as the journal satisfies ``hit``; False if the run ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if hit(events(state)):
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return True
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        pytest.fail("the run neither reached the kill point nor ended in time")
    return False


def legs(records: list[dict]) -> list[list[dict]]:
    """The journal split at each start of a process (run.start / run.resume)."""
    out: list[list[dict]] = []
    for r in records:
        if r["event"] in ("run.start", "run.resume") or not out:
            out.append([])
        out[-1].append(r)
    return out


def assert_never_twice(records: list[dict]) -> None:
    """A remote command is sent again only after the earlier one was seen ended or settled (gone)."""
    closed: set[str] = set()
    sent: dict[tuple[str, str], list[str]] = {}
    for r in records:
        tag = r.get("tag")
        if r["event"] == "command.start" and not r.get("carried_from"):
            for earlier in sent.get((r["node"], r["command"]), []):
                assert earlier in closed, f"{r['command']} on {r['node']} sent again while {earlier} may still run"
            sent.setdefault((r["node"], r["command"]), []).append(tag)
        elif r["event"] == "command.settled" or (r["event"] == "command.end" and not r.get("lost")):
            closed.add(tag)


def assert_safe(records: list[dict]) -> None:
    """No changing action that completed is started again; no stop without the node out of rotation
    first; contract after every node's upgrade; no DDL command sent twice."""
    done: set[tuple[str, str]] = set()
    for leg in legs(records):
        out_of_rotation: set[str] = set()
        for r in leg:
            key = (r.get("step"), r.get("action"))
            if r["event"] == "action.start" and r["action"] in CHANGING:
                assert key not in done, f"{key} had taken effect yet was started again: {[x for x in leg if x.get('step') == key[0]]}"
            if r["event"] == "action.end" and r.get("ok"):
                done.add(key)
            if r.get("action") == "drain" and (r["event"] == "action.skip" or (r["event"] == "action.end" and r.get("ok"))):
                out_of_rotation.add(r["step"])
            if r["event"] == "action.start" and r["action"] == "stop":
                assert r["step"] in out_of_rotation, f"stop in {r['step']} without its drain (or a drain skip) in this process"
    starts = [r for r in records if r["event"] == "action.start"]
    first_contract = next((i for i, r in enumerate(starts) if r["action"] == "contract"), len(starts))
    assert not [r for r in starts[first_contract:] if r["action"] in ("drain", "stop", "upgrade", "start")], "a node changed after contract began"
    for ddl in ("db expand", "db migrate", "db contract"):
        assert sum(1 for r in records if r["event"] == "command.start" and r["command"].endswith(ddl) and not r.get("carried_from")) <= 2
    assert_never_twice(records)


def assert_upgraded(lab: Lab, capsys) -> None:
    assert main(["status", "-c", str(lab.config_path), "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert {n["version"] for n in snap["nodes"]} == {"28.2.0"} and all(n["running"] for n in snap["nodes"])
    assert {s["state"] for s in snap["load_balancer"]["servers"].values()} == {"UP"}
    assert snap["database"]["heads"] == ["2024_1_contract01"]


# ---------------------------------------------------------------- kill -9 at every action boundary


@pytest.mark.services
@pytest.mark.parametrize("boundary", ["action.start", "action.end"])
def test_kill_at_every_action_boundary_then_resume(sim_lab, sim_config, tmp_path, capsys, boundary):
    """One chain through a whole run: the tool is killed right after each new ``boundary`` record
    (a new step/action each time), restarted with ``run --yes``, and killed again at the next one.
    A chain, not one fresh run per boundary: ~25 kills per case cost one run plus ~25 restarts
    (about 40 s per case on a quiet 2-core machine, 2026-11-25; one fresh run per boundary would be ~50 runs)."""
    sim_lab.reset()
    state = tmp_path / "state"
    killed: list[tuple[str, str]] = []
    late = 0

    def next_boundary(records: list[dict]) -> bool:
        return any(r["event"] == boundary and (r["step"], r["action"]) not in killed for r in records)

    for _ in range(60):
        proc = start_tool(sim_lab.config_path, state)
        if not kill_when(proc, state, next_boundary):
            out = proc.stdout.read()
            assert proc.returncode == 0, out[-3000:]
            break
        seen = events(state)
        killed.append(next((r["step"], r["action"]) for r in seen if r["event"] == boundary and (r["step"], r["action"]) not in killed))
        if seen[-1]["event"] == "run.end":
            late += 1  # SIGKILL landed after the run had ended: nothing to resume
    else:
        pytest.fail("the run did not finish")
    records = events(state)
    assert len(killed) >= 20, killed  # every action of the 3-node run that ran at all
    assert ("expand", "expand") in killed and ("contract", "contract") in killed
    assert late <= 1  # only the last boundary can race the run's end
    assert sum(1 for r in records if r["event"] == "run.resume") >= len(killed) - late
    assert_safe(records)
    assert records[-1]["event"] == "run.end" and records[-1]["ok"] is True
    assert_upgraded(sim_lab, capsys)


# ---------------------------------------------------------------- a long command outlives the tool


@pytest.mark.services
def test_expand_still_running_after_kill_is_waited_for_never_sent_twice(sim_lab, sim_config, tmp_path, capsys, release):
    config, state, proc = start_changed(sim_lab, tmp_path, "glance_manage", lambda manage: held_until(release, "expand", manage))

    def expand_tag(records: list[dict]) -> str | None:
        return next((r["tag"] for r in records if r["event"] == "command.start" and r["command"].endswith("db expand")), None)

    assert kill_when(proc, state, lambda records: running_tagged(expand_tag(records)))
    tag = expand_tag(events(state))
    assert running_tagged(tag)  # it outlived the tool
    resume = start_tool(config, state)
    try:
        deadline = time.monotonic() + 400
        while not any(r["event"] == "command.wait" for r in events(state)) and time.monotonic() < deadline and resume.poll() is None:
            time.sleep(0.1)
        time.sleep(1)
        assert resume.poll() is None and running_tagged(tag), "the resumed run did not wait for the running expand"
        release.touch()
        out, _ = resume.communicate(timeout=1800)  # the rest of a whole run; slow on a loaded 2-core machine
    finally:
        release.touch()
        if resume.poll() is None:
            resume.kill()
    assert resume.returncode == 0, out[-3000:]
    assert "still running on glance-1" in out and "it will not be started again" in out
    records = events(state)
    assert [r["tag"] for r in records if r["event"] == "command.wait"] == [tag]
    assert sum(1 for r in records if r["event"] == "command.start" and r["command"].endswith("db expand")) == 1
    assert ("expand", "expand") in [(r["step"], r["action"]) for r in legs(records)[-1] if r["event"] == "action.skip"]
    assert_safe(records)
    assert_upgraded(sim_lab, capsys)


# ---------------------------------------------------------------- sshd killed mid-command


@pytest.mark.services
def test_sshd_killed_mid_command_halts_out_of_rotation_and_resume_completes(sim_lab, sim_config, tmp_path, capsys):
    config, state, proc = start_changed(sim_lab, tmp_path, "stop", lambda stop: f"sleep 4 && {stop}")
    node2 = sim_lab.load_layout().nodes[1]
    try:
        def stop_on_glance2(records: list[dict]) -> str | None:
            return next((r["tag"] for r in records if r["event"] == "command.start" and r["node"] == "glance-2" and "stop" in r["command"]), None)

        deadline = time.monotonic() + 400
        while not (tag := stop_on_glance2(events(state))) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        while tag and not running_tagged(tag) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)  # its `sleep 4` runs on the node: the session is open (was: a fixed 0.5 s, assumed)
        kill_sshd_sessions(sim_lab.sshd(node2).pidfile)  # the connection dies; the command it started does not
        sim_lab.sshd(node2).stop()
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out[-3000:]
    assert re.search(r"FAILED stop: .*SSH .*(lost|closed).* — fix: .*verify what the command did", out), out[-3000:]
    assert "STOPPED: stopped at step 7.1" in out
    records = events(state)
    lost = [r for r in records if r["event"] == "command.end" and r.get("lost")]
    assert lost and lost[0]["node"] == "glance-2"
    cluster_view = asyncio.run(_lb_states(sim_config))
    assert cluster_view["glance-2"] != "UP"  # halted with the node out of rotation
    sim_lab.sshd(node2).start()
    assert main(["run", "--yes", "--quiet", "-c", str(config)]) == 0, capsys.readouterr().out[-3000:]
    capsys.readouterr()
    records = events(state)
    assert any(r["event"] == "command.settled" and r["tag"] == lost[0]["tag"] for r in records)
    assert_safe(records)
    assert_upgraded(sim_lab, capsys)


def running_tagged(tag: str | None) -> bool:
    """Does a command carrying ``tag`` run (on any lab node: their processes are this host's)?"""
    return bool(tag) and subprocess.run(["pgrep", "-f", tag_pattern(tag)], capture_output=True).returncode == 0


def kill_sshd_sessions(pidfile: Path) -> None:
    """SIGKILL every sshd process under the listener (its sessions), sparing the commands they run."""
    def sshd_children(pid: int) -> list[int]:
        found = []
        for child in processes(parent=pid):
            try:
                if Path(f"/proc/{child}/comm").read_text().strip() == "sshd":
                    found += [child, *sshd_children(child)]
            except OSError:
                continue
        return found

    listener = read_pid(pidfile)
    assert listener is not None, f"no sshd pid in {pidfile}"
    for pid in reversed(sshd_children(listener)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def _lb_states(config) -> dict[str, str]:
    cluster = Cluster(config)
    try:
        return {name: s.state for name, s in (await cluster.probe_lb()).servers.items()}
    finally:
        await cluster.close()


# ---------------------------------------------------------------- in-process hazards


class CuttableProxy:
    """A TCP forwarder in front of the HAProxy stats page that the test can cut and restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()
        self._server = None


async def _run_steps(engine: Engine, operator: Unattended, *step_ids: str) -> None:
    for step_id in step_ids:
        assert await engine.run_step(engine.plan.step(step_id), operator) == "done", step_id


@pytest.mark.services
async def test_stats_unreachable_while_draining_never_stops_the_node(sim_lab, sim_config, tmp_path):
    """Unknown in-flight is never 0: the node is not stopped while the stats page cannot be read,
    and no in-flight request is cut once it can be read again."""
    sim_lab.reset()
    layout = sim_lab.load_layout()
    stats = re.search(r'^stats_url = "http://([^:]+):(\d+)(/[^"]*)"$', sim_lab.config_path.read_text(), flags=re.M)
    proxy = CuttableProxy(stats.group(1), int(stats.group(2)))
    await proxy.start()
    path = tmp_path / "via-proxy.toml"
    path.write_text(sim_lab.config_path.read_text().replace(stats.group(0), f'stats_url = "http://127.0.0.1:{proxy.port}{stats.group(3)}"'))
    config = load_config(path)
    seen: list[Event] = []
    engine = Engine.open(config, resume=False)
    engine.subscribe(seen.append)
    operator = Unattended("glance-1")
    url = f"http://{layout.lb_host}:{layout.frontend_port}"
    try:
        await _run_steps(engine, operator, "preflight", "backup")
        async with httpx.AsyncClient(timeout=60) as client:
            slow = [asyncio.create_task(client.get(f"{url}/slow", params={"s": 12})) for _ in range(3)]
            try:
                await _drain_with_stats_cut(engine, operator, proxy, seen)
            finally:
                responses = await asyncio.gather(*slow, return_exceptions=True)
        assert [getattr(r, "status_code", r) for r in responses] == [200, 200, 200]  # no request cut by the stop
        assert (await engine.cluster.probe_node("glance-1")).running is False
    finally:
        await engine.close()
        if proxy.serving:
            await proxy.cut()


async def _drain_with_stats_cut(engine: Engine, operator: Unattended, proxy: CuttableProxy, seen: list[Event]) -> None:
    """Step 2 on glance-1 while it serves slow requests; the stats page is cut during the wait."""
    for _ in range(200):
        if (await engine.cluster.probe_lb()).servers["glance-1"].in_flight:
            break
        await asyncio.sleep(0.05)
    step = asyncio.create_task(engine.run_step(engine.plan.step("new-node"), operator))
    for _ in range(400):
        if any(isinstance(e, DrainProgress) and (e.in_flight or 0) >= 1 for e in seen):
            break
        await asyncio.sleep(0.05)
    assert any(isinstance(e, DrainProgress) and (e.in_flight or 0) >= 1 for e in seen), "never saw the drain wait"
    await proxy.cut()
    await asyncio.sleep(4)
    assert (await engine.cluster.probe_node("glance-1")).running is True  # not stopped while in-flight is unknown
    assert not any(r["event"] == "action.start" and r.get("action") == "stop" for r in read_records(engine.journal.path))
    if step.done():  # halted (the stats page is unknown) instead of waiting: it must not claim success
        assert step.result() in ("failed", "blocked", "aborted")
    await proxy.start()  # the stats page answers again
    outcome = await asyncio.wait_for(step, 120)
    if outcome != "done":
        outcome = await engine.run_step(engine.plan.step("new-node"), operator)
    assert outcome == "done"


@pytest.mark.services
async def test_mariadb_down_at_expand_fails_cleanly_and_resume_completes(sim_lab, sim_config, tmp_path, capsys, release):
    sim_lab.reset()
    layout = sim_lab.load_layout()
    db = sim_lab.mariadb(layout)
    manage = lab_command(sim_lab, "glance_manage")
    path = config_with(sim_lab, tmp_path, "held-expand", glance_manage=held_until(release, "expand", manage))
    config = load_config(path)
    engine = Engine.open(config, resume=False)
    seen: list[Event] = []
    engine.subscribe(seen.append)
    operator = Unattended("glance-1")
    try:
        await _run_steps(engine, operator, "preflight", "backup", "new-node", "upgrade-new")
        before = await engine.cluster.probe_nodes()

        async def stop_db_when_expand_is_sent() -> None:
            while not any(r["event"] == "command.start" and r["command"].endswith("db expand") for r in read_records(engine.journal.path)):
                await asyncio.sleep(0.05)
            await asyncio.to_thread(db.stop)
            release.touch()  # now the held expand goes on, and finds no database

        stopper = asyncio.create_task(stop_db_when_expand_is_sent())
        outcome = await engine.run_step(engine.plan.step("expand"), operator)
        await stopper
        assert outcome == "failed"
        failure = [e for e in seen if isinstance(e, ActionFinished) and not e.ok]
        assert failure and "db expand failed" in failure[-1].detail and "fix:" in failure[-1].detail
        after = await engine.cluster.probe_nodes()
        assert {n: (f.release, f.running) for n, f in after.items()} == {n: (f.release, f.running) for n, f in before.items()}
        states = await _lb_states(config)
        assert states["glance-2"] == states["glance-3"] == "UP" and states["glance-1"] != "UP"
    finally:
        await engine.close()
        await asyncio.to_thread(db.start)
    cluster = Cluster(config)
    try:
        assert await cluster.db.alembic_heads() == ["2023_1_contract01"]  # nothing changed in the schema
    finally:
        await cluster.close()
    assert await asyncio.to_thread(main, ["run", "--yes", "--quiet", "-c", str(path)]) == 0, capsys.readouterr().out[-3000:]
    capsys.readouterr()
    assert_safe([r for p in sorted(engine.journal.path.parent.glob("*.jsonl")) for r in read_records(p)])
    await asyncio.to_thread(assert_upgraded, sim_lab, capsys)


@pytest.mark.services
async def test_a_node_that_cannot_start_stays_out_of_rotation_with_the_next_action(sim_lab, sim_config, tmp_path):
    sim_lab.reset()
    layout = sim_lab.load_layout()
    new = layout.nodes[0]
    engine = Engine.open(sim_config, resume=False)
    seen: list[Event] = []
    engine.subscribe(seen.append)
    operator = Unattended("glance-1")
    squatter: subprocess.Popen | None = None
    try:
        await _run_steps(engine, operator, "preflight", "backup", "new-node", "upgrade-new", "expand", "migrate")
        # another process on the node holds the NEW NODE's port
        squatter = subprocess.Popen([*nodens.enter(sim_lab.node_dir(new.name)), sys.executable, "-c", SQUATTER, new.host, str(new.api_port)],
                                    stdout=subprocess.PIPE, text=True)
        assert squatter.stdout.readline().strip() == "listening"
        squatter_pid = nodens.local_pid(processes(parent=squatter.pid)[0])  # as the node's ps and ss show it
        assert await engine.run_step(engine.plan.step("start-new"), operator) == "failed"
        failure = [e for e in seen if isinstance(e, ActionFinished) and not e.ok][-1]
        # whatever holds the node's API port is read before the start: the node is unknown, never "stopped"
        assert failure.action_id == "start" and "cannot tell whether Glance runs on glance-1" in failure.detail
        assert f"{new.host}:{new.api_port} is served by pid {squatter_pid}" in failure.detail
        assert "fix: check SSH to the node, and what serves it" in failure.detail  # the next action is stated
        states = await _lb_states(sim_config)
        assert states["glance-1"] != "UP" and states["glance-2"] == states["glance-3"] == "UP"
        assert (await engine.cluster.probe_node("glance-1")).running is None
        stop_squatter(squatter)
        assert await engine.run_step(engine.plan.step("start-new"), operator) == "done"
        assert (await _lb_states(sim_config))["glance-1"] == "UP"
    finally:
        stop_squatter(squatter)
        await engine.close()


SQUATTER = """import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen()
print("listening", flush=True); time.sleep(600)
"""


def stop_squatter(proc: subprocess.Popen | None) -> None:
    """Kill the squatter (nsenter's child, in the node) and nsenter."""
    if proc is None or proc.poll() is not None:
        return
    for child in processes(parent=proc.pid):
        os.kill(child, signal.SIGKILL)
    proc.wait(timeout=10)
