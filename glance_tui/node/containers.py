"""The running code of a container node (Kolla): the image the container was created from.

A container is bound to its image: pulling a new image under the same tag changes nothing until
the container is re-created, and restarting it runs the old image again. So the code a Kolla
node runs is decided by image id — the container's ``Image`` against the target image's ``Id``
(docker writes ``sha256:<hex>``, podman bare hex: both normalised) — never by timestamps.

The container's own state must agree with what the host shows (the Glance processes, the API
port, the health URL): a running container whose processes are not what serves, or a stopped
one while something serves, is unknown, and unknown blocks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from glance_tui.commands import NodeCommands, RemoteCommand, quote_args
from glance_tui.errors import GlanceTuiError
from glance_tui.kinds import kolla_image, spare_name
from glance_tui.node.container_args import create_args
from glance_tui.node.facts import CODE_INSTALLED, CODE_OLD
from glance_tui.node.readings import Proc
from glance_tui.node.verdict import Readings, Verdict

_HEX = re.compile(r"[0-9a-f]{12,128}")
_MISSING = re.compile(r"no such (?:container|object|image)|image not known|not found", re.IGNORECASE)
SHORT = 12  # how many hex digits name an image in messages


def image_id(raw: Any) -> str:
    """An image id as bare lowercase hex (docker's ``sha256:`` prefix dropped); ValueError otherwise."""
    if not isinstance(raw, str):
        raise ValueError(f"the image id is not a string: {str(raw)[:40]!r}")
    text = raw.strip().lower().removeprefix("sha256:")
    if not _HEX.fullmatch(text):
        raise ValueError(f"not an image id: {raw[:80]!r}")
    return text


def missing(stderr: str, stdout: str = "") -> bool:
    """The engine's answer means "there is no such container/image" (a known absence)."""
    return bool(_MISSING.search(stderr)) and stdout.strip() in ("", "[]")


def _one_object(stdout: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(stdout)
    except ValueError:
        raise ValueError(f"{what}: not JSON: {stdout.strip()[:60]!r}") from None
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        return data[0]
    raise ValueError(f"{what}: expected a JSON array of one object, got {type(data).__name__}{f' of {len(data)}' if isinstance(data, list) else ''}")


def _table(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not an object")
    return value


@dataclass(frozen=True)
class Container:
    """What ``{engine} container inspect`` says about the node's container."""

    name: str
    image: str  # bare hex id of the image it was created from
    running: bool
    status: str
    pid: int | None  # the container's first process on the host (None when not running)
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)


def parse_container(stdout: str) -> Container:
    """The container from inspect JSON (docker or podman); ValueError when it is not one."""
    obj = _one_object(stdout, "container inspect")
    state = _table(obj, "State")
    running, paused, restarting, pid = (state.get(k) for k in ("Running", "Paused", "Restarting", "Pid"))
    if not isinstance(running, bool) or not isinstance(pid, int) or isinstance(pid, bool) or pid < 0:
        raise ValueError("container inspect: State.Running/State.Pid missing or not a boolean/number")
    if paused is True or restarting is True:
        raise ValueError(f"container inspect: the container is {'paused' if paused else 'restarting'}")
    if running and pid == 0:
        raise ValueError("container inspect: State.Running but no State.Pid")
    name = obj.get("Name")
    if not isinstance(name, str) or not name.strip("/"):
        raise ValueError("container inspect: no Name")
    return Container(name.lstrip("/"), image_id(obj.get("Image")), running, str(state.get("Status", "")), pid if running else None, obj)


def parse_image(stdout: str) -> tuple[str, dict[str, Any]]:
    """``(id, its Config)`` from ``{engine} image inspect`` JSON; ValueError when it is not one image."""
    obj = _one_object(stdout, "image inspect")
    return image_id(obj.get("Id")), _table(obj, "Config")


@dataclass(frozen=True)
class ContainerReading:
    """A Kolla node's container and target image as read, each known, absent or unknown (``*_error``)."""

    container_name: str
    target: str  # "repository:tag"
    container: Container | None = None  # None and no error: there is no such container
    container_error: str = ""
    target_id: str | None = None  # None and no error: the target image is not on the node
    target_error: str = ""

    @property
    def deployed_current(self) -> bool | None:
        """The container was created from the target image (None = cannot tell)."""
        if self.container_error or self.target_error:
            return None
        return self.container is not None and self.target_id is not None and self.container.image == self.target_id

    @property
    def note(self) -> str:
        """The container's image in words (for gates and the status table)."""
        c = self.container
        if self.container_error:
            return f"cannot read container {self.container_name}: {self.container_error}"
        if c is None:
            return f"no container {self.container_name} on the node"
        if self.target_error:
            return f"container {self.container_name} on image {c.image[:SHORT]}; cannot read the target image {self.target}: {self.target_error}"
        if self.target_id is None:
            return f"container {self.container_name} on image {c.image[:SHORT]}; the target image {self.target} is not on the node (pull it)"
        if c.image == self.target_id:
            return f"container {self.container_name} on the target image {self.target} ({c.image[:SHORT]})"
        return f"container {self.container_name} on image {c.image[:SHORT]}, not the target image {self.target} ({self.target_id[:SHORT]}): re-create it (upgrade)"


def descends(procs: Sequence[Proc], pid: int, root: int) -> bool:
    """``pid`` is ``root`` or one of its descendants in ``procs``."""
    parents = {p.pid: p.ppid for p in procs}
    seen = set()
    while pid not in seen:
        if pid == root:
            return True
        seen.add(pid)
        if pid not in parents or pid <= 1:
            return False
        pid = parents[pid]
    return False


def judge_container(v: Verdict, r: Readings, c: ContainerReading) -> Verdict:
    """The host's verdict checked against the container: both must say the same, and the code of a
    running node is the container's image (target or old), never the start times."""
    unknown = replace(v, running=None, code=None, stale=None)
    if c.container_error:
        return replace(unknown, reason=f"{v.reason}; {c.note}", stale_error=c.note)
    if v.running is None:
        return v
    box = c.container
    if box is None or not box.running:
        if v.running:
            said = c.note if box is None else f"container {box.name} is {box.status or 'not running'}"
            why = f"{v.reason}; but {said}: something else serves Glance here"
            return replace(unknown, reason=why, stale_error=why)
        return replace(v, reason=f"{v.reason}; {c.note}" if box is None else f"{v.reason}; container {box.name} is {box.status or 'stopped'}")
    if not v.running:
        why = f"{v.reason}; but container {box.name} is running (pid {box.pid}): the readings disagree"
        return replace(unknown, reason=why, stale_error=why)
    outside = [p.pid for p in v.tree if box.pid is None or not descends(r.procs, p.pid, box.pid)]
    if outside:
        why = f"{v.reason}; but pid {', '.join(map(str, outside))} serve(s) outside container {box.name} (pid {box.pid})"
        return replace(unknown, reason=why, stale_error=why)
    current = c.deployed_current
    reason = f"{v.reason}; {c.note}"
    if current is None:
        return replace(v, reason=reason, code=None, stale=None, stale_error=c.note)
    return replace(v, reason=reason, code=CODE_INSTALLED if current else CODE_OLD, stale=not current, stale_error="")


def _failed(what: str, result: Any) -> str:
    return f"{what} failed (exit {result.exit_status}): {' | '.join(result.tail(2))}"


def reading_of(name: str, target: str, box: Any, image: Any) -> ContainerReading:
    """The two inspect answers (``CommandResult``s) as one :class:`ContainerReading`."""
    c = ContainerReading(name, target)
    if box.ok:
        try:
            c = replace(c, container=parse_container(box.stdout))
        except ValueError as exc:
            c = replace(c, container_error=str(exc))
    elif not missing(box.stderr, box.stdout):
        c = replace(c, container_error=_failed("container inspect", box))
    if image.ok:
        try:
            c = replace(c, target_id=parse_image(image.stdout)[0])
        except ValueError as exc:
            c = replace(c, target_error=str(exc))
    elif not missing(image.stderr, image.stdout):
        c = replace(c, target_error=_failed("image inspect", image))
    return c


# Glance's version inside an image never changes: asked once per image id and process.
_VERSIONS: dict[str, str] = {}


async def image_version(run: Any, cmds: NodeCommands, image: str) -> tuple[str, str]:
    """``(output, error)`` of the Glance version inside ``image`` (one-off container, cached by id)."""
    if image in _VERSIONS:
        return _VERSIONS[image], ""
    result = await run(cmds.image_version(image))
    if not result.ok:
        return "", _failed(f"the version of image {image[:SHORT]}", result)
    _VERSIONS[image] = result.stdout
    return result.stdout, ""


# ---------------------------------------------------------------- re-creating the container on the target image


async def read_container(run: Any, cmds: NodeCommands, image: str | None = None) -> ContainerReading:
    """The node's container and ``image`` (the target image unless given), inspected now."""
    k = cmds.config.kolla_of(cmds.node)
    wanted = image or kolla_image(k)
    box_result = await run(cmds.inspect_container(str(k.container)))
    target_result = await run(cmds.image_inspect(wanted) if image else cmds.container_reads()[1])
    return reading_of(str(k.container), wanted, box_result, target_result)


async def recreate_command(run: Any, cmds: NodeCommands, image: str | None = None) -> RemoteCommand | None:
    """The command that re-creates a stopped Kolla container on the target image (or ``image``: a
    rollback passes the image id it ran before), not starting it, from its own inspected
    configuration; None when it already is on that image.

    It creates the new container under a spare name first, then removes the old one (``rm`` without
    ``-f``: never a running one) and renames the new one: a create that fails leaves the old one as it was.
    """
    k = cmds.config.kolla_of(cmds.node)
    wanted = image or kolla_image(k)
    onto = f"image {wanted[:SHORT]} (the one it ran before this run's upgrade)" if image else f"the target image {wanted}"
    reading = await read_container(run, cmds, image)
    fix = "look at the container on the node (the reason names what was read), then retry"
    if reading.container is None and not reading.container_error and reading.target_id is not None:
        finish = await _finish_rename(run, cmds, reading.target_id, onto)
        if finish is not None:
            return finish
    if reading.container_error or reading.target_error or reading.container is None or reading.target_id is None:
        raise GlanceTuiError(f"cannot re-create {k.container} on {cmds.node}: {reading.note}", fix=fix)
    box = reading.container
    if box.image == reading.target_id:
        return None
    if box.running:
        raise GlanceTuiError(f"container {box.name} on {cmds.node} is running: it is re-created only when stopped", fix="stop it first (the step's stop action)")
    old = await run(cmds.image_inspect(box.image))
    try:
        if not old.ok:
            raise ValueError(_failed(f"image inspect of {box.image[:SHORT]}", old))
        spare = spare_name(box.name)
        args = create_args(str(k.engine), box.raw, parse_image(old.stdout)[1], wanted, spare, await _node_host_name(run, cmds))
    except ValueError as exc:
        raise GlanceTuiError(f"cannot re-create {box.name} on {cmds.node} from its configuration: {exc}", fix=fix) from None
    engine = str(k.engine)
    text = (f"{quote_args(engine, 'container', 'rm', '--force', spare)} >/dev/null 2>&1; {quote_args(*args)}"
            f" && {quote_args(engine, 'container', 'rm', box.name)} && {quote_args(engine, 'rename', spare, box.name)}")
    return RemoteCommand(cmds.node, text, f"re-create container {box.name} on {onto} (not started)", changes=True)


async def _node_host_name(run: Any, cmds: NodeCommands) -> str | None:
    """The node's own name (``uname -n``): a container's hostname equal to it under host networking
    is the engine's, not the operator's. None when it cannot be read (then such a hostname is refused)."""
    result = await run(RemoteCommand(cmds.node, "uname -n", "the node's host name"))
    name = result.stdout.strip() if result.ok else ""
    return name if name and "\n" not in name else None


async def _finish_rename(run: Any, cmds: NodeCommands, target_id: str, onto: str) -> RemoteCommand | None:
    """A run ended between removing the old container and renaming the new one: the container is
    missing and a stopped spare on the target image exists — renaming it finishes the re-create."""
    k = cmds.config.kolla_of(cmds.node)
    spare = spare_name(str(k.container))
    found = await run(cmds.inspect_container(spare))
    if not found.ok:
        return None
    try:
        box = parse_container(found.stdout)
    except ValueError:
        return None
    if box.running or box.image != target_id:
        return None
    return RemoteCommand(cmds.node, quote_args(str(k.engine), "rename", spare, str(k.container)),
                         f"finish re-creating {k.container}: rename {spare} (on {onto}, not started)", changes=True)
