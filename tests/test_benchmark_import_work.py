"""Measured, not assumed: what the drain's import read costs on a large Glance database.

Glance has no index on ``images.status`` (nor on ``tasks.status`` with ``deleted``), so the read
scans. Each drain poll makes it once while a node drains (every ``lb_poll_interval``), so its
time is printed for a cloud-sized database: ``IMAGES`` images with three properties each and
``TASKS`` finished import tasks, plus a few running imports and one image a failed import left
``importing`` (its lock's task read by id: the one extra read), on the real MariaDB with Glance's own
DDL. Figures are printed, never asserted as timings (deselected by default).
Run: ``python -m pytest -m benchmark -s tests/test_benchmark_import_work.py``.
"""

from __future__ import annotations

import statistics
import time

import pytest

from glance_tui.adapters.database import Database
from glance_tui.import_work import read_import_work
from tests.test_import_work import DDL, image, task

pytestmark = [pytest.mark.benchmark, pytest.mark.services]

IMAGES = 100_000
TASKS = 50_000
READS = 20


def fill(db) -> None:
    """Bulk rows from MariaDB's sequence engine: active images, their properties, finished tasks."""
    db.execute(DDL.read_text())
    db.execute(
        f"INSERT INTO images (id, name, size, status, created_at, updated_at, deleted, min_disk, min_ram, visibility) "
        f"SELECT LPAD(HEX(seq), 36, '0'), CONCAT('img-', seq), 1048576, IF(seq % 50 = 0, 'deleted', 'active'), "
        f"UTC_TIMESTAMP() - INTERVAL seq SECOND, UTC_TIMESTAMP(), IF(seq % 50 = 0, 1, 0), 0, 0, 'shared' FROM seq_1_to_{IMAGES};\n"
        f"INSERT INTO image_properties (image_id, name, value, created_at, deleted) "
        f"SELECT LPAD(HEX(s.seq), 36, '0'), ELT(p.seq, 'os_distro', 'hw_disk_bus', 'os_glance_importing_to_stores'), "
        f"IF(p.seq = 3, '', 'x'), UTC_TIMESTAMP(), 0 FROM seq_1_to_{IMAGES} s JOIN seq_1_to_3 p;\n"
        f"INSERT INTO tasks (id, type, status, owner, created_at, updated_at, deleted, image_id) "
        f"SELECT LPAD(HEX(seq + 16777216), 36, '0'), 'api_image_import', IF(seq % 7 = 0, 'failure', 'success'), 'p1', "
        f"UTC_TIMESTAMP() - INTERVAL seq SECOND, UTC_TIMESTAMP(), 0, LPAD(HEX(seq), 36, '0') FROM seq_1_to_{TASKS};\n"
        f"INSERT INTO task_info (task_id, input, message) SELECT id, '{{}}', 'done' FROM tasks;")
    for _ in range(3):  # what a drain is waiting for
        task(db, "processing", image(db, "importing"), "web-download", message="Copied 12 MiB")
    image(db, "uploading", props={"os_glance_stage_host": "http://10.0.0.11:9292"})
    stuck = image(db, "importing", idle=7200)  # left importing by a failed task: its lock's task is read by id
    db.execute(f"INSERT INTO image_properties (image_id, name, value, created_at, deleted) VALUES ('{stuck}', 'os_glance_import_task', "
               f"'{task(db, 'failure', stuck, 'copy-image', idle=7000)}', UTC_TIMESTAMP(), 0)")


async def test_import_read_on_a_large_database(glance_db_factory) -> None:
    db = glance_db_factory()
    started = time.perf_counter()
    fill(db)
    filled = time.perf_counter() - started
    times: list[float] = []
    async with Database(db.database_config()) as conn:
        for _ in range(READS):
            t0 = time.perf_counter()
            work = await read_import_work(conn)
            times.append(time.perf_counter() - t0)
    assert work.count == 4 and len(work.staged) == 1 and sum(bool(i.lock) for i in work.running) == 1 and not work.truncated  # the figures are for the right answer
    times.sort()
    print(f"\nimport read on {IMAGES:,} images ({IMAGES * 3:,} properties) and {TASKS:,} tasks "
          f"(filled in {filled:.1f} s), {READS} reads: median {statistics.median(times) * 1000:.1f} ms, "
          f"p95 {times[int(READS * 0.95) - 1] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms")
