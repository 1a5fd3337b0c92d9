"""Is this address Glance? Glance's ``GET /versions``, asked of the server address itself.

Glance answers 200 (``/versions``) or 300 (``/``) with ``{"versions": [{"id": "v2.N", "status": …}, …]}``
and no ``min_version`` (Nova's and Cinder's microversioned lists carry one; Keystone's is
``{"versions": {"values": …}}``). Anything else — no answer, another status, another shape, more
than :data:`LIMIT` bytes — is "not shown to be Glance", with the reason.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass

import httpx

from glance_tui.errors import quoted
from glance_tui.init.lbread import Address

LIMIT = 64 * 1024
_GLANCE_ID = re.compile(r"v2\.\d{1,3}")


@dataclass(frozen=True)
class VersionsAnswer:
    glance: bool
    detail: str  # what was seen: "v2.15 CURRENT" or why it is not Glance


def glance_versions(body: bytes) -> tuple[bool, str]:
    """(True, "v2.15 CURRENT") for Glance's versions document, else (False, why not)."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False, "the answer is not JSON"
    versions = doc.get("versions") if isinstance(doc, dict) else None
    if not isinstance(versions, list) or not versions:
        return False, "the answer has no list of versions"
    ids = []
    for entry in versions:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or "min_version" in entry:
            return False, "the versions are not Glance's (no id, or a microversion range)"
        if not _GLANCE_ID.fullmatch(entry["id"]):
            return False, f"version {quoted(entry['id'], 20)} is not a Glance API version"
        ids.append(entry)
    current = next((e for e in ids if e.get("status") == "CURRENT"), ids[0])
    return True, f"{current['id']} {quoted(current.get('status', '?'), 20).strip(chr(39))}"


async def probe_versions(address: Address, timeout: float) -> VersionsAnswer:
    """Ask ``http://address/versions``; never raises for what the address does."""
    url = f"http://{address}/versions"
    try:
        async with asyncio.timeout(timeout):
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
                async with client.stream("GET", url, headers={"accept": "application/json", "accept-encoding": "identity"}) as answer:
                    body = b""
                    async for chunk in answer.aiter_bytes():
                        body += chunk
                        if len(body) > LIMIT:
                            return VersionsAnswer(False, f"{url} sent more than {LIMIT // 1024} KiB")
    except (TimeoutError, httpx.TimeoutException):
        return VersionsAnswer(False, f"{url} did not answer within {timeout:g}s")
    except httpx.HTTPError as exc:
        return VersionsAnswer(False, f"{url}: {(str(exc) or exc.__class__.__name__).splitlines()[0][:120]}")
    if answer.status_code not in (200, 300):
        return VersionsAnswer(False, f"{url} answered HTTP {answer.status_code}")
    ok, detail = glance_versions(body)
    return VersionsAnswer(ok, f"{url} answered {detail}" if ok else f"{url}: {detail}")
