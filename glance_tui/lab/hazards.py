"""The hazards a rehearsal injects into the lab while the tool runs, as a real cloud would.

Each hazard is timed from the tool's own journal (e.g. "the first drain was issued"), so it
lands mid-drain whatever the machine's speed. Everything here acts from outside the tool:
the load clients, the lab's nodes, one instance's stats listener.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from glance_tui.journal import read_records
from glance_tui.lab.imports import GLANCE_DIRECT, WEB_DOWNLOAD, ImportOutcome, ImportRefused, create, request_import, settle, stage
from glance_tui.lab.lab import SERVED_BY
from glance_tui.lab.slowserve import blob_digests, blob_url

SCENARIOS: dict[str, str] = {
    "default": "no hazard: the guide's procedure under load",
    "prestaged": "every node's package upgraded before the run, its old process still running",
    "autostart": "a node's upgrade starts its service, as a Debian/Ubuntu postinst does",
    "failover": "mid-drain, every client moves from instance A to instance B (a VIP moving)",
    "stats-outage": "one instance's stats endpoint stops answering for several seconds during a drain wait",
    "long-request": "a large image downloaded slowly over a keep-alive connection while its node is drained",
    "lb-reload": "instance A reloaded (no server-state-file) right after the NEW NODE's drain and again while a node is upgraded",
    "import": "a slow web-download import runs on the NEW NODE as its drain starts; an image staged on the last node is "
              "imported through the LB as that node's drain starts",
    "stale-image": "container nodes: every node's new image pulled and its container restarted, still on the old image",
}
# The scenarios `--naive` runs beside the drained procedure (the same load and, for import, the same imports).
NAIVE_SCENARIOS = frozenset({"default", "import"})
# Scenarios of one node kind only (the others need every kind).
KIND_ONLY: dict[str, str] = {"stale-image": "kolla", "prestaged": "packages", "autostart": "packages"}
# Where halting (node out of rotation, a clear reason) is as good an answer as finishing.
MAY_STOP = frozenset({"stats-outage", "stale-image"})
OUTAGE_SECONDS = 8.0


async def wait_for_record(journal: Path, match: Callable[[dict[str, Any]], bool], *, interval: float = 0.2) -> dict[str, Any]:
    """The first journal record that ``match``es, as soon as it is written."""
    while True:
        for rec in read_records(journal):
            if match(rec):
                return rec
        await asyncio.sleep(interval)


def is_drain(rec: dict[str, Any]) -> bool:
    return rec.get("event") == "lb" and rec.get("action") == "drain"


def is_step7_upgrade(rec: dict[str, Any]) -> bool:
    """Step 7's node is stopped and out of rotation, and its upgrade starts."""
    return rec.get("event") == "action.start" and rec.get("action") == "upgrade" and str(rec.get("step", "")).startswith("node:")


def is_first_step(rec: dict[str, Any]) -> bool:
    """The procedure's first step starts (the NEW NODE's drain follows within seconds)."""
    return rec.get("event") == "step.start"


def is_drain_wait(rec: dict[str, Any]) -> bool:
    """The tool starts waiting for a drained node's in-flight requests to finish."""
    return rec.get("event") == "action.start" and rec.get("action") == "wait-drained"


def lb_states(stats_urls: dict[str, str], backends: list[str], timeout: float = 5.0) -> dict[str, dict[str, str]]:
    """node (server) -> {"lb/backend": status} read straight from every instance's stats CSV."""
    found: dict[str, dict[str, str]] = {}
    for lb, url in stats_urls.items():
        try:
            text = httpx.get(url + ";csv", timeout=timeout).text
        except httpx.HTTPError as exc:
            for server in found:
                found[server][lb] = f"unreadable ({type(exc).__name__})"
            continue
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        for row in rows:
            if row.get("pxname") in backends and row.get("svname") not in ("FRONTEND", "BACKEND"):
                found.setdefault(row["svname"], {})[f"{lb}/{row['pxname']}"] = row.get("status", "?")
    return found


@dataclass
class LongDownload:
    """One large image, downloaded slowly through the LB over a keep-alive connection, then a
    second request on the same connection. Its server is read from the LB's response header."""

    url: str
    token: str | None
    size: int
    rate: int  # bytes/s the client reads
    image: str = ""
    server: str = ""
    started: float = 0.0  # epoch seconds
    finished: float = 0.0
    ok: bool = False
    detail: str = ""
    second_request: str = ""  # status of the follow-up request on the same connection
    _md5: str = field(default="", repr=False)

    async def prepare(self) -> None:
        """Create and upload the image at full speed (before the run)."""
        headers = {"X-Auth-Token": self.token} if self.token else {}
        data = os.urandom(self.size)
        self._md5 = hashlib.md5(data).hexdigest()
        async with httpx.AsyncClient(timeout=httpx.Timeout(300.0), headers=headers) as http:
            resp = await http.post(f"{self.url}/v2/images", json={"name": "glance-tui-long-request", "disk_format": "raw",
                                                                   "container_format": "bare"})
            resp.raise_for_status()
            self.image = resp.json()["id"]
            resp = await http.put(f"{self.url}/v2/images/{self.image}/file", content=data,
                                  headers={"Content-Type": "application/octet-stream"})
            resp.raise_for_status()

    async def run(self, served: asyncio.Future) -> None:
        """Download slowly; resolve ``served`` with the server's name as soon as the headers arrive."""
        headers = {"X-Auth-Token": self.token} if self.token else {}
        md5, size = hashlib.md5(), 0
        self.started = time.time()
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), headers=headers,
                                         limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as http:
                async with http.stream("GET", f"{self.url}/v2/images/{self.image}/file") as resp:
                    self.server = resp.headers.get(SERVED_BY, "")
                    if not served.done():
                        served.set_result(self.server)
                    if resp.status_code != 200:
                        self.detail = f"HTTP {resp.status_code}"
                        return
                    async for chunk in resp.aiter_bytes(64 * 1024):
                        md5.update(chunk)
                        size += len(chunk)
                        await asyncio.sleep(len(chunk) / self.rate)
                self.finished = time.time()
                again = await http.get(f"{self.url}/v2/images/{self.image}")  # same keep-alive connection
                self.second_request = f"HTTP {again.status_code} from {again.headers.get(SERVED_BY, '?')}"
                if again.status_code != 200:
                    self.detail = f"the follow-up request on the same connection answered {again.status_code}"
                    return
        except httpx.HTTPError as exc:
            self.finished = time.time()
            self.detail = f"{type(exc).__name__}: {exc}"[:200]
            if not served.done():
                served.set_result("")
            return
        if size != self.size or md5.hexdigest() != self._md5:
            self.detail = f"checksum mismatch ({size} of {self.size} bytes)"
            return
        self.ok = True

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("token", None)
        data.pop("_md5", None)
        data["seconds"] = round(self.finished - self.started, 2) if self.finished else None
        return data


@dataclass
class ImportHazard:
    """The ``import`` scenario's own imports: a slow web-download sent straight to the NEW NODE
    (its task runs there, invisible to the LB), and an image staged on another node whose
    import goes through the LB (a node that does not hold the data proxies it there, bypassing
    the LB). Each failed request is kept in its outcome's ``detail``."""

    lb_url: str
    token: str | None
    web_url: str
    web_node: tuple[str, str]  # (name, api_url) of the NEW NODE
    stage_node: tuple[str, str]  # (name, api_url) of the node that holds the staged data
    web_size: int
    web_rate: int
    stage_size: int
    outcomes: list[ImportOutcome] = field(default_factory=list)
    # each accepted import is watched from its request on, so ``settled`` is when it really ended
    _watchers: dict[str, asyncio.Task] = field(default_factory=dict, repr=False)
    WATCH_LIMIT = 3600.0

    def _watch(self, outcome: ImportOutcome) -> None:
        async def watch() -> None:
            async with self._client() as http:
                await settle(http, self.lb_url, outcome, timeout=self.WATCH_LIMIT)

        self._watchers[outcome.image] = asyncio.create_task(watch())

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=10.0),
                                 headers={"X-Auth-Token": self.token} if self.token else {})

    async def stage(self) -> ImportOutcome:
        """Create the image and stage its data on the stage node itself (before the run)."""
        data = os.urandom(self.stage_size)
        name, url = self.stage_node
        outcome = ImportOutcome("", GLANCE_DIRECT, name, hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest())
        self.outcomes.append(outcome)
        async with self._client() as http:
            try:
                outcome.image = await create(http, url, "glance-tui-import-staged")
                await stage(http, url, outcome.image, data)
                outcome.status = "uploading"
            except (httpx.HTTPError, ImportRefused) as exc:
                outcome.detail = f"staging on {name} failed: {exc}"[:200]
        return outcome

    async def import_staged(self, outcome: ImportOutcome) -> str:
        """Ask for the staged image's import through the LB; returns the node that answered."""
        if not outcome.image or outcome.detail:
            return ""
        async with self._client() as http:
            try:
                served = await request_import(http, self.lb_url, outcome.image, GLANCE_DIRECT)
            except (httpx.HTTPError, ImportRefused) as exc:
                outcome.detail = f"the import request through the LB failed: {exc}"[:200]
                return ""
        outcome.requested = time.time()
        self._watch(outcome)
        return served

    async def start_web_download(self) -> ImportOutcome:
        """Create an image and import it by web-download on the NEW NODE itself (its API URL)."""
        seed = f"import-{os.urandom(6).hex()}"
        md5, sha512 = await asyncio.to_thread(blob_digests, seed, self.web_size)
        name, url = self.web_node
        outcome = ImportOutcome("", WEB_DOWNLOAD, name, md5, sha512)
        self.outcomes.append(outcome)
        async with self._client() as http:
            try:
                outcome.image = await create(http, url, "glance-tui-import-web-download")
                await request_import(http, url, outcome.image, WEB_DOWNLOAD, blob_url(self.web_url, seed, self.web_size, self.web_rate))
            except (httpx.HTTPError, ImportRefused) as exc:
                outcome.detail = f"web-download on {name} failed: {exc}"[:200]
                return outcome
        outcome.requested = time.time()
        self._watch(outcome)
        return outcome

    async def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the accepted imports' watchers (what they saw last stands);
        read the others once."""
        watchers = list(self._watchers.values())
        if watchers:
            await asyncio.wait(watchers, timeout=timeout)
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        async with self._client() as http:
            await asyncio.gather(*(settle(http, self.lb_url, o, timeout=0) for o in self.outcomes if o.image and not o.requested))
