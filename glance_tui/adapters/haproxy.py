"""HAProxy: read the stats CSV, drain/ready/maint a server, probe admin rights without acting.

Columns are read by name because their order changes between HAProxy versions. Admin actions
go through the stats page's POST form (``admin = "http"``) or the runtime API
(``admin = "runtime"``); HAProxy's terse answers (``;st=DENY``, ``Permission denied``...) become
one-line :class:`AdapterError`s saying what to change. The password is revealed only per request.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from dataclasses import dataclass

import httpx

from glance_tui.config import LoadBalancerConfig
from glance_tui.errors import AdapterError

ACTIONS = ("drain", "ready", "maint")
STATES = ("UP", "DOWN", "DRAIN", "MAINT", "NOLB", "NOCHECK", "UNKNOWN")

# What each ``;st=`` code of the stats page's admin form means, and how to fix it.
_POST_CODES: dict[str, tuple[str, str]] = {
    "DENY": ("the stats page refused admin actions", "add `stats admin if TRUE` (or an ACL that matches this client) to the stats section"),
    "ERRP": ("HAProxy rejected the request parameters", "check load_balancer.backend and the node's lb_server"),
    "NONE": ("HAProxy applied nothing (no server selected)", "check the node's lb_server"),
    "EXCD": ("the admin request was too large for HAProxy's buffer", "use the runtime API (admin = \"runtime\")"),
    "PART": ("HAProxy applied the action only partially", "retry, then inspect the stats page"),
    "UNKN": ("HAProxy reported an unexpected error", "see HAProxy's log; or use the runtime API"),
}


@dataclass(frozen=True)
class ServerStats:
    """One server row of the backend, as the upgrade needs it."""

    server: str
    status: str
    state: str
    scur: int
    qcur: int
    rate: int
    check_status: str
    weight: int
    backend: str = ""

    @property
    def in_flight(self) -> int:
        return self.scur + self.qcur

    @property
    def in_rotation(self) -> bool:
        return self.state in ("UP", "NOCHECK") and self.weight > 0

    @classmethod
    def from_row(cls, row: dict[str, str]) -> "ServerStats":
        status = row.get("status", "").strip()
        return cls(
            server=row.get("svname", ""),
            status=status,
            state=normalise_status(status),
            scur=_int(row.get("scur")),
            qcur=_int(row.get("qcur")),
            rate=_int(row.get("rate")),
            check_status=row.get("check_status", "").lstrip("* ").strip(),
            weight=_int(row.get("weight")),
            backend=row.get("pxname", ""),
        )


@dataclass(frozen=True)
class AdminProbe:
    ok: bool
    channel: str
    detail: str
    fix: str = ""


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def normalise_status(status: str) -> str:
    """``"UP 1/2"`` → UP, ``"MAINT (via b/s)"`` → MAINT, ``"no check"`` → NOCHECK, else UNKNOWN."""
    text = status.strip().upper()
    if text.startswith("NO CHECK"):
        return "NOCHECK"
    head = text.split(" ", 1)[0]
    return head if head in STATES else "UNKNOWN"


def parse_csv(text: str) -> list[dict[str, str]]:
    """Rows of HAProxy's stats CSV keyed by column name; raises ValueError if it is not one."""
    if not text.startswith("# "):
        raise ValueError("not an HAProxy stats CSV (the first line must start with '# ')")
    reader = csv.reader(io.StringIO(text[2:]))
    header = [name.strip() for name in next(reader)]
    return [{k: v for k, v in zip(header, row) if k} for row in reader if row]


def parse_socket(spec: str) -> tuple[str, str | int]:
    """``unix:/p`` or ``/p`` → ("unix", path); ``tcp:HOST:PORT`` → (HOST, PORT)."""
    if spec.startswith("tcp:"):
        host, _, port = spec[4:].rpartition(":")
        if not host or not port.isdigit():
            raise AdapterError("runtime socket must look like tcp:HOST:PORT", where=spec, fix="fix load_balancer.runtime_socket")
        return host.strip("[]"), int(port)
    return "unix", spec.removeprefix("unix:")


class HAProxy:
    """Async client for one HAProxy backend (``cfg.backend``)."""

    def __init__(self, cfg: LoadBalancerConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.cfg = cfg
        self.backend = cfg.backend
        self.csv_url = f"{cfg.stats_url};csv"
        self._http = httpx.AsyncClient(
            timeout=cfg.timeout, verify=cfg.verify_tls, transport=transport, follow_redirects=False
        )

    async def __aenter__(self) -> "HAProxy":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ stats (read-only)
    async def all_rows(self) -> list[dict[str, str]]:
        """Every row of the stats CSV (frontends, backends, servers) keyed by column name."""
        response = await self._request("GET", self.csv_url)
        self._raise_for_status(response, self.csv_url)
        try:
            return parse_csv(response.text)
        except ValueError as exc:
            raise AdapterError(str(exc), where=self.csv_url, fix="load_balancer.stats_url must be the `stats uri` page, e.g. http://lb:8404/stats") from None

    async def servers(self, backend: str | None = None) -> dict[str, ServerStats]:
        """The servers of ``backend`` (default ``cfg.backend``) keyed by name; AdapterError if it does not exist."""
        backend = backend or self.backend
        rows = await self.all_rows()
        mine = [r for r in rows if r.get("pxname") == backend]
        if not mine:
            known = sorted({r["pxname"] for r in rows if r.get("svname") == "BACKEND"})
            raise AdapterError(
                f"HAProxy has no backend {backend!r} (backends: {', '.join(known) or 'none'})",
                where=self.cfg.stats_url,
                fix="set load_balancer.backend to the backend that serves Glance",
            )
        return {r["svname"]: ServerStats.from_row(r) for r in mine if r.get("svname") not in ("FRONTEND", "BACKEND")}

    # ------------------------------------------------------------------ admin
    async def drain(self, server: str) -> None:
        """Stop sending new requests to ``server``; in-flight ones finish."""
        await self._admin(server, "drain")

    async def ready(self, server: str) -> None:
        """Put ``server`` back into rotation (from DRAIN or MAINT)."""
        await self._admin(server, "ready")

    async def maint(self, server: str) -> None:
        """Maintenance: no new requests and no health checks."""
        await self._admin(server, "maint")

    async def _admin(self, server: str, action: str) -> None:
        await self.admin(server, action)

    async def admin(self, server: str, action: str, backend: str | None = None) -> None:
        """drain / ready / maint ``server`` in ``backend`` (default ``cfg.backend``)."""
        if action not in ACTIONS:
            raise ValueError(action)
        backend = backend or self.backend
        if self.cfg.admin == "runtime":
            answer = await self._runtime(f"set server {backend}/{server} state {action}")
            if answer:
                raise self._runtime_error(answer, action, server, backend)
            return
        code = await self._post({"s": server, "action": action}, backend)
        if code == "DONE":
            return
        what, fix = _POST_CODES.get(code, (f"unexpected answer ;st={code}", "inspect the stats page"))
        if code == "ERRP":
            what, fix = await self._explain_errp(server, backend)
        raise AdapterError(f"{action} {backend}/{server}: {what} (st={code})", where=self.cfg.stats_url, fix=fix)

    async def probe_admin(self) -> AdminProbe:
        """Whether admin actions would be accepted, without changing anything.

        http: a POST naming the backend but no server answers ``NONE`` when admin is allowed,
        ``DENY`` when it is not (verified on HAProxy 2.6). runtime: ``show cli level``.
        """
        channel = self.cfg.admin
        if channel == "runtime":
            level = (await self._runtime("show cli level")).strip()
            if level == "admin":
                return AdminProbe(True, channel, f"runtime API at {self.cfg.runtime_socket} has level admin")
            if level in ("operator", "user"):
                return AdminProbe(
                    False, channel, f"runtime API at {self.cfg.runtime_socket} has level {level}, drain/ready need admin",
                    fix="use `stats socket ... level admin` in haproxy.cfg",
                )
            return AdminProbe(False, channel, f"unexpected answer to `show cli level`: {level[:80]!r}", fix="HAProxy ≥ 2.0 is needed for the runtime API channel")
        code = await self._post({"action": "ready"})
        if code == "NONE":
            return AdminProbe(True, channel, f"stats page {self.cfg.stats_url} accepts admin actions")
        if code == "ERRP":
            what, fix = await self._explain_errp(None)
            return AdminProbe(False, channel, what, fix=fix)
        what, fix = _POST_CODES.get(code, (f"unexpected answer ;st={code}", "inspect the stats page"))
        return AdminProbe(False, channel, f"{what} (st={code})", fix=fix)

    async def _explain_errp(self, server: str | None, backend: str | None = None) -> tuple[str, str]:
        """ERRP does not say what was wrong: look at the stats to tell backend from server."""
        backend = backend or self.backend
        try:
            rows = await self.all_rows()
        except AdapterError:
            return _POST_CODES["ERRP"]
        if not any(r.get("pxname") == backend and r.get("svname") == "BACKEND" for r in rows):
            return f"HAProxy has no backend {backend!r}", "set load_balancer.backend to the backend that serves Glance"
        if server is not None and not any(r.get("pxname") == backend and r.get("svname") == server for r in rows):
            return f"backend {backend!r} has no server {server!r}", "set the node's lb_server to its `server` name in haproxy.cfg"
        return _POST_CODES["ERRP"]

    # ------------------------------------------------------------------ transports
    def _auth(self) -> tuple[str, str] | None:
        auth = self.cfg.auth
        return (auth[0], auth[1].reveal()) if auth else None

    async def _request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        try:
            return await self._http.request(method, url, auth=self._auth(), **kwargs)  # type: ignore[arg-type]
        except httpx.TimeoutException:
            raise AdapterError(
                f"HAProxy stats page did not answer within {self.cfg.timeout:g}s", where=url,
                fix="check that HAProxy is up and reachable, or raise load_balancer.timeout",
            ) from None
        except httpx.HTTPError as exc:
            reason = str(exc) or exc.__class__.__name__
            raise AdapterError(
                f"cannot reach the HAProxy stats page ({reason})", where=url,
                fix="check load_balancer.stats_url and that HAProxy's stats listener is running",
            ) from None

    def _raise_for_status(self, response: httpx.Response, url: str) -> None:
        if response.status_code == 401:
            if self.cfg.auth:
                raise AdapterError("the stats page refused the configured credentials (HTTP 401)", where=url,
                                   fix="check load_balancer.username and the password against `stats auth` in haproxy.cfg")
            raise AdapterError("the stats page requires a login (HTTP 401)", where=url,
                               fix="set load_balancer.username and password_env/password_file")
        if response.status_code != 200:
            raise AdapterError(f"the stats page answered HTTP {response.status_code}", where=url,
                               fix="load_balancer.stats_url must be HAProxy's `stats uri`, e.g. http://lb:8404/stats")

    async def _post(self, fields: dict[str, str], backend: str | None = None) -> str:
        """POST the stats admin form for ``backend``; return the ``st`` code of the redirect."""
        url = self.cfg.stats_url
        response = await self._request("POST", url, data={"b": backend or self.backend, **fields})
        if response.status_code != 303:
            self._raise_for_status(response, url)
            raise AdapterError("the stats page did not redirect after an admin POST", where=url, fix="check load_balancer.stats_url")
        match = re.search(r";st=([A-Z]+)", response.headers.get("location", ""))
        if not match:
            raise AdapterError(f"unexpected redirect {response.headers.get('location')!r} after an admin POST", where=url, fix="check load_balancer.stats_url")
        return match.group(1)

    async def _runtime(self, command: str) -> str:
        """Send one command to the runtime API and return its answer (HAProxy closes after it)."""
        spec = self.cfg.runtime_socket or ""
        if not spec:
            raise AdapterError("no runtime socket configured", where="load_balancer", fix='set runtime_socket = "unix:/run/haproxy/admin.sock" or "tcp:HOST:PORT"')
        host, target = parse_socket(spec)
        writer = None
        try:
            async with asyncio.timeout(self.cfg.timeout):
                if host == "unix":
                    reader, writer = await asyncio.open_unix_connection(str(target))
                else:
                    reader, writer = await asyncio.open_connection(host, int(target))
                writer.write(command.encode() + b"\n")
                await writer.drain()
                data = await reader.read()
        except TimeoutError:
            raise AdapterError(f"HAProxy runtime API did not answer within {self.cfg.timeout:g}s", where=spec,
                               fix="check that HAProxy is up, or raise load_balancer.timeout") from None
        except OSError as exc:
            raise AdapterError(f"cannot connect to the HAProxy runtime API ({exc.strerror or exc})", where=spec,
                               fix="check load_balancer.runtime_socket, that HAProxy declares it with `stats socket`, and its permissions") from None
        finally:
            if writer is not None:
                writer.close()
        return data.decode(errors="replace").strip()

    def _runtime_error(self, answer: str, action: str, server: str, backend: str | None = None) -> AdapterError:
        backend = backend or self.backend
        first = answer.splitlines()[0]
        doing = f"{action} {backend}/{server}"
        spec = self.cfg.runtime_socket or ""
        if first.startswith("No such backend"):
            return AdapterError(f"{doing}: HAProxy has no backend {backend!r}", where=spec, fix="set load_balancer.backend to the backend that serves Glance")
        if first.startswith("No such server"):
            return AdapterError(f"{doing}: backend {backend!r} has no server {server!r}", where=spec, fix="set the node's lb_server to its `server` name in haproxy.cfg")
        if first.startswith("Permission denied"):
            return AdapterError(f"{doing}: the runtime API refused (socket level below admin)", where=spec, fix="use `stats socket ... level admin` in haproxy.cfg")
        if first.startswith("Unknown command"):
            return AdapterError(f"{doing}: this HAProxy does not know the command", where=spec, fix="HAProxy ≥ 1.6 is needed for `set server ... state`")
        return AdapterError(f"{doing}: HAProxy answered {first[:120]!r}", where=spec, fix="see HAProxy's log")
