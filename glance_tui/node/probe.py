"""Read one node (processes, listeners on its API port, install time, version, health URL) and
turn the readings into its :class:`~glance_tui.node.facts.NodeFacts`."""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import re
from dataclasses import replace
from typing import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import httpx

from glance_tui.adapters.ssh import CommandResult
from glance_tui.commands import NodeCommands, RemoteCommand
from glance_tui.config import CommandsConfig, Config
from glance_tui.errors import GlanceTuiError
from glance_tui.kinds import kolla_image, osa_target_venv
from glance_tui.node.containers import image_version, judge_container, reading_of
from glance_tui.node.facts import NodeFacts
from glance_tui.node.venvs import deployed, judge_venv
from glance_tui.node.readings import Listener, Proc, parse_epoch, parse_listeners, parse_processes
from glance_tui.node.runtimes import compile_patterns, default_patterns
from glance_tui.node.verdict import Health, Readings, Verdict, judge, recognised
from glance_tui.releases import parse_version, release_of

Run = Callable[[RemoteCommand], Awaitable[CommandResult]]
ReadHealth = Callable[[str], Awaitable[Health]]
_WILDCARDS = ("0.0.0.0", "::", "*")


def patterns_of(commands: CommandsConfig) -> list[re.Pattern[str]]:
    """The configured ``process_patterns``, or the runtimes' defaults plus each of ``services``."""
    return _compiled(tuple(commands.process_patterns or default_patterns(commands.services)))


def glance_processes(ps_output: str, commands: CommandsConfig) -> list[Proc]:
    """The processes of a ``processes`` answer that ``commands``' patterns recognise as Glance."""
    return recognised(parse_processes(ps_output)[1], patterns_of(commands))


@functools.lru_cache(maxsize=32)
def _compiled(patterns: tuple[str, ...]) -> list[re.Pattern[str]]:
    return compile_patterns(patterns)


def api_address(api_url: str) -> tuple[str, int]:
    """The host and port of a node's ``api_url`` (port 80/443 when the URL names none)."""
    parts = urlsplit(api_url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def on_api(listeners: Sequence[Listener], host: str, port: int) -> list[Listener]:
    """The sockets that can serve ``host:port``: that port, on that IP or a wildcard (every
    address, when ``host`` is a name: which IPs it means is not known here)."""
    try:
        ip = str(ipaddress.ip_address(host))
    except ValueError:
        ip = None
    return [s for s in listeners if s.port == port and (ip is None or s.address in _WILDCARDS or s.address == ip)]


def _failed(what: str, result: CommandResult) -> str:
    return f"{what} command failed (exit {result.exit_status}): {' | '.join(result.tail(2))}"


def _refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or getattr(seen, "errno", None) == errno.ECONNREFUSED:
            return True
        seen = seen.__cause__ or seen.__context__
    return "connection refused" in str(exc).lower()


async def read_health(url: str, timeout: float) -> Health:
    """GET the node's own health URL: a refusal is the only answer that says "nothing serves"."""
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            resp = await client.get(url)
    except httpx.ConnectError as exc:
        return Health(url, refused=True) if _refused(exc) else Health(url, error=f"{exc.__class__.__name__}: {exc}"[:120])
    except httpx.HTTPError as exc:
        return Health(url, error=exc.__class__.__name__)
    return Health(url, status=resp.status_code)


async def probe_node(config: Config, name: str, run: Run, read_health: ReadHealth) -> NodeFacts:
    """Every reading of ``name`` at once, then one verdict (never raises for the node's sake)."""
    node = config.node(name)
    cmds = NodeCommands(config, name)
    override = cmds.is_running()
    host, port = api_address(node.api_url)
    kolla = cmds.kind == "kolla"
    try:
        # A Kolla node: its container and the target image in place of the version and install time.
        first, procs, listen, at, flag = await asyncio.gather(
            run(cmds.container_reads()[0]) if kolla else run(cmds.installed_version()), run(cmds.processes()), run(cmds.listeners()),
            run(cmds.container_reads()[1]) if kolla else run(cmds.installed_at()),
            run(override) if override else asyncio.sleep(0, None),
        )
    except GlanceTuiError as exc:
        return NodeFacts(name, node.ssh_host, error=exc.message, running_error=exc.message, stale_error=exc.message, reason=exc.message)
    r = Readings(name, port)
    if not procs.ok:
        r = _with(r, procs_error=_failed("processes", procs))
    else:
        try:
            clock, found = parse_processes(procs.stdout)
            r = _with(r, procs=tuple(found), clock=clock)
        except ValueError as exc:
            r = _with(r, procs_error=str(exc))
    if not listen.ok:
        r = _with(r, listeners_error=_failed("listeners", listen))
    else:
        try:
            r = _with(r, listeners=tuple(on_api(parse_listeners(listen.stdout), host, port)))
        except ValueError as exc:
            r = _with(r, listeners_error=str(exc))
    if kolla:
        return await _container_facts(config, name, run, cmds, r, first, at, read_health, override, flag)
    ver = first
    if at.ok:
        try:
            r = _with(r, installed_at=parse_epoch(at.stdout))
        except ValueError as exc:
            r = _with(r, installed_at_error=f"installed_at: {exc}")
    else:
        r = _with(r, installed_at_error=_failed("installed_at", at))
    verdict = await _host_verdict(config, name, r, read_health, override, flag)
    if cmds.kind == "osa":
        osa = config.osa_of(name)
        verdict = judge_venv(verdict, str(osa.venv_root), str(osa.venv_tag))
        current, note = deployed(ver.stdout, ver.ok, osa_target_venv(osa))
        return replace(_facts(config, name, node.ssh_host, ver, cmds, r, verdict), deployed_current=current, deployed_note=note)
    return _facts(config, name, node.ssh_host, ver, cmds, r, verdict)


async def _host_verdict(config: Config, name: str, r: Readings, read_health: ReadHealth, override: RemoteCommand | None, flag: CommandResult | None) -> Verdict:
    """What the host's readings say (its health URL asked only when nothing matches and nothing listens)."""
    patterns = patterns_of(config.commands)
    verdict = judge(r, patterns)
    if verdict.running is None and not r.procs_error and not r.listeners_error and not r.listeners and r.health is None:
        health = await read_health(config.node(name).api_url + config.policy.health_paths[0])
        verdict = judge(_with(r, health=health), patterns)
    return _with_override(verdict, override, flag)


async def _container_facts(config: Config, name: str, run: Run, cmds: NodeCommands, r: Readings, box: CommandResult, image: CommandResult,
                           read_health: ReadHealth, override: RemoteCommand | None, flag: CommandResult | None) -> NodeFacts:
    """A Kolla node: the host's verdict checked against its container; the version is its image's."""
    k = config.kolla_of(name)
    reading = reading_of(str(k.container), kolla_image(k), box, image)
    verdict = judge_container(await _host_verdict(config, name, r, read_health, override, flag), r, reading)
    if reading.container is None:
        ver = CommandResult("", 1, "", reading.note, 0.0, False)
    else:
        out, error = await image_version(run, cmds, reading.container.image)
        ver = CommandResult("", 0 if not error else 1, out, error, 0.0, False)
    facts = _facts(config, name, config.node(name).ssh_host, ver, cmds, r, verdict)
    return replace(facts, deployed_current=reading.deployed_current, deployed_note=reading.note,
                   version_error=facts.version_error if reading.container is not None else reading.note)


def _with(r: Readings, **changes: object) -> Readings:
    return replace(r, **changes)  # type: ignore[arg-type]


def _with_override(v: Verdict, override: RemoteCommand | None, flag: CommandResult | None) -> Verdict:
    """The operator's ``is_running`` must agree with the readings for "stopped"; its "running"
    counts on its own (the safe side); anything else, or a disagreement, is unknown."""
    if override is None or flag is None:
        return v
    if flag.exit_status == 0 and v.running is not False:
        return v if v.running else replace(v, running=True, reason=f"{v.reason}; `{override.command}` says running")
    if flag.exit_status == 1 and v.running is False:
        return v
    said = {0: "running", 1: "stopped"}.get(flag.exit_status, f"exited {flag.exit_status}")
    return replace(v, running=None, reason=f"{v.reason}; `{override.command}` says {said}: the readings disagree or are unknown")


def _facts(config: Config, name: str, address: str, ver: CommandResult, cmds: NodeCommands, r: Readings, v: Verdict) -> NodeFacts:
    version = parse_version(ver.stdout) if ver.ok else None
    if not ver.ok:
        version_error = f"version command failed (exit {ver.exit_status}): {' | '.join(ver.tail(2))}"
    elif version is None:
        version_error = f"no version in the output of `{cmds.installed_version().command}`"
    else:
        version_error = ""
    if v.running is None:
        stale, stale_error = None, v.reason
    elif v.running is False:
        stale, stale_error = False, ""
    else:
        stale, stale_error = v.stale, v.stale_error
    return NodeFacts(
        name,
        address,
        version=version,
        release=release_of(version),
        running=v.running,
        version_error=version_error,
        running_error=v.reason if v.running is None else "",
        installed_at=r.installed_at,
        started_at=v.started_at,
        stale=stale,
        stale_error=stale_error if stale is None else "",
        pids=tuple(p.pid for p in v.tree),
        clock=r.clock,
        code=v.code if v.running else None,
        reason=v.reason,
    )
