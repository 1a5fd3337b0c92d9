"""HAProxy: read the stats CSV, drain/ready/maint a server, probe admin rights without acting.

Every request has a total deadline (``load_balancer.timeout``), not only httpx's per-chunk
timeouts: a stats page that trickles one byte a second fails like a silent one. What is read is
bounded (:data:`MAX_STATS_BYTES`) and parsed strictly by :mod:`.haproxy_stats`. Admin actions
go through the stats page's POST form (``admin = "http"``) or the runtime API
(``admin = "runtime"``); HAProxy's terse answers (``;st=DENY``, ``Permission denied``...) become
one-line :class:`AdapterError`s saying what to change. The password is revealed only per request.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

import httpx

from glance_tui.adapters.haproxy_stats import (  # noqa: F401  (re-exported: the adapter's result types)
    ADMIN_STATES,
    STATES,
    ServerStats,
    StatsFormatError,
    backends_in,
    normalise_status,
    parse_csv,
    parse_servers_state,
    servers_of,
)
from glance_tui.config import LoadBalancerConfig
from glance_tui.errors import AdapterError, clipped, quoted

ACTIONS = ("drain", "ready", "maint")
MAX_STATS_BYTES = 4 * 1024 * 1024  # a real stats page of a few hundred servers is well under 1 MiB
MAX_RUNTIME_BYTES = 4 * 1024 * 1024
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,255}")  # HAProxy's proxy/server name characters; nothing for a socket command to split on
STATS_FIX = "load_balancer.stats_url must be HAProxy's `stats uri` page, e.g. http://lb:8404/stats"

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
class LBProcess:
    """Which HAProxy process answered: its pid and how long it has run.

    A reload (Kolla and OpenStack-Ansible reload on every configuration push) starts a new
    process; without a ``server-state-file`` it has forgotten every DRAIN/MAINT, and the old
    process keeps serving its open transfers, invisible in the new one's stats.
    """

    pid: int
    uptime: float  # seconds, as HAProxy reports it (whole seconds)
    read_at: float  # time.monotonic() of the read

    @property
    def started(self) -> float:
        """When it started, on this machine's monotonic clock (± 1 s: HAProxy says whole seconds)."""
        return self.read_at - self.uptime

    def same_process(self, other: "LBProcess") -> bool:
        return self.pid == other.pid and abs(self.started - other.started) <= 2.5

    def describe(self) -> str:
        return f"pid {self.pid}, up {self.uptime:.0f}s"


_HTML_PID = re.compile(r"<b>pid = </b>\s*(\d{1,10})\s*\(process #")
_HTML_UPTIME = re.compile(r"<b>uptime = </b>\s*(\d{1,6})d (\d{1,2})h(\d{1,2})m(\d{1,2})s")
PROCESS_HEAD_BYTES = 256 * 1024  # the process block is at the top of the page, before any table


def parse_process_html(text: str, read_at: float) -> LBProcess:
    """The stats page's "pid = N (process #1, ...)" and "uptime = 0d 0h01m02s"; ValueError otherwise."""
    pid, uptime = _HTML_PID.search(text), _HTML_UPTIME.search(text)
    if not pid or not uptime:
        raise ValueError(f"the stats page shows no {'pid' if not pid else 'uptime'} line")
    d, h, m, sec = (int(g) for g in uptime.groups())
    return LBProcess(int(pid.group(1)), float(((d * 24 + h) * 60 + m) * 60 + sec), read_at)


@dataclass(frozen=True)
class AdminProbe:
    ok: bool
    channel: str
    detail: str
    fix: str = ""


def parse_socket(spec: str) -> tuple[str, str | int]:
    """``unix:/p`` or ``/p`` → ("unix", path); ``tcp:HOST:PORT`` → (HOST, PORT)."""
    if spec.startswith("tcp:"):
        host, _, port = spec[4:].rpartition(":")
        if not host or not port.isdigit():
            raise AdapterError("runtime socket must look like tcp:HOST:PORT", where=spec, fix="fix load_balancer.runtime_socket")
        return host.strip("[]"), int(port)
    return "unix", spec.removeprefix("unix:")


def shown_url(url: str) -> str:
    """``url`` without any ``user:password@`` (config refuses them; this keeps one out of a message anyway)."""
    return re.sub(r"(?<=//)[^/?#@]*@", "", url, count=1)


_DEADLINE: ContextVar[float | None] = ContextVar("haproxy_deadline", default=None)


@contextmanager
def one_deadline(seconds: float) -> Iterator[float]:
    """Every HAProxy request made inside shares one deadline (loop time), e.g. a read that also
    asks the runtime API: together they take at most ``seconds``, not ``seconds`` each."""
    deadline = asyncio.get_running_loop().time() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(deadline if outer is None else min(outer, deadline))
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


class HAProxy:
    """Async client for one HAProxy backend (``cfg.backend``)."""

    def __init__(self, cfg: LoadBalancerConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.cfg = cfg
        self.backend = cfg.backend
        self.csv_url = f"{cfg.stats_url};csv"
        self._http = httpx.AsyncClient(
            timeout=cfg.timeout, verify=cfg.verify_tls, transport=transport, follow_redirects=False,
            headers={"accept-encoding": "identity"},
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
        response = await self._fetch("GET", self.csv_url, limit=MAX_STATS_BYTES)
        self._raise_for_status(response, self.csv_url)
        try:
            text = response.content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AdapterError(f"not an HAProxy stats CSV: byte {exc.start} is not UTF-8 text", where=shown_url(self.csv_url), fix=STATS_FIX) from None
        try:
            return parse_csv(text)
        except StatsFormatError as exc:
            raise AdapterError(f"not an HAProxy stats CSV: {exc}", where=shown_url(self.csv_url), fix=STATS_FIX) from None

    async def process(self) -> LBProcess:
        """Which HAProxy process serves this instance now: the top of the stats page (its process
        block), read like the CSV — same URL, credentials and deadline, so it fails only when the
        stats page itself does (the runtime socket is needed only for hidden admin states)."""
        import time

        response = await self._fetch("GET", self.cfg.stats_url, limit=PROCESS_HEAD_BYTES, until=_HTML_UPTIME)
        self._raise_for_status(response, self.cfg.stats_url)
        try:
            return parse_process_html(response.content.decode("utf-8", errors="replace"), time.monotonic())
        except ValueError as exc:
            raise AdapterError(f"cannot tell which HAProxy process answers: {exc}", where=shown_url(self.cfg.stats_url),
                               fix="point stats_url at HAProxy's own stats page") from None

    async def servers(self, backend: str | None = None) -> dict[str, ServerStats]:
        """The servers of ``backend`` (default ``cfg.backend``) keyed by name; AdapterError if it does not exist."""
        backend = backend or self.backend
        rows = await self.all_rows()
        found = servers_of(rows, backend)
        if found is None:
            raise self._no_backend(backend, rows)
        return found

    async def read(self, backends: list[str]) -> dict[str, dict[str, ServerStats] | AdapterError]:
        """One stats read for several backends: backend -> its servers, or the error for that backend.

        A server whose row cannot tell its admin state (DOWN hides DRAIN) gets it from the runtime
        API's ``show servers state`` when a runtime socket is configured; if that fails, its admin
        state stays UNKNOWN and the reason is in its ``problems``.
        """
        rows = await self.all_rows()
        out: dict[str, dict[str, ServerStats] | AdapterError] = {}
        for backend in backends:
            found = servers_of(rows, backend)
            out[backend] = self._no_backend(backend, rows) if found is None else found
        for backend, found in out.items():
            if isinstance(found, dict) and any(s.admin_state == "UNKNOWN" for s in found.values()):
                if self.cfg.runtime_socket:
                    out[backend] = await self._with_runtime_admin(backend, found)
                else:
                    out[backend] = {n: _add_problem(s, _hidden(s)) if s.admin_state == "UNKNOWN" else s for n, s in found.items()}
        return out

    async def admin_states(self, backend: str | None = None) -> dict[str, str]:
        """{server: READY/DRAIN/MAINT/UNKNOWN} from the runtime API's ``show servers state`` (exact)."""
        backend = backend or self.backend
        answer = await self._runtime(f"show servers state {backend}")
        try:
            return parse_servers_state(answer, backend)
        except StatsFormatError as exc:
            raise AdapterError(str(exc), where=self.cfg.runtime_socket or "", fix="check load_balancer.runtime_socket and backends") from None

    async def servers_state(self) -> str:
        """The runtime API's ``show servers state`` for every backend, as HAProxy prints it (addresses, admin states)."""
        return await self._runtime("show servers state")

    async def show_info(self) -> str:
        """The runtime API's ``show info`` ("Name: value" lines: version, uptime, ...), as HAProxy prints it."""
        return await self._runtime("show info")

    async def _with_runtime_admin(self, backend: str, found: dict[str, ServerStats]) -> dict[str, ServerStats]:
        try:
            states = await self.admin_states(backend)
        except AdapterError as exc:
            why = f"admin state unknown: {exc.what}"
            return {n: s if s.admin_state != "UNKNOWN" else _add_problem(s, why) for n, s in found.items()}
        out = {}
        for name, stats in found.items():
            exact = states.get(name)
            out[name] = stats.with_admin_state(exact) if exact else _add_problem(stats, "admin state unknown: not in `show servers state`")
        return out

    def _no_backend(self, backend: str, rows: list[dict[str, str]]) -> AdapterError:
        return AdapterError(
            f"HAProxy has no backend {backend!r} (backends: {clipped(', '.join(backends_in(rows))) or 'none'})",
            where=shown_url(self.cfg.stats_url),
            fix="set load_balancer.backends to the backends that serve Glance",
        )

    # ------------------------------------------------------------------ admin
    async def drain(self, server: str) -> None:
        """Stop sending new requests to ``server``; in-flight ones finish."""
        await self.admin(server, "drain")

    async def ready(self, server: str) -> None:
        """Put ``server`` back into rotation (from DRAIN or MAINT)."""
        await self.admin(server, "ready")

    async def maint(self, server: str) -> None:
        """Maintenance: no new requests and no health checks."""
        await self.admin(server, "maint")

    async def admin(self, server: str, action: str, backend: str | None = None) -> None:
        """drain / ready / maint ``server`` in ``backend`` (default ``cfg.backend``)."""
        if action not in ACTIONS:
            raise ValueError(action)
        backend = backend or self.backend
        for what, name in (("backend", backend), ("server", server)):
            if not _NAME.fullmatch(name):
                raise AdapterError(f"refusing to {action} {backend!r}/{server!r}: the {what} name has characters HAProxy names cannot have",
                                   where=self.cfg.name, fix="check load_balancer.backends and the node's lb_server")
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
        raise AdapterError(f"{action} {backend}/{server}: {what} (st={code})", where=shown_url(self.cfg.stats_url), fix=fix)

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
            return AdminProbe(False, channel, f"unexpected answer to `show cli level`: {quoted(level, 80)}", fix="HAProxy ≥ 2.0 is needed for the runtime API channel")
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
    def _deadline(self) -> float:
        """This request's deadline: ``cfg.timeout`` from now, or sooner if a shared one says so."""
        own = asyncio.get_running_loop().time() + self.cfg.timeout
        shared = _DEADLINE.get()
        return own if shared is None else min(own, shared)

    def _auth(self) -> tuple[str, str] | None:
        auth = self.cfg.auth
        return (auth[0], auth[1].reveal()) if auth else None

    async def _request(self, method: str, url: str, **kwargs: object) -> "_Answer":
        return await self._fetch(method, url, limit=64 * 1024, **kwargs)

    async def _fetch(self, method: str, url: str, *, limit: int, until: "re.Pattern[str] | None" = None, **kwargs: object) -> "_Answer":
        """One request, read completely within ``cfg.timeout`` in total and at most ``limit`` bytes
        (with ``until``: read only up to where that pattern has appeared)."""
        timeout = self.cfg.timeout
        received = 0
        _check_url(url)
        try:
            async with asyncio.timeout_at(self._deadline()):
                async with self._http.stream(method, url, auth=self._auth(), **kwargs) as response:  # type: ignore[arg-type]
                    chunks = []
                    async for chunk in response.aiter_bytes():
                        received += len(chunk)
                        if received > limit:
                            raise AdapterError(
                                f"the stats page sent more than {limit // 1024 // 1024 or limit // 1024}"
                                f" {'MiB' if limit >= 1024 * 1024 else 'KiB'}; that is not an HAProxy answer", where=shown_url(url), fix=STATS_FIX,
                            )
                        chunks.append(chunk)
                        if until is not None and until.search(b"".join(chunks).decode("utf-8", errors="replace")):
                            break
                    body = b"".join(chunks)
        except (TimeoutError, httpx.TimeoutException):
            what = f"did not finish its answer within {timeout:g}s (only {received} byte{'s' if received != 1 else ''} came)" if received else f"did not answer within {timeout:g}s"
            raise AdapterError(
                f"HAProxy stats page {what}", where=shown_url(url),
                fix="check that HAProxy is up and reachable, or raise load_balancer.timeout",
            ) from None
        except httpx.InvalidURL:
            raise AdapterError("the stats URL is not a valid URL", where=shown_url(url), fix="correct load_balancer.stats_url, e.g. http://lb:8404/stats") from None
        except httpx.DecodingError:
            raise AdapterError("the stats page's answer could not be decoded (its content-encoding is broken)", where=shown_url(url), fix=STATS_FIX) from None
        except httpx.HTTPError as exc:
            reason = (str(exc) or exc.__class__.__name__).splitlines()[0][:200]
            what = "cannot reach the HAProxy stats page" if isinstance(exc, httpx.ConnectError) else "the connection to the HAProxy stats page failed"
            raise AdapterError(
                f"{what} ({reason})", where=shown_url(url),
                fix="check load_balancer.stats_url and that HAProxy's stats listener is running",
            ) from None
        return _Answer(response.status_code, response.headers, body)

    def _raise_for_status(self, response: "_Answer", url: str) -> None:
        if response.status_code == 401:
            if self.cfg.auth:
                raise AdapterError("the stats page refused the configured credentials (HTTP 401)", where=shown_url(url),
                                   fix="check load_balancer.username and the password against `stats auth` in haproxy.cfg")
            raise AdapterError("the stats page requires a login (HTTP 401)", where=shown_url(url),
                               fix="set load_balancer.username and password_env/password_file")
        if response.status_code != 200:
            raise AdapterError(f"the stats page answered HTTP {response.status_code}", where=shown_url(url),
                               fix="load_balancer.stats_url must be HAProxy's `stats uri`, e.g. http://lb:8404/stats")

    async def _post(self, fields: dict[str, str], backend: str | None = None) -> str:
        """POST the stats admin form for ``backend``; return the ``st`` code of the redirect."""
        url = self.cfg.stats_url
        response = await self._request("POST", url, data={"b": backend or self.backend, **fields})
        if response.status_code != 303:
            self._raise_for_status(response, url)
            raise AdapterError("the stats page did not redirect after an admin POST", where=shown_url(url), fix="check load_balancer.stats_url")
        match = re.search(r";st=([A-Z]+)", response.headers.get("location", ""))
        if not match:
            raise AdapterError(f"unexpected redirect {quoted(response.headers.get('location', ''))} after an admin POST", where=shown_url(url),
                               fix="check load_balancer.stats_url")
        return match.group(1)

    async def _runtime(self, command: str) -> str:
        """Send one command to the runtime API and return its answer (HAProxy closes after it)."""
        spec = self.cfg.runtime_socket or ""
        if not spec:
            raise AdapterError("no runtime socket configured", where="load_balancer", fix='set runtime_socket = "unix:/run/haproxy/admin.sock" or "tcp:HOST:PORT"')
        host, target = parse_socket(spec)
        writer = None
        try:
            async with asyncio.timeout_at(self._deadline()):
                if host == "unix":
                    reader, writer = await asyncio.open_unix_connection(str(target))
                else:
                    reader, writer = await asyncio.open_connection(host, int(target))
                writer.write(command.encode() + b"\n")
                await writer.drain()
                data = b""
                while chunk := await reader.read(65536):
                    data += chunk
                    if len(data) > MAX_RUNTIME_BYTES:
                        raise AdapterError(f"the runtime API sent more than {MAX_RUNTIME_BYTES // 1024 // 1024} MiB for `{command.split()[0]} …`",
                                           where=spec, fix="check load_balancer.runtime_socket")
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
        return AdapterError(f"{doing}: HAProxy answered {quoted(first, 120)}", where=spec, fix="see HAProxy's log")



@dataclass(frozen=True)
class _Answer:
    """An HTTP answer read completely (within the deadline and the size bound)."""

    status_code: int
    headers: httpx.Headers
    content: bytes


def _check_url(url: str) -> None:
    """What httpx would only find mid-connect (as an ExceptionGroup), said plainly beforehand."""
    fix = "correct load_balancer.stats_url, e.g. http://lb:8404/stats"
    try:
        parsed = httpx.URL(url)
        host = parsed.host  # decodes an IDNA A-label: ValueError for one that is not valid
    except (httpx.InvalidURL, ValueError):
        raise AdapterError("the stats URL is not a valid URL", where=shown_url(url), fix=fix) from None
    if parsed.scheme not in ("http", "https") or not host:
        raise AdapterError("the stats URL needs http:// or https:// and a host", where=shown_url(url), fix=fix)
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise AdapterError(f"the stats URL's port {parsed.port} is not between 1 and 65535", where=shown_url(url), fix=fix)


def _hidden(stats: ServerStats) -> str:
    return f"admin state unknown: status {quoted(stats.status, 40)} does not show whether it is drained (set runtime_socket to read it)"


def _add_problem(stats: ServerStats, why: str) -> ServerStats:
    return replace(stats, problems=(*stats.problems, why))
