"""The run's record, built from real runs on the simulated cluster (real MariaDB, HAProxy, sshd):
a finished run under load, an aborted run with a drain-timeout override, a run with a rollback;
then ``report``, ``runs`` and ``plan --format md`` as an operator runs them (subprocesses)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from glance_tui.cli import main
from glance_tui.config import load_config
from glance_tui.engine import Engine
from glance_tui.journal import read_records
from glance_tui.lab.lab import Lab
from glance_tui.operator import DrainDecision, FailureDecision, Unattended
from glance_tui.record.markdown import render_markdown
from glance_tui.record.model import read_run
from glance_tui.record.render import render

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[1]
OVERRIDE_REASON = "change window ends at 11:00; the client retries its upload"


def frontend(lab: Lab) -> str:
    layout = lab.load_layout()
    return f"http://{layout.lb_host}:{layout.frontend_port}"


class DrainUnderLoad(Unattended):
    """Before each drain is confirmed, holds slow requests through the load balancer until the node
    has some in flight: every drain then has something to wait for, whatever the machine's load."""

    seconds = 25  # longer than the gates the engine re-checks between the drain and the wait

    def __init__(self, new_node: str, url: str) -> None:
        super().__init__(new_node)
        self.url = url
        self.cluster = None  # the engine's (set by run_engine)
        self.requests: list[asyncio.Task] = []

    async def confirm(self, step, action, commands):
        if action.id == "drain":
            await self.load(action.node)
        return True

    async def load(self, node: str) -> None:
        self.client = getattr(self, "client", None) or httpx.AsyncClient(timeout=120)
        for _ in range(3):
            self.requests += [asyncio.create_task(self.client.get(f"{self.url}/slow", params={"s": self.seconds})) for _ in range(3)]
            for _ in range(100):
                stats = (await self.cluster.probe_lb()).servers.get(node)
                if stats is not None and stats.in_flight:
                    return
                await asyncio.sleep(0.05)
        raise AssertionError(f"no request reached {node}")

    async def finish(self) -> list[int]:
        """Every request's status (0 when it failed), once all have ended."""
        results = await asyncio.gather(*self.requests, return_exceptions=True)
        if getattr(self, "client", None):
            await self.client.aclose()
        return [0 if isinstance(r, BaseException) else r.status_code for r in results]


def variant(lab: Lab, tmp: Path, name: str, **replace: str) -> Path:
    text = lab.config_path.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("record-state")


@pytest.fixture(scope="module")
def env(state_home: Path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(state_home))
        yield {**os.environ}


@pytest.fixture(scope="module")
def finished_run(sim_lab: Lab, env) -> Path:
    """A whole run, every drain with requests in flight; nothing is cut."""
    sim_lab.reset()
    operator = DrainUnderLoad("glance-1", frontend(sim_lab))
    assert run_engine(sim_lab.config_path, operator) is True
    assert Engine.pending_journal(load_config(sim_lab.config_path)) is None  # finished
    return newest_journal(Path(env["XDG_STATE_HOME"]))


def newest_journal(state: Path) -> Path:
    return sorted((state / "glance-tui" / "runs").rglob("*.jsonl"), key=lambda p: p.name)[-1]


class OverrideThenDecline(DrainUnderLoad):
    """Stops anyway when the drain times out (typed reason), then declines the upgrade: the run aborts."""

    async def drain_timeout(self, node, in_flight, waited, work=()):
        return DrainDecision("stop", OVERRIDE_REASON)

    async def confirm(self, step, action, commands):
        return action.id != "upgrade" and await super().confirm(step, action, commands)


class RollBack(Unattended):
    async def action_failed(self, step, action, error, output, can_rollback):
        return FailureDecision("rollback" if can_rollback else "abort")


def run_engine(config_path: Path, operator: Unattended) -> bool:
    """One whole run with the engine and a scripted operator (as the TUI or ``run --yes`` would)."""

    async def go() -> bool:
        engine = Engine.open(load_config(config_path), resume=False)
        operator.cluster = engine.cluster
        try:
            ok = await engine.run(operator)
            if isinstance(operator, DrainUnderLoad):
                statuses = await operator.finish()
                assert statuses and set(statuses) == {200}, f"a request was cut: {statuses}"
            return ok
        finally:
            await engine.close()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def aborted_run(sim_lab: Lab, env, finished_run, tmp_path_factory) -> Path:
    sim_lab.reset()
    cfg = variant(sim_lab, tmp_path_factory.mktemp("aborted"), "short-drain", **{"drain_timeout = 120": "drain_timeout = 1"})
    assert run_engine(cfg, OverrideThenDecline("glance-1", frontend(sim_lab))) is False
    return newest_journal(Path(env["XDG_STATE_HOME"]))


@pytest.fixture(scope="module")
def rollback_run(sim_lab: Lab, env, aborted_run, tmp_path_factory) -> Path:
    sim_lab.reset()
    text = sim_lab.config_path.read_text()
    upgrade_line = next(line for line in text.splitlines() if line.startswith("upgrade = "))
    failing = upgrade_line[:-1] + ' && echo \\"E: post-install script failed\\" && exit 3"'
    cfg = variant(sim_lab, tmp_path_factory.mktemp("rollback"), "failing-upgrade", **{upgrade_line: failing})
    assert run_engine(cfg, RollBack("glance-2")) is False
    return newest_journal(Path(env["XDG_STATE_HOME"]))


# ---------------------------------------------------------------- content of the records


def test_finished_run_record(finished_run, sim_lab):
    rec = read_run(finished_run)
    assert rec.outcome == "finished" and rec.detail == "upgrade complete"
    assert rec.user and rec.host and rec.started and rec.ended and rec.ended > rec.started
    assert rec.config == str(sim_lab.config_path.resolve())
    assert rec.config_sha256 == hashlib.sha256(sim_lab.config_path.read_bytes()).hexdigest()
    order = [s.id for s in rec.steps]
    assert order[:7] == ["preflight", "backup", "new-node", "upgrade-new", "expand", "migrate", "start-new"], order
    assert order[-1] == "contract" and {"node:glance-2", "node:glance-3"} <= set(order)
    assert all(s.status == "done" for s in rec.steps)
    pre = rec.steps[0]
    assert pre.gates and all(g["ok"] for g in pre.gates) and any(g["gate"] == "ssh" for g in pre.gates)
    # exact commands, node, exit code and duration of each command the tool ran
    upgrade = next(a for s in rec.steps if s.id == "upgrade-new" for a in s.actions if a.id == "upgrade")
    assert upgrade.node == "glance-1" and upgrade.status == "done" and upgrade.duration is not None
    assert any("nodectl upgrade 2024.1" in c for c in upgrade.commands)
    assert upgrade.runs and upgrade.runs[0].exit == 0 and upgrade.runs[0].node == "glance-1" and upgrade.runs[0].duration is not None
    expand = next(a for s in rec.steps if s.id == "expand" for a in s.actions)
    assert expand.runs[0].exit == 0 and "manage db expand" in expand.runs[0].command
    # backup: path, size and sha256 as journaled, and true of the file
    backup = Path(rec.backup["path"])
    assert backup.stat().st_size == rec.backup["size"] > 0
    assert hashlib.sha256(backup.read_bytes()).hexdigest() == rec.backup["sha256"]
    # versions and revisions before and after
    assert {n.name: (n.before, n.after) for n in rec.nodes} == {f"glance-{i}": ("26.1.0", "28.2.0") for i in (1, 2, 3)}
    assert rec.db_before == ["2023_1_contract01"] and rec.db_after == ["2024_1_contract01"]
    # every node was out of rotation for a measured time, drained under load, and is back in
    for node in rec.nodes:
        assert len(node.out) == 1 and not node.still_out, node
        assert node.out_seconds(rec.ended) > 0 and node.drain_waits
        assert node.samples, f"no in-flight history for {node.name}"
    assert any(n for node in rec.nodes for _, n in node.samples if n), f"no drain saw a request in flight: {[(n.name, n.samples) for n in rec.nodes]}"
    assert [d.what for d in rec.decisions] == ["new-node"] and rec.decisions[0].choice == "glance-1"
    md = render_markdown(rec)
    assert "FINISHED: upgrade complete" in md and rec.backup["sha256"] in md and "2024_1_contract01" in md
    assert "| glance-2 | 26.1.0 | 28.2.0 |" in md and any(ch in md for ch in "▂▃▄▅▆▇█")


def test_aborted_run_with_a_drain_timeout_override(aborted_run):
    rec = read_run(aborted_run)
    assert rec.outcome == "aborted", (rec.outcome, rec.detail)
    assert "step 3" in rec.detail
    override = next(d for d in rec.decisions if d.what == "drain-timeout")
    assert override.choice == "stop" and override.reason == OVERRIDE_REASON and override.node == "glance-1"
    assert "in flight" in override.detail
    declined = next(d for d in rec.decisions if d.what == "confirm")
    assert declined.choice == "declined" and declined.step == "upgrade-new"
    glance1 = next(n for n in rec.nodes if n.name == "glance-1")
    assert glance1.still_out and glance1.out_seconds(rec.ended) > 0  # left drained and stopped, and said so
    assert glance1.before == glance1.after == "26.1.0"
    assert rec.db_before == rec.db_after == ["2023_1_contract01"]
    md = render_markdown(rec)
    assert OVERRIDE_REASON in md and "STILL OUT of rotation" in md and "ABORTED" in md


def test_rollback_run_record(rollback_run):
    rec = read_run(rollback_run)
    assert rec.outcome == "failed"
    upgrade = next(a for s in rec.steps if s.id == "upgrade-new" for a in s.actions if a.id == "upgrade")
    assert upgrade.status == "failed" and upgrade.runs[0].exit == 3
    assert any("post-install script failed" in line for line in upgrade.runs[0].tail)
    choices = [(d.what, d.choice) for d in rec.decisions]
    assert ("failure", "rollback") in choices and ("rollback", "started") in choices and ("rollback", "succeeded") in choices
    glance2 = next(n for n in rec.nodes if n.name == "glance-2")
    assert glance2.rolled_back and glance2.after == "26.1.0" and not glance2.still_out
    assert glance2.out_seconds(rec.ended) > 0
    md = render_markdown(rec)
    assert "(rolled back)" in md and "exit 3" in md


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def test_html_is_one_printable_file_with_the_chart(finished_run):
    html = render(read_run(finished_run), "html")
    parser = _Collect()
    parser.feed(html)
    parser.close()
    assert parser.tags.count("svg") == 3 and "polyline" in parser.tags  # one in-flight chart per node
    assert not parser.refs and "<script" not in html  # self-contained
    assert "@media print" in html and "<style>" in html
    data = json.loads(render(read_run(finished_run), "json"))
    assert data["outcome"] == "finished" and data["backup"]["sha256"] and all(n["out_of_rotation_seconds"] > 0 for n in data["nodes"])


# ---------------------------------------------------------------- the commands, as an operator runs them


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "glance_tui", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_report_and_runs_commands(finished_run, aborted_run, rollback_run, env, tmp_path):
    runs = cli("runs", "--json", env=env)
    assert runs.returncode == 0, runs.stderr
    listed = json.loads(runs.stdout)["runs"]
    assert [r["outcome"] for r in listed[:3]] == ["failed", "aborted", "finished"]
    assert all(r["target_release"] == "2024.1" and r["config"] for r in listed)
    text = cli("runs", env=env)
    assert text.returncode == 0 and finished_run.stem in text.stdout and "OUTCOME" in text.stdout

    latest = cli("report", "--latest", env=env)
    assert latest.returncode == 0 and rollback_run.stem in latest.stdout and "rolled back" in latest.stdout
    by_id = cli("report", finished_run.stem, "--format", "html", "-o", str(tmp_path / "r.html"), env=env)
    assert by_id.returncode == 0 and (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    # a copied journal, read where no state directory and no secret exist
    copy = tmp_path / "copied.jsonl"
    copy.write_bytes(aborted_run.read_bytes())
    bare = {k: v for k, v in env.items() if k != "XDG_STATE_HOME"} | {"HOME": str(tmp_path)}
    copied = cli("report", str(copy), "--format", "json", env=bare)
    assert copied.returncode == 0 and json.loads(copied.stdout)["outcome"] == "aborted"

    for args in (["report", "no-such-run"], ["report", str(tmp_path / "missing.jsonl")], ["report", "x", "--latest"], ["report", "--format", "pdf"]):
        bad = cli(*args, env=env)
        assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr, (args, bad.stderr)


def test_plan_md_without_the_password_or_the_cluster(sim_lab, env, tmp_path):
    cfg = variant(sim_lab, tmp_path, "no-secret", **{f'password_file = "{sim_lab.password_file}"': 'password_env = "GLANCE_TUI_TEST_UNSET_PASSWORD"'})
    bare = {k: v for k, v in env.items() if k != "GLANCE_TUI_TEST_UNSET_PASSWORD"}
    assert cli("check", "-c", str(cfg), env=bare).returncode == 2  # the password is needed to touch the cluster
    plan = cli("plan", "-c", str(cfg), "--new-node", "glance-2", "--format", "md", env=bare)
    assert plan.returncode == 0, plan.stderr
    md = plan.stdout
    assert md.startswith("# Change request: rolling upgrade of Glance to 2024.1")
    assert hashlib.sha256(cfg.read_bytes()).hexdigest() in md and "| **NEW NODE** | glance-2 |" in md
    for heading in ("## Nodes", "## Database", "## Backup", "## Operator decisions", "## Steps"):
        assert heading in md
    assert md.index("### 4 Expand") < md.index("### 5 Migrate") < md.index("### 8 Contract") and "### 7.1 Upgrade glance-1" in md
    assert "nodectl upgrade 2024.1" in md and "[type 'contract' to confirm]" in md
    html = cli("plan", "-c", str(cfg), "--format", "html", "-o", str(tmp_path / "plan.html"), env=bare)
    assert html.returncode == 0 and "written:" in html.stdout
    bad = cli("plan", "-c", str(cfg), "--new-node", "nope", "--format", "md", env=bare)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_a_crashed_run_with_unknown_readings(tmp_path):
    """Beside the real runs: a journal torn mid-write during a drain whose reading went unknown."""
    from glance_tui.journal import Journal
    from glance_tui.record.charts import sparkline

    journal = Journal.create(tmp_path, config_path=None, target_release="2024.1")
    journal.write("step.start", step="new-node", title="Drain and stop the NEW NODE (glance-1)")
    journal.write("lb", node="glance-1", action="drain")
    journal.write("action.start", step="new-node", action="wait-drained", node="glance-1", commands=["[lb] poll"])
    for t, n in ((0.0, 3), (1.0, None), (2.0, 1)):
        journal.write("drain.sample", node="glance-1", in_flight=n, t=t)
    with open(journal.path, "a") as fh:
        fh.write('{"ts": 1, "event": "action.e')  # the process died mid-write
    rec = read_run(journal.path)
    assert rec.outcome == "interrupted" and "no end was recorded" in rec.detail
    node = rec.nodes[0]
    assert node.still_out and node.samples == [[0.0, 3], [1.0, None], [2.0, 1]]
    assert sparkline(node.samples) == "█?▃"  # unknown is shown as unknown, never as 0
    assert rec.steps[0].actions[0].status == "interrupted"
    html = render(rec, "html")
    assert 'class="unknown"' in html and "STILL OUT" in render(rec, "md")
