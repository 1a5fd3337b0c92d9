"""One HAProxy instance as ``init`` sees it: its backends, their servers and each server's address.

The address comes from the stats CSV's ``addr`` column, which HAProxy fills for servers only with
``stats show-legends`` (verified on 2.6: empty without it), else from the runtime API's
``show servers state`` (``srv_addr`` + ``srv_port``) when a runtime socket is given. A server
whose address neither tells is kept without one (the config asks about it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pydantic import ValidationError

from glance_tui.adapters.haproxy import HAProxy, shown_url
from glance_tui.adapters.haproxy_stats import TOTAL_ROWS, StatsFormatError, parse_servers_state
from glance_tui.config import LoadBalancerConfig
from glance_tui.errors import AdapterError, UsageError, quoted
from glance_tui.secrets import Secret

PLACEHOLDER_BACKEND = "init"  # the adapter wants a backend; init reads every row instead


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def __str__(self) -> str:
        return f"{self.url_host}:{self.port}"


@dataclass
class LBServer:
    name: str
    backend: str
    status: str
    address: Address | None
    backup: bool = False
    admin_state: str = ""  # READY / DRAIN / MAINT from the runtime API's `show servers state`; "" = not read


@dataclass
class StatsPage:
    """What one stats URL told: its backends (in page order) and their servers."""

    url: str
    runtime_socket: str | None
    backends: dict[str, list[LBServer]] = field(default_factory=dict)
    admin_ok: bool | None = None  # whether ``admin`` was shown to accept drain/ready (None: unknown)
    admin_detail: str = ""
    admin: str = "http"  # the channel init writes: the runtime API when it has level admin, else the stats page
    runtime_problem: str = ""  # why the given runtime API was not shown to work ("" when it was, or none was given)
    address_source: str = ""  # "stats CSV addr column", "runtime API", or "" when neither gave one
    info: dict[str, str] = field(default_factory=dict)  # the runtime API's `show info` ({} without a runtime socket)


def parse_address(text: str) -> Address | None:
    """``10.0.0.1:9292`` or ``[fd00::1]:9292`` → Address; None for anything else (``unix``, empty, junk)."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return Address(str(ipaddress.ip_address(host)), int(port))
    except ValueError:
        return None


def parse_state_addresses(text: str) -> dict[tuple[str, str], Address]:
    """``show servers state`` (every backend) → {(backend, server): address}; ValueError if it is not that answer."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2 or lines[0].strip() != "1" or not lines[1].startswith("# "):
        raise ValueError(f"unexpected answer to `show servers state`: {quoted(lines[0] if lines else '', 80)}")
    header = lines[1][2:].split()
    try:
        idx = [header.index(k) for k in ("be_name", "srv_name", "srv_addr", "srv_port")]
    except ValueError:
        raise ValueError("`show servers state` has no be_name, srv_name, srv_addr or srv_port field") from None
    out: dict[tuple[str, str], Address] = {}
    for ln in lines[2:]:
        fields = ln.split()
        if len(fields) <= max(idx):
            continue
        be, srv, addr, port = (fields[i] for i in idx)
        found = parse_address(f"{addr}:{port}")
        if found is not None:
            out[(be, srv)] = found
    return out


def parse_info(text: str) -> dict[str, str]:
    """``show info`` → {name: value} ("Version: 2.6.12-1" lines); {} for anything else."""
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            found[name.strip()] = value.strip()
    return found if "Version" in found else {}


def admin_states(text: str, backends: list[str]) -> dict[tuple[str, str], str]:
    """{(backend, server): READY/DRAIN/MAINT} from one ``show servers state`` answer; {} when it cannot be read."""
    found: dict[tuple[str, str], str] = {}
    for backend in backends:
        try:
            found.update({(backend, srv): state for srv, state in parse_servers_state(text, backend).items()})
        except StatsFormatError:
            return {}
    return found


# The adapter's fixes name config keys; on init's command line the operator set them with these flags.
_KEY_FLAGS = (("load_balancer.username and password_env/password_file", "--stats-user and --stats-password-env (or --stats-password-file)"),
              ("load_balancer.username and the password", "--stats-user and the password"),
              ("load_balancer.stats_url", "--stats-url"), ("load_balancer.timeout", "--timeout"),
              ("load_balancer.runtime_socket", "--runtime-socket"), ("point stats_url at", "point --stats-url at"))


def as_flags(fix: str) -> str:
    """An adapter's fix as init's operator can follow it: config keys named by the flags that set them."""
    for key, flag in _KEY_FLAGS:
        fix = fix.replace(key, flag)
    return fix


def lb_config(url: str, runtime_socket: str | None, auth: tuple[str, Secret] | None, timeout: float) -> LoadBalancerConfig:
    """The adapter's config for a stats URL given on the command line (the URL checked as the config checks it)."""
    try:
        cfg = LoadBalancerConfig(stats_url=url, backend=PLACEHOLDER_BACKEND, runtime_socket=runtime_socket, timeout=timeout,
                                 admin="runtime" if runtime_socket else "http")
    except ValidationError as exc:  # one line: the flag whose value is refused, and why
        what = exc.errors(include_url=False)[0]
        inner = what.get("ctx", {}).get("error")
        flag, value, example = (("--runtime-socket", runtime_socket or "", "unix:/run/haproxy/admin.sock")
                                if what.get("loc", ("",))[0] == "runtime_socket" else ("--stats-url", shown_url(url), "http://lb:8404/stats"))
        raise UsageError(f"{flag} {quoted(value, 120)}: {getattr(inner, 'what', None) or what.get('msg', 'invalid')}",
                         fix=getattr(inner, "fix", None) or f"give e.g. {example}") from None
    if auth:
        cfg._username, cfg._password = auth
    return cfg


async def read_page(cfg: LoadBalancerConfig) -> StatsPage:
    """Every backend and server of one instance; a page that cannot be read or is no stats CSV is a UsageError."""
    page = StatsPage(cfg.stats_url, cfg.runtime_socket)
    async with HAProxy(cfg) as lb:
        try:
            rows = await lb.all_rows()
        except AdapterError as exc:
            raise UsageError(exc.what, where=exc.where, fix=as_flags(exc.fix)) from None
        by_state: dict[tuple[str, str], Address] = {}
        admin: dict[tuple[str, str], str] = {}
        state_problem = ""
        if cfg.runtime_socket:
            try:
                state = await lb.servers_state()
                by_state = parse_state_addresses(state)
                admin = admin_states(state, sorted({row["pxname"] for row in rows}))
            except (AdapterError, ValueError) as exc:
                state_problem = getattr(exc, "what", str(exc))
            try:
                page.info = parse_info(await lb.show_info())
            except AdapterError:
                page.info = {}  # only comments come from it
        from_csv = False
        for row in rows:
            backend, server = row["pxname"], row["svname"]
            if server in TOTAL_ROWS:
                if server == "BACKEND":
                    page.backends.setdefault(backend, [])
                continue
            address = parse_address(row.get("addr", ""))
            from_csv = from_csv or address is not None
            address = address or by_state.get((backend, server))
            page.backends.setdefault(backend, []).append(
                LBServer(server, backend, row.get("status", ""), address, row.get("bck", "").strip() == "1", admin.get((backend, server), "")))
        page.address_source = "stats CSV addr column" if from_csv else ("runtime API `show servers state`" if by_state else "")
        if state_problem and not from_csv:
            raise UsageError(f"the runtime API did not give the server addresses: {state_problem}", where=cfg.runtime_socket or "",
                             fix="check --runtime-socket (HAProxy's `stats socket`), or add `stats show-legends` to the stats section")
    if page.backends:
        page.admin, page.admin_ok, page.admin_detail, page.runtime_problem = await _admin_channel(cfg, next(iter(page.backends)))
    return page


async def _admin_channel(cfg: LoadBalancerConfig, backend: str) -> tuple[str, bool | None, str, str]:
    """The channel drain/ready would go through, whether it was shown to accept them, what was seen, and
    why the given runtime API does not work ("" when it does).

    The runtime API (when given) is asked first — it tells a drained server exactly; then the stats
    page, so no channel is written as checked unless it answered as admin."""
    if not cfg.runtime_socket:
        return ("http", *await _admin_probe(cfg, backend, "http"), "")
    runtime_ok, runtime_detail = await _admin_probe(cfg, backend, "runtime")
    if runtime_ok:
        return "runtime", True, runtime_detail, ""
    http_ok, http_detail = await _admin_probe(cfg, backend, "http")
    if http_ok:
        return "http", True, http_detail, runtime_detail
    return ("runtime", False if runtime_ok is False or http_ok is False else None, f"runtime API: {runtime_detail}; stats page: {http_detail}",
            runtime_detail)


async def _admin_probe(cfg: LoadBalancerConfig, backend: str, channel: str) -> tuple[bool | None, str]:
    """Whether drain/ready would be accepted on ``channel`` (nothing is changed: a POST naming no server,
    ``show cli level``), or unknown."""
    probe_cfg = cfg.model_copy(update={"backend": backend, "backends": [backend], "admin": channel})
    try:
        async with HAProxy(probe_cfg) as lb:
            found = await lb.probe_admin()
    except AdapterError as exc:
        return None, exc.what
    return found.ok, found.detail + (f" — {found.fix}" if found.fix else "")
