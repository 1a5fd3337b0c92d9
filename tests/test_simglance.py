"""The simulated Glance binaries behave like the real ones where the engine looks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from glance_tui.adapters.database import Database
from glance_tui.adapters.local import LocalShell
from glance_tui.commands import quote_args
from glance_tui.lab import procs

pytestmark = pytest.mark.services

from tests.fixtures.cluster import materialize_sim

BIN: dict[str, Path] = {}


@pytest.fixture(autouse=True, scope="module")
def _bins(tmp_path_factory):
    BIN.update(materialize_sim(tmp_path_factory.mktemp("sim")))


def write_conf(path: Path, *, host: str = "127.0.0.1", port: int = 9292, connection: str = "") -> Path:
    # Shaped like the lab's glance-api.conf: empty values, '%' in the URL-quoted password.
    path.write_text(f"[DEFAULT]\nbind_host = {host}\nbind_port = {port}\nworkers = 1\n\n"
                    f"[database]\nconnection = {connection}\n\n[paste_deploy]\nflavor =\n")
    return path


async def manage(release: str, conf: Path, *args: str):
    return await LocalShell().run(quote_args(str(BIN[release] / "glance-manage"), "--config-file", str(conf), *args), timeout=60)


async def poll(condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("release,version", [("2023.1", "26.1.0"), ("2024.1", "28.2.0")])
async def test_version_flags(release, version) -> None:
    for tool in ("glance-api", "glance-manage"):
        result = await LocalShell().run(quote_args(str(BIN[release] / tool), "--version"), timeout=30)
        assert result.ok and result.stdout.strip() == version


async def test_api_answers_and_stops_gracefully(tmp_path) -> None:
    port = procs.free_port()
    conf = write_conf(tmp_path / "glance-api.conf", port=port, connection="mysql+pymysql://u:p%25w@127.0.0.1:1/g?charset=utf8")
    log, pidfile = tmp_path / "api.log", tmp_path / "api.pid"
    pid = procs.start_detached([str(BIN["2024.1"] / "glance-api"), "--config-file", str(conf)], log=log, pidfile=pidfile)
    try:
        await asyncio.to_thread(procs.wait_for_port, "127.0.0.1", port, 15, pid=pid, what="sim glance-api", log=log)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            versions = await http.get("/versions")
            assert versions.status_code == 200 and versions.json()["versions"][0] == {
                "id": "v2.15", "status": "CURRENT", "links": [{"rel": "self", "href": f"http://127.0.0.1:{port}/v2/"}]}
            assert all(v["id"].startswith("v2.") for v in versions.json()["versions"])
            root = await http.get("/")
            assert root.status_code == 300 and root.json() == versions.json()
            assert (await http.get("/v2/images")).json()["images"] == []
            assert (await http.get("/nope")).status_code == 404
            # SIGTERM with a request in flight: it completes, new connections are refused, exit 0.
            slow = asyncio.create_task(http.get("/slow", params={"s": "1.5"}))
            await poll(lambda: "slow request started" in log.read_text(), what="the slow request to start")
            os.killpg(pid, signal.SIGTERM)
            await poll(lambda: procs.port_is_free("127.0.0.1", port), what="the listener to close")
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            response = await slow
            assert response.status_code == 200 and response.json() == {"slept": 1.5}
        await poll(lambda: not procs.pid_alive(pid), what="glance-api to exit")
        assert "sim glance-api stopped" in log.read_text()
    finally:
        procs.stop_pid(pidfile)


async def test_manage_walks_the_rolling_upgrade(glance_db_factory, tmp_path) -> None:
    gdb = glance_db_factory()
    conf = write_conf(tmp_path / "glance-api.conf", connection=gdb.url + "?charset=utf8")

    async def step(release: str, action: str, expect_rc: int, expect_heads: list[str], say: str = "") -> None:
        result = await manage(release, conf, "db", action)
        assert result.exit_status == expect_rc, (release, action, result.tail())
        assert say in result.stdout + result.stderr
        async with Database(gdb.database_config()) as db:
            assert await db.alembic_heads() == expect_heads
        version = await manage(release, conf, "db", "version")
        assert version.ok and (version.stdout.split() == expect_heads or not expect_heads)

    old, mid = ["2023_1_contract01"], ["2023_1_contract01", "2024_1_expand01"]
    await step("2023.1", "version", 0, [], "not under migration control")
    await step("2024.1", "check", 3, [], "run `glance-manage db expand`")
    await step("2023.1", "sync", 0, old, "synced successfully")
    await step("2023.1", "check", 0, old, "up to date")
    await step("2024.1", "check", 3, old, "first step is to run `glance-manage db expand`")
    await step("2024.1", "migrate", 1, old, "cannot be run before database expansion")
    await step("2024.1", "contract", 1, old, "cannot be run before database expansion")
    await step("2024.1", "expand", 0, mid)
    async with Database(gdb.database_config()) as db:
        assert [await db.table_exists(t) for t in ("images", "node_reference", "cached_images")] == [True, True, True]
    await step("2024.1", "expand", 0, mid, "expansion is up to date")
    await step("2024.1", "check", 4, mid, "next step is to run `glance-manage db migrate`")
    await step("2023.1", "check", 0, mid, "up to date")  # old nodes keep working on the expanded schema
    await step("2024.1", "contract", 1, mid, "before data migration is complete")
    await step("2024.1", "migrate", 0, mid, "Migrated 0 rows")
    await step("2024.1", "migrate", 0, mid, "migration is up to date")
    await step("2024.1", "check", 5, mid, "next step is to run `glance-manage db contract`")
    await step("2024.1", "contract", 0, ["2024_1_contract01"])
    await step("2024.1", "check", 0, ["2024_1_contract01"], "Database is up to date")
    await step("2024.1", "expand", 0, ["2024_1_contract01"], "No migrations needed")


async def test_manage_sync_of_the_new_release_on_a_fresh_schema(glance_db_factory, tmp_path) -> None:
    gdb = glance_db_factory()
    conf = write_conf(tmp_path / "c.conf", connection=gdb.url)
    assert (await manage("2024.1", conf, "db", "sync")).ok
    result = await manage("2024.1", conf, "db", "check")
    assert result.exit_status == 0
    async with Database(gdb.database_config()) as db:
        facts = await db.facts()
        assert facts.alembic_heads == ["2024_1_contract01"]
        assert all([await db.table_exists(t) for t in ("images", "node_reference", "cached_images")])


async def test_manage_database_errors_exit_1_on_stderr(glance_db, tmp_path) -> None:
    server = glance_db.server
    bad_password = f"mysql+pymysql://{glance_db.user}:wrong-pw-123@{server.host}:{server.port}/{glance_db.schema}"
    result = await manage("2024.1", write_conf(tmp_path / "bad.conf", connection=bad_password), "db", "check")
    assert result.exit_status == 1 and "Access denied" in result.stderr and "wrong-pw-123" not in result.stderr
    unreachable = f"mysql+pymysql://u:p@127.0.0.1:{procs.free_port()}/g"
    result = await manage("2024.1", write_conf(tmp_path / "down.conf", connection=unreachable), "db", "version")
    assert result.exit_status == 1 and "Can't connect" in result.stderr and result.stdout == ""
