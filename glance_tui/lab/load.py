"""Realistic Glance traffic through the load balancer, to prove an upgrade loses no request.

Concurrent clients list images, create + upload images (throttled, chunked bodies so a large
upload is still in flight when a node is drained), import images (``glance-direct``: create, stage,
import; ``web-download`` from the lab's slow HTTP server; a share of the clients' requests), and
download + verify them against the checksums computed locally and reported by Glance
(``checksum`` = md5, ``os_hash_value`` = sha512). Bounded by time and request count. At the end
every image the run created is re-read (an import once it has settled): any that is not
``active`` (or vanished) is reported.

Requests are spread over every frontend given (both HAProxy instances, internal and external);
:class:`Targets` can be switched mid-run, as a moving VIP switches clients to another instance.
Behind Keystone every request carries the token (``X-Auth-Token``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import random
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import httpx

from glance_tui.config import url_problem
from glance_tui.errors import GlanceTuiError, UsageError, quoted
from glance_tui.lab.imports import GLANCE_DIRECT, WEB_DOWNLOAD, ImportOutcome, import_body, settle
from glance_tui.lab.lab import SERVED_BY
from glance_tui.lab.slowserve import blob_digests, blob_url

KiB, MiB = 1024, 1024 * 1024
DEFAULT_SIZES = (64 * KiB, 1 * MiB, 4 * MiB)
CHUNK = 64 * KiB
# The clients' other operations in turn (30 % list, 30 % upload, 40 % download), counted, not
# rolled: an upload first, so that a short run always uploads and has something to download.
MIX = ("upload", "list", "download", "download", "upload", "list", "download", "upload", "list", "download")


def parse_size(text: str) -> int:
    """``"512"``, ``"64K"``, ``"4M"``, ``"1G"`` -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)i?B?\s*", text, re.IGNORECASE)
    if not match:
        raise UsageError(f"bad size {text!r}", fix="write a number with an optional K, M or G suffix, e.g. 4M")
    return int(float(match.group(1)) * {"": 1, "K": KiB, "M": MiB, "G": 1024 * MiB}[match.group(2).upper()])


def parse_rate(text: str) -> int | None:
    """``--upload-rate``: bytes/s, None for ``0`` (unthrottled). A rate that rounds to 0 bytes/s but
    is not 0 is refused: it would silently mean unthrottled."""
    rate = parse_size(text)
    if rate == 0 and float(re.sub(r"[^\d.]", "", text) or "0") != 0:
        raise UsageError(f"--upload-rate {text.strip()} is less than 1 byte/s", fix="use 0 for unthrottled, or a rate of at least 1 byte/s, e.g. 1M")
    return rate or None


def _reason(exc: BaseException) -> str:
    detail = str(exc) or str(exc.__cause__ or "") or "connection closed"
    return f"{type(exc).__name__}: {detail}"[:200]


@dataclass
class Failure:
    kind: str  # list | create | upload | download | verify
    reason: str
    at: float  # seconds since the start of the run
    image: str | None = None


@dataclass
class LoadReport:
    url: str
    clients: int
    duration: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)  # completed requests by kind (failed ones included)
    failures: list[Failure] = field(default_factory=list)
    checksum_mismatches: list[str] = field(default_factory=list)  # image ids
    images_created: int = 0
    images_not_active: dict[str, str] = field(default_factory=dict)  # image id -> status ("missing" if gone)
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
    imports: list[dict] = field(default_factory=list)  # ImportOutcome.to_json of every import the clients asked for

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def ok(self) -> bool:
        return not (self.failures or self.checksum_mismatches or self.images_not_active)

    def failures_by_reason(self) -> dict[str, int]:
        return dict(Counter(f"{f.kind}: {f.reason}" for f in self.failures).most_common())

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(total=self.total, ok=self.ok, failures_by_reason=self.failures_by_reason())
        return data

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.requests.items()))
        lines = [
            f"load: {self.total} requests in {self.duration:.1f}s from {self.clients} clients through {self.url} ({kinds})",
            f"  uploaded {self.bytes_uploaded / MiB:.1f} MiB in {self.images_created} images, downloaded {self.bytes_downloaded / MiB:.1f} MiB",
            f"  failed requests: {len(self.failures)}",
        ]
        lines += [f"    {n} × {reason}" for reason, n in self.failures_by_reason().items()]
        if self.imports:
            methods = Counter(i["method"] for i in self.imports)
            good = sum(i["status"] == "active" and i["checksum_match"] for i in self.imports)
            lines.append(f"  imports: {len(self.imports)} ({', '.join(f'{m} {n}' for m, n in sorted(methods.items()))}), "
                         f"{good} active with a matching checksum")
        lines.append(f"  checksum mismatches: {len(self.checksum_mismatches)}")
        lines.append(f"  images left non-active: {len(self.images_not_active)}")
        lines += [f"    {image}: {status}" for image, status in sorted(self.images_not_active.items())]
        return "\n".join(lines)


class Targets:
    """The frontends new requests go to; requests already sent finish where they are."""

    def __init__(self, urls: list[str] | str) -> None:
        self.urls = [u.rstrip("/") for u in ([urls] if isinstance(urls, str) else urls)]
        if not self.urls:
            raise GlanceTuiError("load needs at least one URL", fix="pass --url or start the lab")
        self.moved_at: float | None = None

    def pick(self, rng: random.Random) -> str:
        return rng.choice(self.urls)

    def move_to(self, urls: list[str]) -> None:
        """Every new request goes to ``urls`` from now on (a VIP moving to another instance)."""
        self.urls = [u.rstrip("/") for u in urls]
        self.moved_at = time.monotonic()


@dataclass
class _Image:
    id: str
    size: int
    md5: str
    sha512: str
    uploaded: bool = False


@dataclass
class ImportMix:
    """Which share of the clients' requests are imports, and where web-download reads from."""

    share: float = 0.0  # 0..1 of the requests; half of them web-download when there is a source
    web_url: str | None = None  # the lab's slow HTTP server (None: glance-direct only)
    web_rate: int = 4 * MiB  # bytes/s it serves each web-download at
    settle_timeout: float = 120.0  # how long the end of the run waits for an import to settle


class _Run:
    def __init__(self, targets: Targets, clients: int, sizes: tuple[int, ...], upload_rate: int | None, token: str | None,
                 mix: ImportMix | None = None) -> None:
        self.targets = targets
        self.mix = mix or ImportMix()
        self.imports: dict[str, ImportOutcome] = {}
        self.sizes = sizes
        self.upload_rate = upload_rate
        self.headers = {"X-Auth-Token": token} if token else {}
        self.report = LoadReport(url=", ".join(targets.urls), clients=clients)
        self.images: dict[str, _Image] = {}
        self.started = time.monotonic()
        self.count = 0
        self.rng = random.Random()  # which frontend each request goes to
        self.ops = 0  # the clients' operations so far: which are imports is counted, not rolled
        self.imports_started = 0  # glance-direct and web-download take turns
        self.others = 0  # the operations that are not imports so far: their kind is MIX in turn
        self.uploading = 0  # uploads under way (a download waits for one rather than find nothing)
        self.upload_ended = asyncio.Event()

    def _done(self, kind: str) -> None:
        self.report.requests[kind] = self.report.requests.get(kind, 0) + 1

    def _fail(self, kind: str, reason: str, image: str | None = None) -> None:
        self.report.failures.append(Failure(kind, reason, round(time.monotonic() - self.started, 3), image))

    @property
    def url(self) -> str:
        return self.targets.urls[0]

    async def _request(self, http: httpx.AsyncClient, kind: str, method: str, path: str, expect: int, image: str | None = None,
                       **kwargs) -> httpx.Response | None:
        self.count += 1
        try:
            resp = await http.request(method, self.targets.pick(self.rng) + path, **kwargs)
        except httpx.HTTPError as exc:
            self._done(kind)
            self._fail(kind, _reason(exc), image)
            return None
        self._done(kind)
        if resp.status_code != expect:
            self._fail(kind, f"HTTP {resp.status_code} {resp.reason_phrase}", image)
            return None
        return resp

    async def list_images(self, http: httpx.AsyncClient, rng: random.Random | None = None) -> None:
        await self._request(http, "list", "GET", "/v2/images?limit=20", 200)

    async def create_and_upload(self, http: httpx.AsyncClient, rng: random.Random) -> None:
        self.uploading += 1
        try:
            await self._create_and_upload(http, rng)
        finally:
            self.uploading -= 1
            self.upload_ended.set()

    async def _create_and_upload(self, http: httpx.AsyncClient, rng: random.Random) -> None:
        size = rng.choice(self.sizes)
        data = os.urandom(size)
        body = {"name": f"glance-tui-load-{rng.getrandbits(32):08x}", "disk_format": "raw", "container_format": "bare"}
        resp = await self._request(http, "create", "POST", "/v2/images", 201, json=body)
        if resp is None:
            return
        image = _Image(resp.json()["id"], size, hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest())
        self.images[image.id] = image
        self.report.images_created += 1
        resp = await self._request(http, "upload", "PUT", f"/v2/images/{image.id}/file", 204, image.id,
                                   content=self._body(data), headers={"Content-Type": "application/octet-stream"})
        if resp is None:
            return
        image.uploaded = True
        self.report.bytes_uploaded += size

    async def _create(self, http: httpx.AsyncClient, rng: random.Random) -> str | None:
        body = {"name": f"glance-tui-load-{rng.getrandbits(32):08x}", "disk_format": "raw", "container_format": "bare"}
        resp = await self._request(http, "create", "POST", "/v2/images", 201, json=body)
        if resp is None:
            return None
        self.report.images_created += 1
        return resp.json()["id"]

    async def glance_direct(self, http: httpx.AsyncClient, rng: random.Random) -> None:
        """create → stage (the data lands on the node that serves it) → import, all through the LB."""
        size = rng.choice(self.sizes)
        data = os.urandom(size)
        image = await self._create(http, rng)
        if image is None:
            return
        outcome = self.imports[image] = ImportOutcome(image, GLANCE_DIRECT, "", hashlib.md5(data).hexdigest(),
                                                      hashlib.sha512(data).hexdigest())
        resp = await self._request(http, "stage", "PUT", f"/v2/images/{image}/stage", 204, image,
                                   content=self._body(data), headers={"Content-Type": "application/octet-stream"})
        if resp is None:
            return
        outcome.node = resp.headers.get(SERVED_BY, "")
        self.report.bytes_uploaded += size
        await self._import(http, outcome)

    async def web_download(self, http: httpx.AsyncClient, rng: random.Random) -> None:
        """create → import from the slow server (the task runs on the node that takes the request)."""
        seed, size = f"load-{rng.getrandbits(48):012x}", rng.choice(self.sizes)
        md5, sha512 = await asyncio.to_thread(blob_digests, seed, size)
        image = await self._create(http, rng)
        if image is None:
            return
        outcome = self.imports[image] = ImportOutcome(image, WEB_DOWNLOAD, "", md5, sha512)
        await self._import(http, outcome, blob_url(self.mix.web_url or "", seed, size, self.mix.web_rate))

    async def _import(self, http: httpx.AsyncClient, outcome: ImportOutcome, uri: str | None = None) -> None:
        resp = await self._request(http, "import", "POST", f"/v2/images/{outcome.image}/import", 202, outcome.image,
                                   json=import_body(outcome.method, uri))
        if resp is not None:
            outcome.requested = time.time()
            outcome.node = outcome.node or resp.headers.get(SERVED_BY, "")

    async def _body(self, data: bytes):
        """Chunked, optionally throttled body: a big upload stays in flight long enough to matter."""
        for offset in range(0, len(data), CHUNK):
            chunk = data[offset:offset + CHUNK]
            yield chunk
            if self.upload_rate:
                await asyncio.sleep(len(chunk) / self.upload_rate)

    async def uploaded(self) -> list[_Image]:
        """The images a download can read; while there is none yet but an upload is under way, wait
        for it to end (the download is not turned into a list: a short run would download nothing)."""
        while not (ready := [i for i in self.images.values() if i.uploaded]) and self.uploading:
            self.upload_ended.clear()
            await self.upload_ended.wait()
        return ready

    async def download(self, http: httpx.AsyncClient, rng: random.Random) -> None:
        ready = await self.uploaded()
        if not ready:
            return await self.list_images(http)
        image = rng.choice(ready)
        self.count += 1
        md5, sha512, size = hashlib.md5(), hashlib.sha512(), 0
        try:
            async with http.stream("GET", f"{self.targets.pick(rng)}/v2/images/{image.id}/file") as resp:
                if resp.status_code != 200:
                    self._done("download")
                    return self._fail("download", f"HTTP {resp.status_code} {resp.reason_phrase}", image.id)
                async for chunk in resp.aiter_bytes():
                    md5.update(chunk)
                    sha512.update(chunk)
                    size += len(chunk)
                header_md5 = resp.headers.get("Content-MD5")
        except httpx.HTTPError as exc:
            self._done("download")
            return self._fail("download", _reason(exc), image.id)
        self._done("download")
        self.report.bytes_downloaded += size
        if md5.hexdigest() != image.md5 or sha512.hexdigest() != image.sha512 or (header_md5 and header_md5 != image.md5):
            self.report.checksum_mismatches.append(image.id)

    def _next_is_import(self) -> bool:
        """Exactly `share` of the operations are imports, spread evenly (a roll could give a short
        run none, or only one method, and a rehearsal would prove nothing about the other)."""
        op, self.ops = self.ops, self.ops + 1
        return int((op + 1) * self.mix.share) > int(op * self.mix.share)

    def _next_other(self):
        """The next operation that is not an import: MIX in turn."""
        turn, self.others = self.others, self.others + 1
        return {"list": self.list_images, "upload": self.create_and_upload, "download": self.download}[MIX[turn % len(MIX)]]

    def _next_import(self):
        """glance-direct first, then web-download (when the lab has a source), in turn."""
        turn, self.imports_started = self.imports_started, self.imports_started + 1
        return self.web_download if self.mix.web_url and turn % 2 == 1 else self.glance_direct

    async def client(self, index: int, deadline: float, max_requests: int | None, stop: asyncio.Event) -> None:
        rng = random.Random(index * 7919 + int(self.started))
        timeout = httpx.Timeout(120.0, connect=10.0)
        async with httpx.AsyncClient(timeout=timeout, headers=self.headers) as http:
            while not stop.is_set() and time.monotonic() < deadline and (max_requests is None or self.count < max_requests):
                await (self._next_import() if self._next_is_import() else self._next_other())(http, rng)

    async def verify(self, cleanup: bool, concurrency: int = 8) -> None:
        """Re-read every image this run created (a few at a time); report non-active/missing ones and checksum drift."""
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0), headers=self.headers) as http:
            async def one(image: _Image) -> None:
                async with gate:
                    await self._verify_one(http, image, cleanup)

            async def imported(outcome: ImportOutcome) -> None:
                async with gate:
                    await self._verify_import(http, outcome, cleanup)

            await asyncio.gather(*(one(image) for image in self.images.values()),
                                 *(imported(outcome) for outcome in self.imports.values()))
        self.report.imports = [o.to_json() for o in self.imports.values()]

    async def _verify_import(self, http: httpx.AsyncClient, outcome: ImportOutcome, cleanup: bool) -> None:
        """Wait for an accepted import to settle (one read for one never accepted), then judge it like an upload."""
        await settle(http, self.url, outcome, timeout=self.mix.settle_timeout if outcome.requested else 0)
        if outcome.status != "active":
            self.report.images_not_active[outcome.image] = outcome.status
        elif not outcome.checksum_match:
            self.report.checksum_mismatches.append(outcome.image)
        elif cleanup:
            try:
                await http.delete(f"{self.url}/v2/images/{outcome.image}")
            except httpx.HTTPError:
                pass  # cleanup only; the image was verified

    async def _verify_one(self, http: httpx.AsyncClient, image: _Image, cleanup: bool) -> None:
        try:
            resp = await http.get(f"{self.url}/v2/images/{image.id}")
        except httpx.HTTPError as exc:
            self.report.images_not_active[image.id] = f"unreadable ({type(exc).__name__})"
            return
        if resp.status_code == 404:
            self.report.images_not_active[image.id] = "missing"
            return
        if resp.status_code != 200:
            self.report.images_not_active[image.id] = f"unreadable (HTTP {resp.status_code})"
            return
        meta = resp.json()
        if meta.get("status") != "active":
            self.report.images_not_active[image.id] = str(meta.get("status"))
        elif meta.get("checksum") != image.md5 or meta.get("os_hash_value") not in (None, image.sha512):
            if image.id not in self.report.checksum_mismatches:
                self.report.checksum_mismatches.append(image.id)
        if cleanup and image.id not in self.report.images_not_active and image.id not in self.report.checksum_mismatches:
            try:
                await http.delete(f"{self.url}/v2/images/{image.id}")
            except httpx.HTTPError:
                pass  # cleanup only; the image was verified


MAX_CLIENTS = 256
MAX_DURATION = 86400.0


def check_load(*, clients: int, duration: float, sizes: tuple[int, ...] | list[int], max_requests: int | None = None,
               import_share: float = 0.0, urls: list[str] | tuple[str, ...] = ()) -> None:
    """The load's settings, each problem one line naming its flag (exit 2): checked before a lab is reset for it."""
    if not 1 <= clients <= MAX_CLIENTS:
        raise UsageError(f"--clients {clients} is not from 1 to {MAX_CLIENTS}", fix="use e.g. --clients 4")
    if not (math.isfinite(duration) and 0 < duration <= MAX_DURATION):
        raise UsageError(f"--duration {duration:g} is not a number of seconds from 0 to {MAX_DURATION:g}", fix="use e.g. --duration 30")
    if not sizes or min(sizes) < 1:
        raise UsageError("--size 0: an image needs at least one byte", fix="use e.g. --size 64K")
    if max_requests is not None and max_requests < 1:
        raise UsageError(f"--max-requests {max_requests} is not at least 1", fix="use e.g. --max-requests 1000")
    if not (math.isfinite(import_share) and 0 <= import_share < 1):
        raise UsageError(f"--imports {import_share:g} is not a share between 0 and 1", fix="use e.g. --imports 0.2, or 0 for none")
    for url in urls:
        problem = url_problem(url, "http://127.0.0.10:9292")
        if problem:
            raise UsageError(f"--url {quoted(url, 120)}: {problem}", fix="use e.g. --url http://127.0.0.10:9292")


async def run_load(
    url: str | list[str] | Targets,
    *,
    clients: int = 4,
    duration: float = 30.0,
    sizes: tuple[int, ...] | list[int] = DEFAULT_SIZES,
    stop_event: asyncio.Event | None = None,
    max_requests: int | None = 100_000,
    upload_rate: int | None = 4 * MiB,  # bytes/s per upload; None = as fast as possible
    cleanup: bool = True,
    token: str | None = None,  # Keystone token sent with every request
    imports: ImportMix | None = None,  # a share of the requests are imports (None: none)
) -> LoadReport:
    """Drive traffic at ``url`` (LB frontends: one, several, or switchable :class:`Targets`) until
    ``duration`` passes, ``stop_event`` is set or ``max_requests`` were sent; in-flight requests
    always finish. Returns the report."""
    check_load(clients=clients, duration=duration, sizes=sizes, max_requests=max_requests, import_share=imports.share if imports else 0.0)
    run = _Run(url if isinstance(url, Targets) else Targets(url), clients, tuple(sizes), upload_rate, token, imports)
    stop = stop_event or asyncio.Event()
    deadline = run.started + duration
    await asyncio.gather(*(run.client(i, deadline, max_requests, stop) for i in range(clients)))
    run.report.duration = round(time.monotonic() - run.started, 3)
    await run.verify(cleanup)
    return run.report


def write_json(report: LoadReport, path: str) -> None:
    """``--json FILE``: written as every document is (atomically, nothing clobbered)."""
    from glance_tui.outfile import write_output

    write_output(path, json.dumps(report.to_json(), indent=2) + "\n", where="--json")
