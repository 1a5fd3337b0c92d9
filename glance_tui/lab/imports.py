"""Image import as a user drives it: ``glance-direct`` (create → stage → import) and
``web-download`` (create → import from the lab's slow HTTP server), then waiting for the import to
settle and checking what Glance stored against checksums known in advance.

An import answers 202 at once and runs inside one API worker afterwards, so its outcome is read
from the image: ``active`` with the right ``checksum``/``os_hash_value``, or stuck ``importing``
(the worker was killed), or back to ``queued``/``uploading`` with ``os_glance_failed_import``.
Used by ``lab load`` (some clients import) and the ``import`` rehearsal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

import httpx

from glance_tui.lab.lab import SERVED_BY

GLANCE_DIRECT, WEB_DOWNLOAD = "glance-direct", "web-download"
SETTLED = ("active", "killed", "deleted")


@dataclass
class ImportOutcome:
    """One import: what was asked where, and how it ended (the rehearsal report's ``imports``)."""

    image: str
    method: str
    node: str  # where the data was staged (glance-direct) or the import task ran (web-download), as the LB or the URL said
    md5: str
    sha512: str
    status: str = "not requested"
    checksum_match: bool = False
    requested: float = 0.0  # epoch seconds the import was accepted (0: never)
    # epoch seconds it was first seen settled (0: never): the rehearsal's own imports are watched
    # from their request on; the load's are read when the run ends
    settled: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "active" and self.checksum_match

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("md5")
        data.pop("sha512")
        data["seconds"] = round(self.settled - self.requested, 2) if self.settled and self.requested else None
        return data


async def create(http: httpx.AsyncClient, url: str, name: str) -> str:
    resp = await http.post(f"{url}/v2/images", json={"name": name, "disk_format": "raw", "container_format": "bare"})
    _expect(resp, 201, "create")
    return resp.json()["id"]


async def stage(http: httpx.AsyncClient, url: str, image: str, body: bytes | AsyncIterator[bytes]) -> str:
    """PUT the data into the staging store of the node that serves ``url``; returns that node's name
    (the LB's header, else the URL)."""
    resp = await http.put(f"{url}/v2/images/{image}/stage", content=body, headers={"Content-Type": "application/octet-stream"})
    _expect(resp, 204, "stage")
    return resp.headers.get(SERVED_BY, url)


def import_body(method: str, uri: str | None = None) -> dict:
    """The body of ``POST /v2/images/{id}/import``."""
    return {"method": {"name": method, **({"uri": uri} if uri else {})}}


async def request_import(http: httpx.AsyncClient, url: str, image: str, method: str, uri: str | None = None) -> str:
    """POST the import (202: accepted, it runs afterwards); returns who answered (as :func:`stage`)."""
    resp = await http.post(f"{url}/v2/images/{image}/import", json=import_body(method, uri))
    _expect(resp, 202, f"import ({method})")
    return resp.headers.get(SERVED_BY, url)


async def settle(http: httpx.AsyncClient, url: str, outcome: ImportOutcome, *, timeout: float, interval: float = 0.5) -> None:
    """Poll the image until its import has settled or ``timeout`` passes; record status and checksum."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = await http.get(f"{url}/v2/images/{outcome.image}")
        except httpx.HTTPError as exc:
            outcome.status, outcome.detail = "unreadable", f"{type(exc).__name__}: {exc}"[:200]
        else:
            if resp.status_code == 404:
                outcome.status = "missing"
                return
            if resp.status_code != 200:
                outcome.status, outcome.detail = "unreadable", f"HTTP {resp.status_code}"
            else:
                meta = resp.json()
                outcome.status = str(meta.get("status"))
                failed = meta.get("os_glance_failed_import") or ""
                if failed:
                    outcome.detail = f"os_glance_failed_import={failed}"
                outcome.checksum_match = meta.get("checksum") == outcome.md5 and meta.get("os_hash_value") == outcome.sha512
                if outcome.status in SETTLED or (failed and outcome.status != "importing"):
                    outcome.settled = time.time()
                    return
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)


class ImportRefused(Exception):
    """A step of an import answered something else than Glance's documented success."""


def _expect(resp: httpx.Response, status: int, what: str) -> None:
    if resp.status_code != status:
        raise ImportRefused(f"{what}: HTTP {resp.status_code} {resp.reason_phrase}")
