"""Glance's import work read from Glance's own tables (the DDL its `db sync` makes) on a real MariaDB."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from glance_tui.adapters.database import Database
from glance_tui.errors import AdapterError
from glance_tui.import_work import StagedFiles, StageHosts, for_node, lock_left, read_import_work
from glance_tui.lab.mariadb import sql_string
from glance_tui.node.glance_conf import parse_import_conf

pytestmark = pytest.mark.services

DDL = Path(__file__).parent / "fixtures" / "glance_tables.sql"
A, B = "http://10.0.0.11:9292", "http://10.0.0.12:9292"


@pytest.fixture
def gdb(glance_db_factory):
    """A fresh schema with Glance's real images, image_properties, tasks and task_info tables."""
    db = glance_db_factory()
    db.execute(DDL.read_text())
    return db


def _q(value) -> str:
    return "NULL" if value is None else sql_string(str(value))


def image(db, status: str, *, size: int | None = None, props: dict[str, str] | None = None, deleted: int = 0,
          deleted_props: dict[str, str] | None = None, idle: int = 30) -> str:
    """An image row last changed ``idle`` seconds ago."""
    image_id = str(uuid.uuid4())
    db.execute(f"INSERT INTO images (id, name, size, status, created_at, updated_at, deleted, min_disk, min_ram, visibility) VALUES "
               f"({_q(image_id)}, 'img', {_q(size)}, {_q(status)}, UTC_TIMESTAMP() - INTERVAL {idle + 60} SECOND, UTC_TIMESTAMP() - INTERVAL {idle} SECOND, {deleted}, 0, 0, 'shared')")
    for gone, rows in ((0, props or {}), (1, deleted_props or {})):
        for name, value in rows.items():
            db.execute(f"INSERT INTO image_properties (image_id, name, value, created_at, deleted) VALUES "
                       f"({_q(image_id)}, {_q(name)}, {_q(value)}, UTC_TIMESTAMP(), {gone})")
    return image_id


def task(db, status: str, image_id: str | None, method: str, *, message: str | None = None, deleted: int = 0, column_image: bool = True,
         idle: int = 0) -> str:
    task_id = str(uuid.uuid4())
    body = {"image_id": image_id, "import_req": {"method": {"name": method}}, "backend": ["fs"]}
    db.execute(f"INSERT INTO tasks (id, type, status, owner, created_at, updated_at, deleted, image_id) VALUES "
               f"({_q(task_id)}, 'api_image_import', {_q(status)}, 'p1', UTC_TIMESTAMP() - INTERVAL {120 + idle} SECOND, UTC_TIMESTAMP() - INTERVAL {idle} SECOND, {deleted}, "
               f"{_q(image_id if column_image else None)})")
    db.execute(f"INSERT INTO task_info (task_id, input, message) VALUES ({_q(task_id)}, {_q(json.dumps(body))}, {_q(message)})")
    return task_id


async def read(db):
    async with Database(db.database_config()) as conn:
        return await read_import_work(conn)


async def test_nothing_recorded_is_zero(gdb) -> None:
    work = await read(gdb)
    assert work.count == 0 and not work.staged and not work.truncated


async def test_web_download_running_is_one_import_with_every_sign(gdb) -> None:
    img = image(gdb, "importing", props={"os_glance_importing_to_stores": "fs", "os_glance_import_task": "x"})
    tid = task(gdb, "processing", img, "web-download", message="Copied 12 MiB")
    work = await read(gdb)
    assert work.count == 1, work
    item = work.running[0]
    assert (item.image_id, item.method, item.task_id, item.size) == (img, "web-download", tid, 12 * 1024 * 1024)
    assert set(item.signs) == {"task processing", "image importing", "stores left: fs"}
    assert 100 <= item.age <= 200  # from the task's created_at, on the database's clock
    assert img in item.describe() and "web-download" in item.describe() and "12.0 MiB" in item.describe()


async def test_each_kind_alone_counts(gdb) -> None:
    importing = image(gdb, "importing", size=2048)  # no task left (a task row culled): still an import
    copying = image(gdb, "active", props={"os_glance_importing_to_stores": "fs2,fs3"})  # copy-image keeps it active
    pending = task(gdb, "pending", None, "copy-image", column_image=False)  # a task that names no image
    work = await read(gdb)
    by_image = {i.image_id or i.task_id: i for i in work.running}
    assert set(by_image) == {importing, copying, pending}
    assert by_image[importing].signs == ("image importing",) and by_image[importing].size == 2048
    assert by_image[copying].signs == ("stores left: fs2,fs3",)
    assert by_image[pending].signs == ("task pending",) and by_image[pending].method == "copy-image"


async def test_finished_deleted_and_emptied_work_is_not_counted(gdb) -> None:
    done = image(gdb, "active", props={"os_glance_importing_to_stores": ""})  # every store done: Glance leaves ''
    task(gdb, "success", done, "web-download")
    task(gdb, "failure", done, "glance-direct")
    gone = image(gdb, "importing", deleted=1)
    task(gdb, "processing", gone, "web-download", deleted=1)
    image(gdb, "active", deleted_props={"os_glance_importing_to_stores": "fs"})  # a soft-deleted property row
    work = await read(gdb)
    assert work.count == 0 and not work.staged, work


async def test_staged_images_are_listed_not_in_flight_and_narrowed_by_stage_host(gdb) -> None:
    on_a = image(gdb, "uploading", size=5000, props={"os_glance_stage_host": A})
    on_b = image(gdb, "uploading", size=7000, props={"os_glance_stage_host": B + "/"})
    nowhere = image(gdb, "uploading")  # no stage host (still staging, or no self URL configured)
    work = await read(gdb)
    assert work.count == 0
    assert {i.image_id for i in work.staged} == {on_a, on_b, nowhere}
    hosts = StageHosts({"a": A, "b": B})
    for_a = for_node(work, "a", hosts)
    assert {i.image_id: i.where for i in for_a.staged} == {on_a: "this node", nowhere: "any node"}
    assert {i.image_id for i in for_node(work, "b", hosts).staged} == {on_b, nowhere}
    # a URL both nodes share (public_endpoint) names no node; nor does any URL while a config is unread
    assert len(for_node(work, "a", StageHosts({"a": A, "b": A})).staged) == 3
    assert len(for_node(work, "b", StageHosts({"a": A}, {"b": "cannot read"})).staged) == 3


async def test_glance_direct_import_pending_on_its_stage_host_is_narrowed(gdb) -> None:
    img = image(gdb, "uploading", size=4096, props={"os_glance_stage_host": A, "os_glance_import_task": "t"})
    task(gdb, "pending", img, "glance-direct")
    running = image(gdb, "importing")  # its stage host was popped when the import began: any node
    task(gdb, "processing", running, "glance-direct")
    work = await read(gdb)
    hosts = StageHosts({"a": A, "b": B})
    assert {i.image_id: i.where for i in for_node(work, "a", hosts).running} == {img: "this node", running: "any node"}
    assert [i.image_id for i in for_node(work, "b", hosts).running] == [running]
    assert not work.staged  # an import is on its way for the staged one


async def test_a_running_import_is_narrowed_to_the_one_node_holding_its_staging_file(gdb) -> None:
    on_b, nowhere, twice = image(gdb, "importing"), image(gdb, "importing"), image(gdb, "importing")
    for img in (on_b, nowhere, twice):
        task(gdb, "processing", img, "web-download")
    work = await read(gdb)
    hosts = StageHosts({"a": A, "b": B})
    files = StagedFiles({on_b: ("b",), twice: ("a", "b")}, ages={on_b: {"b": 0.0}, twice: {"a": 0.0, "b": 0.0}})
    assert {i.image_id for i in for_node(work, "a", hosts, files).running} == {nowhere, twice}
    assert {i.image_id: i.where for i in for_node(work, "b", hosts, files).running} == {on_b: "staged on b", nowhere: "any node", twice: "any node"}
    assert "staged on b" in next(i for i in for_node(work, "b", hosts, files).running if i.image_id == on_b).describe()
    # a node's directory unread: it could hold any of them, so every running import counts everywhere
    unread = StagedFiles({on_b: ("b",)}, {"a": "cannot list"}, {on_b: {"b": 0.0}})
    assert len(for_node(work, "a", hosts, unread).running) == 3 and len(for_node(work, "b", hosts, unread).running) == 3
    staged = image(gdb, "uploading")  # staged data no import runs for stays where its stage host says
    assert [i.image_id for i in for_node(await read(gdb), "a", hosts, StagedFiles({staged: ("b",)})).staged] == [staged]


async def test_a_file_older_than_its_import_is_no_evidence_of_where_it_runs(gdb) -> None:
    """A failed copy-image leaves its staging file behind: a new import of that image starting on
    another node must not be narrowed to the node holding the old file (it would let the new
    import's node stop). glance-direct's data is staged before its import, so any file is its own."""
    copy, direct = image(gdb, "importing"), image(gdb, "importing")
    task(gdb, "processing", copy, "copy-image")
    task(gdb, "processing", direct, "glance-direct")
    work = await read(gdb)
    hosts = StageHosts({"a": A, "b": B})
    old = StagedFiles({copy: ("b",), direct: ("b",)}, ages={copy: {"b": 3600.0}, direct: {"b": 3600.0}})
    assert {i.image_id: i.where for i in for_node(work, "a", hosts, old).running} == {copy: "any node"}
    assert {i.image_id: i.where for i in for_node(work, "b", hosts, old).running} == {copy: "any node", direct: "staged on b"}
    fresh = StagedFiles({copy: ("b",)}, ages={copy: {"b": 1.0}})
    assert {i.image_id for i in for_node(work, "a", hosts, fresh).running} == {direct}  # direct: no file anywhere, any node


async def test_an_import_dead_by_glances_lock_expiry_counts_against_no_node(gdb) -> None:
    """Glance itself breaks the lock of an import whose task has not changed for 60 minutes (120
    while pending). Such a task, with every node's staging directory read and no file of its
    image written within that time, is set aside (shown, not waited for); any sign of life, an
    unread directory or a younger task keeps it in flight."""
    dead, alive_file, young, pending = (image(gdb, "importing") for _ in range(4))
    task(gdb, "processing", dead, "web-download", idle=3700)
    task(gdb, "processing", alive_file, "web-download", idle=3700)
    task(gdb, "processing", young, "copy-image", idle=3000)
    task(gdb, "pending", pending, "glance-direct", idle=3700)  # pending: 120 minutes
    work = await read(gdb)
    assert {i.image_id: (i.task_status, i.idle is not None and i.idle >= 3700) for i in work.running}[dead] == ("processing", True)
    hosts = StageHosts({"a": A, "b": B}, dirs={"a": "/s", "b": "/s"})
    files = StagedFiles({dead: ("a",), alive_file: ("b",)}, ages={dead: {"a": 3650.0}, alive_file: {"b": 5.0}})
    for node in ("a", "b"):
        mine = for_node(work, node, hosts, files)
        assert [i.image_id for i in mine.expired] == [dead] and dead not in {i.image_id for i in mine.running}
        assert "expired" in mine.expired[0].describe() and "60 min" in mine.expired[0].describe()
    assert {i.image_id for i in for_node(work, "b", hosts, files).running} == {alive_file, young, pending}
    # nothing read, or one node unread: nobody can say it is dead
    assert not for_node(work, "a", hosts, None).expired
    unread = StagedFiles({}, {"b": "cannot list"})
    assert not for_node(work, "a", hosts, unread).expired and dead in {i.image_id for i in for_node(work, "a", hosts, unread).running}
    assert {i.image_id for i in for_node(work, "a", hosts, StagedFiles()).expired} == {dead, alive_file}  # no file anywhere


async def test_an_image_left_importing_with_no_live_task_is_judged_by_glances_lock_rule(gdb) -> None:
    """``_enforce_import_lock``: a lock whose task is missing, or that names no task, is broken at
    once; one whose task finished (soft-deleted rows too: Glance's elevated context sees them) after
    60 minutes unchanged. Set aside only when, besides, the image has not changed for 60 minutes and
    every node's staging directory was read with no file of it changed within that time."""
    lock = lambda task_id: {"os_glance_import_task": task_id}  # noqa: E731
    failed_old, failed_young, done_old, deleted_old, missing, nolock, young_image, stores_left, live_lock = (
        image(gdb, "importing", idle=4000), image(gdb, "importing", idle=4000), image(gdb, "importing", idle=4000),
        image(gdb, "importing", idle=4000), image(gdb, "importing", idle=4000, props=lock(str(uuid.uuid4()))),
        image(gdb, "importing", idle=4000), image(gdb, "importing", idle=600, props=lock(str(uuid.uuid4()))),
        image(gdb, "active", idle=4000, props={"os_glance_importing_to_stores": "fs2"}), image(gdb, "importing", idle=4000))
    for img, status, idle, deleted in ((failed_old, "failure", 3700, 0), (failed_young, "failure", 720, 0), (done_old, "success", 3700, 0),
                                       (deleted_old, "failure", 3700, 1), (stores_left, "failure", 3700, 0)):
        tid = task(gdb, status, img, "copy-image", idle=idle, deleted=deleted)
        gdb.execute(f"INSERT INTO image_properties (image_id, name, value, created_at, deleted) VALUES ({_q(img)}, 'os_glance_import_task', {_q(tid)}, UTC_TIMESTAMP(), 0)")
    # a lock naming a task the tasks read did not see (it began between the reads): Glance's rule still holds it
    other = task(gdb, "processing", None, "web-download", idle=60, column_image=False)
    gdb.execute(f"INSERT INTO image_properties (image_id, name, value, created_at, deleted) VALUES ({_q(live_lock)}, 'os_glance_import_task', {_q(other)}, UTC_TIMESTAMP(), 0)")
    work = await read(gdb)
    by_image = {i.image_id: i for i in work.running if i.image_id}
    assert {i: (by_image[i].lock, lock_left(by_image[i]) == 0) for i in (failed_old, failed_young, done_old, deleted_old, missing, nolock, stores_left, live_lock)} == {
        failed_old: ("failure", True), failed_young: ("failure", False), done_old: ("success", True), deleted_old: ("failure", True),
        missing: ("missing", True), nolock: ("none", True), stores_left: ("failure", True), live_lock: ("processing", False)}
    assert "its task failed, last changed 12 min ago; Glance breaks the lock after 60 min" in by_image[failed_young].describe()
    assert "soft-deleted" in by_image[deleted_old].note and "not in Glance's tasks" in by_image[missing].note
    assert "the image changed 10 min ago" in by_image[young_image].describe()
    hosts = StageHosts({"a": A, "b": B}, dirs={"a": "/s", "b": "/s"})
    dead = {failed_old, done_old, deleted_old, missing, nolock, stores_left}
    quiet = StagedFiles({failed_old: ("a",)}, ages={failed_old: {"a": 3650.0}})  # a file older than the window is no sign of life
    for node in ("a", "b"):
        mine = for_node(work, node, hosts, quiet)
        assert {i.image_id for i in mine.expired} == dead
        assert {i.image_id or i.task_id for i in mine.running} == {failed_young, young_image, live_lock, other}
        assert all("expired" in i.describe() for i in mine.expired)
    # a recent staging file of it on one node, or one node's directory unread, or none read: it stays, saying why
    recent = StagedFiles({missing: ("b",)}, ages={missing: {"b": 120.0}})
    kept = next(i for i in for_node(work, "b", hosts, recent).running if i.image_id == missing)
    assert "a staging file of it changed 2 min ago on b" in kept.describe() and "staged on b" in kept.describe()
    assert missing not in {i.image_id for i in for_node(work, "a", hosts, recent).expired}
    unread = StagedFiles({}, {"b": "cannot list"})
    assert not for_node(work, "a", hosts, unread).expired
    assert "staging directory unread on b" in next(i for i in for_node(work, "a", hosts, unread).running if i.image_id == nolock).describe()
    assert not for_node(work, "a", hosts, None).expired
    assert by_image[nolock].as_dict()["lock"] == "none"


async def test_a_lock_glance_never_expires_or_cannot_date_is_waited_for(gdb) -> None:
    """A lock task in a status Glance does not expire, or with no ``updated_at`` (Glance itself
    could not age it): never set aside, even with every staging directory read and empty."""
    odd, undated = image(gdb, "importing", idle=9000), image(gdb, "importing", idle=9000)
    odd_task = task(gdb, "cancelled", odd, "web-download", idle=9000)
    undated_task = task(gdb, "failure", undated, "web-download")
    gdb.execute(f"UPDATE tasks SET updated_at = NULL WHERE id = {_q(undated_task)}")
    for img, tid in ((odd, odd_task), (undated, undated_task)):
        gdb.execute(f"INSERT INTO image_properties (image_id, name, value, created_at, deleted) VALUES ({_q(img)}, 'os_glance_import_task', {_q(tid)}, UTC_TIMESTAMP(), 0)")
    work = await read(gdb)
    by_image = {i.image_id: i for i in work.running}
    assert (lock_left(by_image[odd]), lock_left(by_image[undated])) == (None, None)
    assert "Glance never breaks this lock by itself" in by_image[odd].describe()
    assert "its age cannot be judged, so it is waited for" in by_image[undated].describe()
    mine = for_node(work, "a", StageHosts({"a": A}, dirs={"a": "/s"}), StagedFiles())
    assert not mine.expired and {i.image_id for i in mine.running} == {odd, undated}


def test_a_staging_listing_names_images_by_the_part_before_the_first_dot() -> None:
    from glance_tui.node.glance_conf import parse_staging_ages

    listing = "1000\n990.5 abc\n999.0 abc.raw\n400 def.uc\n995 .hidden\n\n"
    assert parse_staging_ages(listing) == {"abc": 1.0, "def": 600.0}
    assert parse_staging_ages("1000\n") == {}
    for bad in ("", "now\n", "1000\nabc\n", "1000\nx abc\n", "1000\nnan abc\n"):
        with pytest.raises(ValueError):
            parse_staging_ages(bad)


async def test_a_read_without_privileges_fails_never_zero(gdb) -> None:
    image(gdb, "importing")
    for host in ("127.0.0.1", "localhost"):
        gdb.server.execute(f"REVOKE ALL PRIVILEGES ON `{gdb.schema}`.* FROM {sql_string(gdb.user)}@{sql_string(host)};"
                           f"GRANT SELECT ON `{gdb.schema}`.`images` TO {sql_string(gdb.user)}@{sql_string(host)};")
    with pytest.raises(AdapterError) as info:
        await read(gdb)
    assert "tasks" in info.value.what or "denied" in info.value.what


async def test_a_server_that_is_gone_fails_never_zero(gdb) -> None:
    cfg = gdb.database_config(port=1, connect_timeout=1.0)
    async with Database(cfg) as conn:
        with pytest.raises(AdapterError):
            await read_import_work(conn)


def test_import_conf_from_glance_api_conf() -> None:
    multi = parse_import_conf("[DEFAULT]\nenabled_backends = fs:file\nworker_self_reference_url = http://10.0.0.11:9292/\n"
                              "public_endpoint = http://lb:9292\n[os_glance_staging_store]\nfilesystem_store_datadir = /srv/staging/\n")
    assert (multi.self_url, multi.staging_dir) == ("http://10.0.0.11:9292", "/srv/staging")
    default = parse_import_conf("[DEFAULT]\nenabled_backends = fs:file\npublic_endpoint = http://lb:9292\n")
    assert (default.self_url, default.staging_dir) == ("http://lb:9292", "/var/lib/glance/staging")
    single = parse_import_conf("[DEFAULT]\n")
    assert (single.self_url, single.staging_dir) == ("", "/tmp/staging")
    for bad in ("not a config", "[DEFAULT]\nnode_staging_uri = swift://x\n",
                "[DEFAULT]\nenabled_backends = a:file\n[os_glance_staging_store]\nfilesystem_store_datadir = rel/dir\n"):
        with pytest.raises(ValueError):
            parse_import_conf(bad)
