"""Image-import work Glance runs inside its API workers, read from Glance's own tables.

``POST /v2/images/{id}/import`` answers 202 and the import then runs as a task inside the API
worker that took it: the load balancer sees nothing in flight while it downloads, converts or
copies. Stopping that worker loses the user's accepted import. What Glance records (its own
code: ``glance/api/v2/images.py``, ``glance/async_/flows/api_image_import.py``):

* ``tasks`` ``pending``/``processing`` (``task_info.input``: ``image_id`` and
  ``import_req.method.name``; ``task_info.message``: "Copied N MiB" while it copies);
* images ``importing``, and images with ``os_glance_importing_to_stores`` left (copy-image
  keeps the image ``active``);
* images ``uploading`` whose data is staged: ``os_glance_stage_host`` names the worker that holds
  it. It is popped when the import starts, so running work never names its node: it counts
  against every node. Only a stage host narrows an item to one node.

Staged images that no import runs for are not in flight (they may wait for days): they are
listed before a stop (:attr:`ImportWork.staged`). Soft-deleted rows (``deleted = 1``) are never
counted. An image left importing (or with stores left) that no live task names is judged by
Glance's own import-lock rule (:func:`lock_left`), its lock task read in one more set-based read.
A read that fails raises; the caller makes it unknown, never 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.adapters.database import Database

LIMIT = 500  # rows per read: more work than this blocks the drain anyway (the count says "at least")
STAGE_HOST, IMPORT_TASK, IMPORTING_TO = "os_glance_stage_host", "os_glance_import_task", "os_glance_importing_to_stores"
_COPIED = re.compile(r"Copied (\d+) MiB")
MIB = 1024 * 1024

_TASKS = ("SELECT t.id, t.status, t.image_id, TIMESTAMPDIFF(SECOND, t.created_at, UTC_TIMESTAMP()),"
          " TIMESTAMPDIFF(SECOND, COALESCE(t.updated_at, t.created_at), UTC_TIMESTAMP()), ti.input, ti.message"
          " FROM tasks t LEFT JOIN task_info ti ON ti.task_id = t.id"
          " WHERE t.deleted = 0 AND t.status IN ('pending', 'processing') ORDER BY t.created_at LIMIT %s")
# Two reads, not ``status IN (...) OR EXISTS (...)`` (a properties probe per image) nor their UNION (as slow), and
# ``deleted + 0 = 0``: with a plain ``deleted = 0`` MariaDB walks ix_*_deleted, which matches nearly
# every row, and reads each row through it — slower than the table scan it then avoids (no index
# hint: an index a schema lacks would fail the read). Measured by tests/test_benchmark_import_work.py.
_IMAGE_COLUMNS = "i.id, i.status, i.size, TIMESTAMPDIFF(SECOND, COALESCE(i.updated_at, i.created_at), UTC_TIMESTAMP()), i.created_at"
_IMAGES = (f"SELECT {_IMAGE_COLUMNS} FROM images i WHERE i.status IN ('importing', 'uploading') AND i.deleted + 0 = 0"
           " ORDER BY i.created_at LIMIT %s")
_STORES_LEFT = (f"SELECT p.image_id FROM image_properties p WHERE p.name = '{IMPORTING_TO}' AND p.deleted + 0 = 0 AND p.value <> ''"
                " LIMIT %s")
_IMAGES_BY_ID = f"SELECT {_IMAGE_COLUMNS} FROM images i WHERE i.deleted = 0 AND i.id IN ({{}})"
_PROPS = ("SELECT image_id, name, value FROM image_properties WHERE deleted = 0"
          f" AND name IN ('{STAGE_HOST}', '{IMPORT_TASK}', '{IMPORTING_TO}') AND image_id IN ({{}})")
# The tasks named by the locks of images no live task runs for, soft-deleted ones too (Glance's
# elevated context sees them); no COALESCE: Glance itself reads ``updated_at``.
_LOCKS = "SELECT id, status, deleted, TIMESTAMPDIFF(SECOND, updated_at, UTC_TIMESTAMP()) FROM tasks WHERE id IN ({})"


@dataclass(frozen=True)
class ImportItem:
    """One image's import (or a task that names no image) as Glance records it."""

    image_id: str  # "" when a task names no image
    method: str  # glance-direct, web-download, copy-image, glance-download; "?" when Glance does not say
    signs: tuple[str, ...]  # what shows it: "task processing", "image importing", "stores left: fs1"
    age: float | None  # seconds since the task was created (else since the image last changed), database clock
    size: int | None = None  # bytes so far where Glance records it (a task's "Copied N MiB", a staged image's size)
    stage_host: str = ""  # os_glance_stage_host: the worker that holds its staged data
    task_id: str = ""
    where: str = "any node"  # "this node" (its stage host) or "staged on NODE" (its staging file), set by :func:`for_node`
    task_status: str = ""  # its task's status (pending / processing); "" when no task names it
    idle: float | None = None  # seconds since its task (or its lock's task) was last updated (database clock); None without one
    lock: str = ""  # no live task runs for it: its lock task's status as read, "missing" (no such row) or "none" (no lock)
    note: str = ""  # why it is (still) counted or set aside, by Glance's lock rule and the staging evidence

    def describe(self) -> str:
        size = "size ?" if self.size is None else f"{_size(self.size)} so far"
        age = "age ?" if self.age is None else f"{self.age:.0f}s old"
        what = self.image_id or f"task {self.task_id}"
        note = f"; {self.note}" if self.note else ""
        return f"{what} ({self.method}; {', '.join(self.signs)}{note}; {age}; {size}; {self.where})"

    def as_dict(self) -> dict[str, Any]:
        return {"image": self.image_id, "method": self.method, "signs": list(self.signs), "age": self.age,
                "size": self.size, "stage_host": self.stage_host, "task": self.task_id, "where": self.where, "idle": self.idle,
                "lock": self.lock or None, "note": self.note or None}


def _size(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n} B"


@dataclass(frozen=True)
class ImportWork:
    """``running``: imports that may be running (in flight); ``staged``: staged data no import runs for."""

    running: tuple[ImportItem, ...] = ()
    staged: tuple[ImportItem, ...] = ()
    truncated: bool = False  # a read hit LIMIT: there is at least this much
    expired: tuple[ImportItem, ...] = ()  # dead by Glance's own lock expiry, nothing alive on any node (:func:`expired`): not in flight

    @property
    def count(self) -> int:
        return len(self.running)


def _method(raw: Any) -> tuple[str, str]:
    """(image_id, method) from ``task_info.input`` (JSON); ("", "?") when it is not Glance's shape."""
    try:
        data = json.loads(raw) if isinstance(raw, (str, bytes)) else None
    except ValueError:
        return "", "?"
    if not isinstance(data, dict):
        return "", "?"
    image = data.get("image_id") if isinstance(data.get("image_id"), str) else ""
    req = data.get("import_req")
    method = req.get("method") if isinstance(req, dict) else None
    name = method.get("name") if isinstance(method, dict) else None
    return image, name if isinstance(name, str) and name else "?"


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int) and value >= 0 else None


async def read_import_work(db: "Database") -> ImportWork:
    """Every import Glance records, cluster-wide; raises :class:`~glance_tui.errors.AdapterError` on a failed read."""
    tasks = await db.rows(_TASKS, (LIMIT,))
    images = list(await db.rows(_IMAGES, (LIMIT,)))
    listed = {str(r[0]) for r in images}
    stores_left = await db.rows(_STORES_LEFT, (LIMIT,))
    left = sorted({str(r[0]) for r in stores_left} - listed)
    for start in range(0, len(left), 200):
        chunk = left[start:start + 200]
        images += await db.rows(_IMAGES_BY_ID.format(", ".join(["%s"] * len(chunk))), tuple(chunk))
    images.sort(key=lambda r: (r[4] is None, r[4] or 0))
    images = images[:LIMIT]
    ids = sorted({str(r[0]) for r in images} | {str(r[2]) for r in tasks if r[2]})
    props: dict[str, dict[str, str]] = {}
    for start in range(0, len(ids), 200):
        chunk = ids[start:start + 200]
        for image_id, name, value in await db.rows(_PROPS.format(", ".join(["%s"] * len(chunk))), tuple(chunk)):
            props.setdefault(str(image_id), {})[str(name)] = str(value or "")
    items: dict[str, ImportItem] = {}
    for task_id, status, column_image, age, since, raw_input, message in tasks:
        image, method = _method(raw_input)
        image = image or str(column_image or "")
        copied = _COPIED.search(str(message or ""))
        key = image or f"task:{task_id}"
        items[key] = ImportItem(image, method, (f"task {status}",), _seconds(age), int(copied.group(1)) * MIB if copied else None,
                                props.get(image, {}).get(STAGE_HOST, ""), str(task_id), task_status=str(status), idle=_seconds(since))
    staged: list[ImportItem] = []
    for image_id, status, size, age, _created in images:
        image_id = str(image_id)
        mine = props.get(image_id, {})
        signs = [f"image {status}"] if status in ("importing", "uploading") else []
        left = mine.get(IMPORTING_TO, "").strip(",")
        if left:
            signs.append(f"stores left: {left}")
        known = items.get(image_id)
        if known is not None:
            items[image_id] = replace(known, signs=known.signs + tuple(signs), size=known.size if known.size is not None else _int(size))
        elif status == "uploading" and not left:  # staged (or staging): nothing runs for it
            staged.append(ImportItem(image_id, "glance-direct", tuple(signs), _seconds(age), _int(size), mine.get(STAGE_HOST, ""),
                                     mine.get(IMPORT_TASK, "")))
        else:
            items[image_id] = ImportItem(image_id, "?", tuple(signs), _seconds(age), _int(size), mine.get(STAGE_HOST, ""), mine.get(IMPORT_TASK, ""))
    locks = await _lock_tasks(db, sorted({i.task_id for i in items.values() if not i.task_status and i.task_id}))
    running = tuple(i if i.task_status else _with_lock(i, locks.get(i.task_id)) for i in items.values())
    return ImportWork(running, tuple(staged), len(tasks) >= LIMIT or len(images) >= LIMIT or len(stores_left) >= LIMIT)


async def _lock_tasks(db: "Database", ids: list[str]) -> dict[str, tuple[str, bool, float | None]]:
    """task id -> (status, soft-deleted, seconds since updated_at) for the lock tasks of images no live task runs for."""
    found: dict[str, tuple[str, bool, float | None]] = {}
    for start in range(0, len(ids), 200):
        chunk = ids[start:start + 200]
        for task_id, status, deleted, since in await db.rows(_LOCKS.format(", ".join(["%s"] * len(chunk))), tuple(chunk)):
            found[str(task_id)] = (str(status or ""), bool(deleted), _seconds(since))
    return found


def _with_lock(item: ImportItem, row: tuple[str, bool, float | None] | None) -> ImportItem:
    """An image no live task runs for, with its lock as Glance would judge it (:func:`lock_left`)."""
    if not item.task_id:
        lock, idle, text = "none", None, f"no import lock ({IMPORT_TASK} unset): Glance lets a new import take it at once"
    elif row is None:
        lock, idle, text = "missing", None, f"its lock's task {item.task_id} is not in Glance's tasks: Glance breaks the lock at once"
    else:
        lock, deleted, idle = row
        done = {"success": "succeeded", "failure": "failed"}.get(lock, f"is {lock!r}")
        when = "at an unknown time" if idle is None else f"{idle / 60:.0f} min ago"
        text = f"its task {done}{' (soft-deleted)' if deleted else ''}, last changed {when}"
    judged = replace(item, lock=lock, idle=idle)
    left, window = lock_left(judged), _window(judged)
    if left is None:
        text += "; its age cannot be judged, so it is waited for" if lock in LOCK_EXPIRY else "; Glance never breaks this lock by itself"
    elif lock not in ("none", "missing"):
        text += f"; Glance breaks the lock after {LOCK_EXPIRY[lock] / 60:.0f} min"
    if left == 0 and (item.age is None or item.age < window):
        text += f"; the image changed {'at an unknown time' if item.age is None else f'{item.age / 60:.0f} min ago'} (within {window / 60:.0f} min)"
    return replace(judged, note=text)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and value >= 0 else None


@dataclass(frozen=True)
class StageHosts:
    """Each node's self URL (``worker_self_reference_url``, else ``public_endpoint``) from its own
    glance-api.conf. A URL two nodes share (a public endpoint) names no node; a node whose
    config could not be read is in ``unread`` (an item that may be its own is nobody's)."""

    urls: dict[str, str] = field(default_factory=dict)  # node -> self URL ("" when none)
    unread: dict[str, str] = field(default_factory=dict)  # node -> why
    dirs: dict[str, str] = field(default_factory=dict)  # node -> its staging directory (read nodes only)
    unlisted: dict[str, str] = field(default_factory=dict)  # node -> why its directory cannot be listed (a container's own layer)

    def owner(self, stage_host: str) -> str | None:
        """The one node whose self URL is ``stage_host``; None when it names no node, several, or
        when a node's config is unread (that node could share the URL: never assumed it does not)."""
        host = stage_host.strip().rstrip("/")
        owners = [n for n, url in self.urls.items() if url and url == host]
        return owners[0] if len(owners) == 1 and not self.unread else None


@dataclass(frozen=True)
class StagedFiles:
    """Which nodes' staging directories hold data for each image id, read on the nodes; a node
    whose directory (or config) could not be read is in ``unread``."""

    holders: dict[str, tuple[str, ...]] = field(default_factory=dict)  # image id -> nodes
    unread: dict[str, str] = field(default_factory=dict)  # node -> why
    ages: dict[str, dict[str, float]] = field(default_factory=dict)  # image id -> node -> its youngest file's age (node clock)

    def owner(self, image_id: str, *, method: str = "glance-direct", age: float | None = None) -> str | None:
        """The one node that holds ``image_id``'s data for THIS import; None when none, several, or
        any node is unread. glance-direct's data was staged before its import began, so any file
        is its own; every other import writes its file while it runs, so a file older than the
        task (a failed copy-image leaves its file behind) is no evidence of where this one runs."""
        nodes = self.holders.get(image_id, ()) if image_id else ()
        if method != "glance-direct":
            if age is None:
                return None
            by_node = self.ages.get(image_id, {})
            nodes = tuple(n for n in nodes if n in by_node and by_node[n] <= age + FILE_SLACK)
        return nodes[0] if len(nodes) == 1 and not self.unread else None


# Seconds a staged file may seem older than its task: the database's and the node's clocks differ a little.
FILE_SLACK = 30.0


# Glance's import lock (glance/api/v2/images.py, ``ImagesController._enforce_import_lock``, run by
# ``import_image`` when the image has ``os_glance_import_task``): it reads the named task with an
# elevated context, which sees soft-deleted rows too. No such task (purged) -> the lock is stale,
# broken at once. A task ``pending``/``processing``/``success``/``failure`` whose ``updated_at`` is
# 60 minutes old (120 while ``pending``) -> broken (``_bust_import_lock`` fails it, drops the lock);
# any other status never expires. No ``os_glance_import_task`` -> no lock at all. A live import
# updates its task with every chunk it copies to a store (``_ImportToStore._status_callback``) and
# writes its staging file while it downloads or converts. A failed flow normally reverts the image
# to ``queued`` (``_VerifyImageState.revert``, api_image_import.py) and drops its lock
# (``_ImageLock.revert``); an image stays ``importing`` when its worker died mid-flow (task left
# ``processing``) or the revert itself failed (task ``failure``, image ``importing``). Glance then
# refuses every new import of it by status, before the lock is even checked: nothing else runs for it.
LOCK_EXPIRY = {"processing": 3600.0, "pending": 7200.0, "success": 3600.0, "failure": 3600.0}


def lock_left(item: ImportItem) -> float | None:
    """Seconds until Glance's ``_enforce_import_lock`` lets a new import take the item's lock (0:
    now); None when it never does by itself (a status it does not expire, no ``updated_at``)."""
    state = item.lock or item.task_status
    if state in ("none", "missing"):
        return 0.0
    limit = LOCK_EXPIRY.get(state)
    return None if limit is None or item.idle is None else max(0.0, limit - item.idle)


def _window(item: ImportItem) -> float:
    """How long nothing of it may have changed (its task, its image, its staging files) before it is dead."""
    return LOCK_EXPIRY.get(item.lock or item.task_status, LOCK_EXPIRY["processing"])


def may_expire(item: ImportItem) -> bool:
    """Glance would let a new import take its lock now, and (no live task naming it) its image has
    not changed within that window: worth reading the staging directories for."""
    if lock_left(item) != 0:
        return False
    return not item.lock or (item.age is not None and item.age >= _window(item))


def expired(item: ImportItem, files: StagedFiles | None) -> bool:
    """Dead by Glance's own rule, with nothing on any node saying otherwise: its lock breakable
    (:func:`may_expire`), every node's staging directory read, and no file of its image written
    within the window on any of them. Anything unread keeps it running (unknown is never dead)."""
    return may_expire(item) and not staging_alive(item, files)


def staging_alive(item: ImportItem, files: StagedFiles | None) -> str:
    """Why the staging directories may show it alive ("" when every one was read and none holds a
    file of its image changed within the window)."""
    if files is None:
        return "the staging directories were not read"
    if files.unread:
        return f"staging directory unread on {', '.join(sorted(files.unread))}"
    ages = files.ages.get(item.image_id, {}) if item.image_id else {}
    young = sorted(n for n, a in ages.items() if a < _window(item))
    return f"a staging file of it changed {min(ages[n] for n in young) / 60:.0f} min ago on {', '.join(young)}" if young else ""


def _dead(item: ImportItem) -> str:
    if not item.lock:
        return (f"expired: its task has not changed for {(item.idle or 0) / 60:.0f} min (Glance breaks its lock after "
                f"{LOCK_EXPIRY[item.task_status] / 60:.0f} min) and no node's staging file of it changed since; not waited for")
    return f"expired: the image unchanged for {(item.age or 0) / 60:.0f} min and no node's staging file of it changed since; not waited for"


def for_node(work: ImportWork, node: str, hosts: StageHosts, files: StagedFiles | None = None) -> ImportWork:
    """The work that counts against ``node``: everything that names no node, what its stage host
    names it, and the running work whose only staging file is on it (``files``). An import dead by
    Glance's lock expiry (:func:`expired`) counts against no node; it is kept in ``expired``."""

    dead = tuple(replace(i, where=_dead(i)) for i in work.running if expired(i, files))
    gone = {(i.image_id, i.task_id) for i in dead}
    work = with_evidence(work, files)

    def mine(item: ImportItem, running: bool) -> ImportItem | None:
        owner = hosts.owner(item.stage_host) if item.stage_host else None
        if owner is not None:
            return replace(item, where="this node") if owner == node else None
        staged_on = files.owner(item.image_id, method=item.method, age=item.age) if files is not None and running else None
        if staged_on is None:
            return item
        return replace(item, where=f"staged on {staged_on}") if staged_on == node else None

    return ImportWork(tuple(i for i in (mine(x, True) for x in work.running if (x.image_id, x.task_id) not in gone) if i is not None),
                      tuple(i for i in (mine(x, False) for x in work.staged) if i is not None), work.truncated, work.expired + dead)


def with_evidence(work: ImportWork, files: StagedFiles | None) -> ImportWork:
    """Each running item whose lock Glance would break but is still counted, its note saying which
    staging evidence keeps it (``status`` and the drain view show why it is waited for)."""
    def kept(item: ImportItem) -> ImportItem:
        why = staging_alive(item, files) if may_expire(item) else ""
        return replace(item, note=f"{item.note}; {why}" if item.note else why) if why else item
    return replace(work, running=tuple(kept(i) for i in work.running))
