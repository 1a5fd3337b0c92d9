"""The drain waits for the work HAProxy cannot see: Glance's image imports (read from Glance's own
tables in the lab's real MariaDB) and client connections made straight to a node's API port
(read on the node over real SSH), and the stop re-checks both right before it runs."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid

import pytest

from glance_tui.engine import Engine
from glance_tui.events import DrainProgress
from glance_tui.journal import read_records
from glance_tui.journal_read import shape_problem
from glance_tui.lab.lab import DB_SCHEMA, Lab
from glance_tui.lab.mariadb import sql_string
from glance_tui.operator import DrainDecision, Unattended

pytestmark = pytest.mark.services


def sql(lab: Lab, statement: str) -> str:
    return lab.mariadb(lab.load_layout()).execute(f"USE `{DB_SCHEMA}`;\n{statement}")


def start_import(lab: Lab, method: str = "web-download", message: str = "Copied 3 MiB", idle: int = 0) -> str:
    """What Glance writes when an import begins: the image importing, its task processing
    (last updated ``idle`` seconds ago)."""
    image_id, task_id = str(uuid.uuid4()), str(uuid.uuid4())
    body = json.dumps({"image_id": image_id, "import_req": {"method": {"name": method}}, "backend": ["fs"]})
    sql(lab, f"INSERT INTO images (id, name, status, created_at, deleted) VALUES ({sql_string(image_id)}, 'big', 'importing', UTC_TIMESTAMP(), 0);\n"
             f"INSERT INTO tasks (id, type, status, owner, created_at, updated_at, deleted, image_id) VALUES ({sql_string(task_id)}, "
             f"'api_image_import', 'processing', 'p', UTC_TIMESTAMP() - INTERVAL {idle} SECOND, UTC_TIMESTAMP() - INTERVAL {idle} SECOND, 0, {sql_string(image_id)});\n"
             f"INSERT INTO task_info (task_id, input, message) VALUES ({sql_string(task_id)}, {sql_string(body)}, {sql_string(message)});")
    return image_id


def finish_imports(lab: Lab) -> None:
    sql(lab, "UPDATE tasks SET status = 'success'; UPDATE images SET status = 'active' WHERE status = 'importing';")


def clear(lab: Lab) -> None:
    sql(lab, "DELETE FROM task_info; DELETE FROM tasks; DELETE FROM image_properties; DELETE FROM images;")


async def first_steps(engine: Engine, operator) -> None:
    for step in ("preflight", "backup"):
        assert await engine.run_step(engine.plan.step(step), operator) == "done"


# How long a test holds the drain with its work: the ledger credits the time between its readings
# (every lb_poll_interval plus the reading itself: 2 s or more on a loaded machine), so the 1.5 s the
# tests expect to see credited needs a hold well past it (2 s left as little as one reading's worth).
HOLD = 4.0


async def held_drain(engine: Engine, operator, seen: list[DrainProgress]) -> tuple[asyncio.Task, DrainProgress]:
    """Start the NEW NODE's drain; once it reads work, wait past the quiet period (the LB reads 0
    all along): it must still be waiting. Returns the running step and the last reading."""
    await first_steps(engine, operator)
    run = asyncio.create_task(engine.run_step(engine.plan.step("new-node"), operator))
    for _ in range(1200):  # up to 60 s: the step's gates come first, slow on a loaded machine
        if any(p.work and p.in_flight is not None for p in seen) or run.done():
            break
        await asyncio.sleep(0.05)
    assert any(p.work and p.in_flight is not None for p in seen), "the drain never read the node's work"
    await asyncio.sleep(HOLD)
    assert not run.done(), "the node was stopped with work running on it"
    return run, [p for p in seen if p.work and p.in_flight is not None][-1]


def journal(engine: Engine) -> list[dict]:
    return list(read_records(engine.journal.path))


async def test_a_running_import_holds_the_drain_and_is_shown(sim_lab, sim_config):
    sim_lab.reset()
    clear(sim_lab)
    image_id = start_import(sim_lab)
    seen: list[DrainProgress] = []
    engine = Engine.open(sim_config, resume=False)
    engine.subscribe(lambda e: seen.append(e) if isinstance(e, DrainProgress) else None)
    operator = Unattended("glance-1")
    try:
        run, shown = await held_drain(engine, operator, seen)
        assert shown.in_flight == 1 and "imports 1" in shown.parts and "LB 0" in shown.parts
        assert any(image_id in line and "web-download" in line and "3.0 MiB" in line for line in shown.work), shown.work
        finish_imports(sim_lab)
        assert await asyncio.wait_for(run, 60) == "done"
    finally:
        await engine.close()
        clear(sim_lab)
    records = journal(engine)
    work = [r for r in records if r["event"] == "drain.work"]
    assert work and work[-1]["node"] == "glance-1" and work[-1]["held_by"]["imports"] >= 1.5
    assert [i["image"] for i in work[-1]["imports"]] == [image_id]
    assert all(not shape_problem(r) for r in records)
    from glance_tui.record.layout import node_rows
    from glance_tui.record.model import read_run

    row = next(r for r in node_rows(read_run(engine.journal.path)) if r[0] == "glance-1")
    assert "imports" in row[4] and image_id in row[4] and "web-download" in row[4]


class ImportDuringConfirm(Unattended):
    """Confirms action ``at`` only after an import started on the cluster while the dialog sat open
    (unattended, as `run --yes`: no one to ask); the import ends a few seconds later."""

    def __init__(self, lab: Lab, at: str = "stop", method: str = "glance-direct") -> None:
        super().__init__("glance-1")
        self.lab, self.at, self.method = lab, at, method
        self.started: str | None = None
        self.ends: asyncio.Task | None = None

    async def confirm(self, step, action, commands) -> bool:
        if action.id == self.at and self.started is None:
            self.started = start_import(self.lab, self.method)
            self.ends = asyncio.create_task(self._end_later())
        return True

    async def _end_later(self) -> None:
        await asyncio.sleep(3)
        await asyncio.to_thread(finish_imports, self.lab)


async def test_an_import_started_while_the_stop_confirmation_sat_open_is_waited_for_again(sim_lab, sim_config):
    sim_lab.reset()
    clear(sim_lab)
    operator = ImportDuringConfirm(sim_lab)  # unattended (run --yes): no one to ask
    engine = Engine.open(sim_config, resume=False)
    try:
        await first_steps(engine, operator)
        assert await engine.run_step(engine.plan.step("new-node"), operator) == "done"
        assert operator.ends is not None and operator.ends.done()  # stopped only once the import ended
        assert (await engine.cluster.probe_node("glance-1")).running is False
    finally:
        await engine.close()
        clear(sim_lab)
    records = journal(engine)
    rewait = next(r for r in records if r["event"] == "drain.rewait")
    assert rewait["node"] == "glance-1" and rewait["in_flight"] == 1 and [i["image"] for i in rewait["imports"]] == [operator.started]
    assert any(operator.started in line and "glance-direct" in line for line in rewait["found"])
    order = [r["event"] for r in records if r["event"] in ("drain.rewait", "drained")]
    assert order[-2:] == ["drain.rewait", "drained"]  # the same wait, to its quiet period, then the stop
    assert all(not shape_problem(r) for r in records)


class StopAnyway(Unattended):
    """Stops with a typed reason at each drain timeout, and starts a new import at the stop's confirmation."""

    def __init__(self, lab: Lab) -> None:
        super().__init__("glance-1")
        self.lab = lab
        self.late: str | None = None
        self.offered: list[tuple[str, ...]] = []

    async def drain_timeout(self, node, in_flight, waited, work=()):
        self.offered.append(work)
        return DrainDecision("stop", "the import is a test fixture")

    async def confirm(self, step, action, commands) -> bool:
        if action.id == "stop" and self.late is None:
            self.late = start_import(self.lab, "copy-image")
        return True


async def test_an_override_covers_the_imports_the_operator_saw_not_a_new_one(sim_lab, sim_config, tmp_path):
    from glance_tui.config import load_config

    sim_lab.reset()
    clear(sim_lab)
    seen_by_operator = start_import(sim_lab)
    cfg = tmp_path / "short.toml"
    cfg.write_text(sim_lab.config_path.read_text().replace("drain_timeout = 120", "drain_timeout = 2"))
    operator = StopAnyway(sim_lab)
    engine = Engine.open(load_config(cfg), resume=False)
    try:
        await first_steps(engine, operator)
        assert await engine.run_step(engine.plan.step("new-node"), operator) == "done"
    finally:
        await engine.close()
        clear(sim_lab)
    # the first override named only the import the operator saw; the new one sent the stop back to
    # the wait, whose timeout asked again, this time naming the new import
    assert len(operator.offered) == 2
    assert any(seen_by_operator in line for line in operator.offered[0]) and not any(operator.late in line for line in operator.offered[0])
    assert any(operator.late in line for line in operator.offered[1])
    records = journal(engine)
    decisions = [r for r in records if r["event"] == "decision" and r.get("gate") == "drain-timeout"]
    assert [d["choice"] for d in decisions] == ["stop", "stop"] and decisions[0]["in_flight"] == 1 and decisions[1]["in_flight"] == 2
    rewait = next(r for r in records if r["event"] == "drain.rewait")
    assert operator.late in str(rewait["found"]) and "started after the stop was decided" in rewait["what"]
    assert [r["in_flight"] for r in records if r["event"] == "override.used"] == [2]
    assert all(not shape_problem(r) for r in records)


async def test_a_direct_client_connection_counts_and_the_load_balancer_does_not(sim_lab, sim_config):
    sim_lab.reset()
    clear(sim_lab)
    node = next(n for n in sim_lab.load_layout().nodes if n.name == "glance-1")
    seen: list[DrainProgress] = []
    engine = Engine.open(sim_config, resume=False)
    engine.subscribe(lambda e: seen.append(e) if isinstance(e, DrainProgress) else None)
    operator = Unattended("glance-1")
    # another node proxying a distributed-import request straight to glance-1: not through HAProxy
    direct = socket.create_connection((node.host, node.api_port))
    try:
        run, shown = await held_drain(engine, operator, seen)
        assert "connections 1" in shown.parts and "LB 0" in shown.parts
        peer = "%s:%d" % direct.getsockname()
        assert any(peer in line for line in shown.work), shown.work  # the health checks' connections are not listed
        direct.close()
        assert await asyncio.wait_for(run, 60) == "done"
    finally:
        direct.close()
        await engine.close()
    work = [r for r in journal(engine) if r["event"] == "drain.work"][-1]
    assert work["connections"] and work["held_by"]["connections"] >= 1.5 and work["held_by"]["lb"] == 0


async def test_an_unreadable_import_table_is_unknown_and_blocks(sim_lab, sim_config, tmp_path):
    from glance_tui.config import load_config

    sim_lab.reset()
    clear(sim_lab)
    cfg = tmp_path / "short.toml"
    cfg.write_text(sim_lab.config_path.read_text().replace("drain_timeout = 120", "drain_timeout = 3"))
    seen: list[DrainProgress] = []
    engine = Engine.open(load_config(cfg), resume=False)
    engine.subscribe(lambda e: seen.append(e) if isinstance(e, DrainProgress) else None)
    operator = Unattended("glance-1")
    try:
        await first_steps(engine, operator)
        sql(sim_lab, "RENAME TABLE tasks TO tasks_away;")
        try:
            assert await engine.run_step(engine.plan.step("new-node"), operator) == "failed"
        finally:
            sql(sim_lab, "RENAME TABLE tasks_away TO tasks;")
        assert (await engine.cluster.probe_node("glance-1")).running
    finally:
        await engine.close()
    assert seen and all(p.in_flight is None for p in seen)
    assert any("import work" in line for line in seen[-1].work)
    error = next(r for r in journal(engine) if r["event"] == "action.end" and r.get("action") == "wait-drained")["error"]
    assert "cannot tell whether glance-1 is drained" in error and "tasks" in error


def stage_on(lab: Lab, node: str, tmp_path) -> tuple[str, object, str]:
    """Give ``node`` a self URL and a staging store (as a distributed-import deployment has) and
    stage an image there the way glance-direct does: the file, the image uploading, its stage host."""
    layout = lab.load_layout()
    n = next(x for x in layout.nodes if x.name == node)
    conf = lab.node_dir(node) / "glance-api.conf"
    original = conf.read_text()
    staging_dir = tmp_path / f"staging-{node}"
    staging_dir.mkdir()
    url = f"http://{n.host}:{n.api_port}"
    conf.write_text(original.replace("[DEFAULT]\n", f"[DEFAULT]\nworker_self_reference_url = {url}\nenabled_backends = fs:file\n", 1)
                    + f"\n[os_glance_staging_store]\nfilesystem_store_datadir = {staging_dir}\n")
    image_id = str(uuid.uuid4())
    (staging_dir / image_id).write_bytes(b"staged data")
    sql(lab, f"INSERT INTO images (id, name, size, status, created_at, deleted) VALUES ({sql_string(image_id)}, 'staged', 11, 'uploading', UTC_TIMESTAMP(), 0);\n"
             f"INSERT INTO image_properties (image_id, name, value, created_at, deleted) VALUES ({sql_string(image_id)}, 'os_glance_stage_host', {sql_string(url)}, UTC_TIMESTAMP(), 0);")
    return image_id, staging_dir, original


@pytest.mark.parametrize("fix", ["restore", "delete"])
async def test_staged_images_are_listed_before_the_stop_and_must_survive_the_upgrade(sim_lab, sim_config, tmp_path, fix):
    from glance_tui.events import Notice
    from glance_tui.record.layout import node_rows
    from glance_tui.record.model import read_run

    sim_lab.reset()
    clear(sim_lab)
    image_id, staging_dir, original = stage_on(sim_lab, "glance-1", tmp_path)
    notices: list[str] = []
    engine = Engine.open(sim_config, resume=False)
    engine.subscribe(lambda e: notices.append(e.text) if isinstance(e, Notice) else None)
    operator = Unattended("glance-1")
    try:
        await first_steps(engine, operator)
        assert await engine.run_step(engine.plan.step("new-node"), operator) == "done"  # staged data is not in flight
        told = [t for t in notices if image_id in t]
        assert told and "an import requested for them fails" in told[0] and str(staging_dir) in told[0] and "this node" in told[0]
        (staging_dir / image_id).unlink()  # the upgrade "loses" it
        assert await engine.run_step(engine.plan.step("upgrade-new"), operator) == "failed"
        if fix == "restore":  # restored from before the upgrade: the re-check passes
            (staging_dir / image_id).write_bytes(b"staged data")
        else:  # the data is gone: its owner deletes the image, which is then no longer owed
            sql(sim_lab, f"UPDATE images SET deleted = 1, status = 'deleted' WHERE id = {sql_string(image_id)};")
        assert await engine.run_step(engine.plan.step("upgrade-new"), operator) == "done"
    finally:
        await engine.close()
        (sim_lab.node_dir("glance-1") / "glance-api.conf").write_text(original)
        clear(sim_lab)
    records = journal(engine)
    staged = next(r for r in records if r["event"] == "staged")
    assert staged["node"] == "glance-1" and staged["files"] == [image_id] and staged["dir_exists"] is True
    assert [i["image"] for i in staged["imports"]] == [image_id]
    lost = next(r for r in records if r["event"] == "action.end" and r.get("action") == "upgrade" and not r["ok"])
    assert "lost staged image data" in lost["error"] and image_id in lost["error"]
    kept = [r for r in records if r["event"] == "staged.kept"]
    assert kept and kept[-1]["files"] == ([image_id] if fix == "restore" else [])
    assert all(not shape_problem(r) for r in records)
    row = next(r for r in node_rows(read_run(engine.journal.path)) if r[0] == "glance-1")
    assert image_id in row[4] and "LOST by the upgrade" in row[4]


def test_status_names_imports_and_direct_connections(sim_lab, sim_config, capsys):
    from glance_tui.cli import main

    sim_lab.reset()
    clear(sim_lab)
    image_id = start_import(sim_lab, "web-download", "Copied 7 MiB")
    node = next(n for n in sim_lab.load_layout().nodes if n.name == "glance-2")
    direct = socket.create_connection((node.host, node.api_port))
    try:
        assert main(["status", "-c", str(sim_lab.config_path), "--json"]) == 0
        work = json.loads(capsys.readouterr().out)["work"]
        assert [i["image"] for i in work["imports"]["running"]] == [image_id] and work["imports"]["running"][0]["method"] == "web-download"
        assert work["connections"]["glance-2"] == ["%s:%d" % direct.getsockname()] and work["connections"]["glance-1"] == []
        assert main(["status", "-c", str(sim_lab.config_path)]) == 0
        text = capsys.readouterr().out
        assert "OTHER CONNS" in text and f"glance-2: connection from {'%s:%d' % direct.getsockname()}" in text
        assert "image imports running: 1" in text and image_id in text and "7.0 MiB so far" in text
    finally:
        direct.close()
        clear(sim_lab)


def staging_dir(lab: Lab, node: str) -> "Path":
    from pathlib import Path

    from glance_tui.node.glance_conf import parse_import_conf

    return Path(parse_import_conf((lab.node_dir(node) / "glance-api.conf").read_text()).staging_dir)


async def work_of(engine: Engine, node: str):
    from glance_tui.plan import _view, _work_now

    return (await _work_now(engine.ctx, node, await _view(engine.ctx, node))).imports


async def test_a_running_import_holds_only_the_node_holding_its_staging_file(sim_lab, sim_config):
    sim_lab.reset()
    clear(sim_lab)
    assert staging_dir(sim_lab, "glance-1") != staging_dir(sim_lab, "glance-2")
    image_id = start_import(sim_lab)  # its os_glance_stage_host is gone: Glance popped it
    b_dir = staging_dir(sim_lab, "glance-2")
    b_dir.mkdir(parents=True, exist_ok=True)
    (b_dir / image_id).write_bytes(b"downloading")  # web-download writes <staging>/<image id> on the node running it
    engine = Engine.open(sim_config, resume=False)
    operator = Unattended("glance-1")
    try:
        on_b = await work_of(engine, "glance-2")
        assert [i.where for i in on_b.running] == ["staged on glance-2"] and "staged on glance-2" in on_b.running[0].describe()
        assert (await work_of(engine, "glance-1")).count == 0
        from glance_tui.inflight import cluster_work

        status = (await cluster_work(engine.ctx)).as_dict()["imports"]["running"]  # what `status` shows
        assert [(i["image"], i["where"]) for i in status] == [(image_id, "staged on glance-2")]
        await first_steps(engine, operator)
        assert await engine.run_step(engine.plan.step("new-node"), operator) == "done"  # glance-1's drain was not held
        # the staging file on no node: unknown where it runs, so it holds every node
        (b_dir / image_id).unlink()
        assert (await work_of(engine, "glance-2")).count == 1 and (await work_of(engine, "glance-3")).count == 1
        # on two nodes: not narrowed either
        for node in ("glance-2", "glance-3"):
            staging_dir(sim_lab, node).mkdir(parents=True, exist_ok=True)
            (staging_dir(sim_lab, node) / f"{image_id}.qcow2").write_bytes(b"x")
        assert [i.where for i in (await work_of(engine, "glance-2")).running] == ["any node"]
    finally:
        await engine.close()
        for node in ("glance-2", "glance-3"):
            for f in staging_dir(sim_lab, node).glob(f"{image_id}*"):
                f.unlink()
        clear(sim_lab)


async def test_an_unreadable_staging_directory_keeps_a_running_import_on_every_node(sim_lab, sim_config):
    from glance_tui.lab import nodectl

    sim_lab.reset()
    clear(sim_lab)
    image_id = start_import(sim_lab)
    b_dir = staging_dir(sim_lab, "glance-2")
    b_dir.mkdir(parents=True, exist_ok=True)
    (b_dir / image_id).write_bytes(b"downloading")
    # glance-1 denies the listing (as an SELinux/AppArmor policy denies even root): its `find` fails
    shim = sim_lab.node_dir("glance-1") / nodectl.PATH_DIR / "find"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text("#!/bin/sh\necho \"find: '$1': Permission denied\" >&2\nexit 1\n")
    shim.chmod(0o755)
    engine = Engine.open(sim_config, resume=False)
    try:
        on_a = await work_of(engine, "glance-1")
        assert on_a.count == 1 and on_a.running[0].image_id == image_id and on_a.running[0].where == "any node"
        assert (await work_of(engine, "glance-2")).running[0].where == "any node"  # glance-1 could hold it too
    finally:
        await engine.close()
        shim.unlink()
        (b_dir / image_id).unlink()
        clear(sim_lab)


async def test_the_stop_after_a_postinst_restart_waits_for_work_it_took(sim_lab, sim_config, tmp_path):
    """The package starts the service on install; while it ran it may have been handed work (an
    import routed to its own URL): stopping it again waits for that work, as any stop does, and
    does not fail the step of an unattended run."""
    from glance_tui.config import load_config

    sim_lab.reset()
    clear(sim_lab)
    path = tmp_path / "postinst.toml"
    path.write_text(sim_lab.config_path.read_text().replace(
        "[commands]\n", '[commands]\nupgrade = "apt-get install -y glance-api && systemctl start glance-api"\n', 1))
    operator = ImportDuringConfirm(sim_lab, at="upgrade", method="web-download")
    engine = Engine.open(load_config(path), resume=False)
    try:
        await first_steps(engine, operator)
        assert await engine.run_step(engine.plan.step("new-node"), operator) == "done"
        assert await engine.run_step(engine.plan.step("upgrade-new"), operator) == "done"
        assert operator.ends is not None and operator.ends.done()  # stopped again only once the import ended
        assert (await engine.cluster.probe_node("glance-1")).running is False
    finally:
        await engine.close()
        clear(sim_lab)
    records = journal(engine)
    order = [r["event"] for r in records if r["event"] in ("restarted-by-upgrade", "drain.rewait", "drained", "stopped-again", "upgraded")
             and r.get("node") == "glance-1"]
    assert order[-5:] == ["restarted-by-upgrade", "drain.rewait", "drained", "stopped-again", "upgraded"], order
    rewait = [r for r in records if r["event"] == "drain.rewait"][-1]
    assert [i["image"] for i in rewait["imports"]] == [operator.started]
    assert all(not shape_problem(r) for r in records)


async def drain_new_node_then_status(sim_lab, sim_config, capsys) -> tuple[list[DrainProgress], str, list[dict], list[dict]]:
    """The NEW NODE's step run to done (no timeout dialog may be needed), then ``status`` and
    ``status --json`` read while the run is open: (drain readings, status text, the JSON's running
    imports, the journal). The import tables are cleared afterwards."""
    from glance_tui.cli import main

    seen: list[DrainProgress] = []
    engine = Engine.open(sim_config, resume=False)
    engine.subscribe(lambda e: seen.append(e) if isinstance(e, DrainProgress) else None)
    operator = Unattended("glance-1")
    try:
        await first_steps(engine, operator)
        assert await asyncio.wait_for(engine.run_step(engine.plan.step("new-node"), operator), 60) == "done"
        assert await asyncio.to_thread(main, ["status", "-c", str(sim_lab.config_path)]) == 0, capsys.readouterr()
        text = capsys.readouterr().out
        assert await asyncio.to_thread(main, ["status", "-c", str(sim_lab.config_path), "--json"]) == 0
        running = json.loads(capsys.readouterr().out)["work"]["imports"]["running"]
    finally:
        await engine.close()
        clear(sim_lab)
    return seen, text, running, journal(engine)


async def test_an_import_dead_by_glances_lock_expiry_does_not_hold_the_drain(sim_lab, sim_config, capsys):
    """A task left `processing` by a worker killed two hours ago (Glance itself would break its
    lock), no node's staging directory holding a file of it: the drain does not wait for it; it is
    shown and journaled as set aside. A live import beside it is still waited for."""
    sim_lab.reset()
    clear(sim_lab)
    dead = start_import(sim_lab, idle=7200)
    seen, text, running, records = await drain_new_node_then_status(sim_lab, sim_config, capsys)
    assert "image imports running: 0" in text and "dead by Glance's lock expiry (not waited for): 1" in text and dead in text
    assert [(i["image"], i["expired"]) for i in running] == [(dead, True)] and running[0]["idle"] >= 7200
    assert any(p.in_flight == 0 and any(dead in w and "expired" in w for w in p.work) for p in seen)
    work = [r for r in records if r["event"] == "drain.work" and r["node"] == "glance-1"][-1]
    assert [i["image"] for i in work["expired_imports"]] == [dead] and work["imports"] == []
    assert not [r for r in records if r["event"] == "decision" and r.get("gate") == "drain-timeout"]  # no timeout dialog: nothing to decide
    assert all(not shape_problem(r) for r in records)


async def test_an_image_left_importing_by_a_failed_task_does_not_hold_the_drain(sim_lab, sim_config, capsys):
    """An image left `importing` whose lock names a task that failed two hours ago (a revert that
    did not finish): Glance itself would break that lock, the image has not changed since and no
    node's staging directory holds a file of it. The drain completes without the timeout dialog;
    `status` names the image and why, and the journal keeps it as set aside."""
    sim_lab.reset()
    clear(sim_lab)
    stuck, task_id = str(uuid.uuid4()), str(uuid.uuid4())
    sql(sim_lab, f"INSERT INTO images (id, name, status, created_at, updated_at, deleted) VALUES ({sql_string(stuck)}, 'stuck', 'importing', "
                 f"UTC_TIMESTAMP() - INTERVAL 3 HOUR, UTC_TIMESTAMP() - INTERVAL 2 HOUR, 0);\n"
                 f"INSERT INTO tasks (id, type, status, owner, created_at, updated_at, deleted, image_id) VALUES ({sql_string(task_id)}, "
                 f"'api_image_import', 'failure', 'p', UTC_TIMESTAMP() - INTERVAL 3 HOUR, UTC_TIMESTAMP() - INTERVAL 2 HOUR, 0, {sql_string(stuck)});\n"
                 f"INSERT INTO image_properties (image_id, name, value, created_at, deleted) VALUES ({sql_string(stuck)}, 'os_glance_import_task', "
                 f"{sql_string(task_id)}, UTC_TIMESTAMP(), 0);")
    seen, text, running, records = await drain_new_node_then_status(sim_lab, sim_config, capsys)
    assert "image imports running: 0" in text and "dead by Glance's lock expiry (not waited for): 1" in text and stuck in text
    assert "its task failed, last changed 120 min ago; Glance breaks the lock after 60 min" in text
    assert [(i["image"], i["expired"], i["lock"], i["task"]) for i in running] == [(stuck, True, "failure", task_id)]
    assert any(p.in_flight == 0 and any(stuck in w and "expired" in w for w in p.work) for p in seen)
    work = [r for r in records if r["event"] == "drain.work" and r["node"] == "glance-1"][-1]
    assert [(i["image"], i["lock"]) for i in work["expired_imports"]] == [(stuck, "failure")] and work["imports"] == []
    assert not [r for r in records if r["event"] == "decision" and r.get("gate") == "drain-timeout"]  # no timeout dialog
    assert all(not shape_problem(r) for r in records)
