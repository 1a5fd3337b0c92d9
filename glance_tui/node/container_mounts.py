"""Where a path inside a Kolla container lives on the host: through the container's mounts.

A Kolla node's glance-api.conf names paths inside ``glance_api`` (its staging directory, e.g.
``/var/lib/glance/staging``); on the host that data is under the source of the mount whose
destination holds the path — a named volume (``glance`` → its mount point, which both engines
print as the mount's ``Source``) or a bind. The longest destination wins. A path under no mount
is in the container's own layer, and a path under a tmpfs in memory: the upgrade's re-create
discards both (a tmpfs even a stop), so what is there cannot be listed from the host nor kept.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ContainerPath:
    """A container's path and where it lives: ``host`` (a host path) or, when None, ``gone`` says why
    the re-create loses it."""

    path: str  # inside the container
    host: str | None
    mount: str  # the mount that holds it, in words ("" when none)
    gone: str = ""


def _under(path: str, destination: str) -> bool:
    return destination == "/" or path == destination or path.startswith(destination + "/")


def host_place(raw: dict[str, Any], path: str, container: str) -> ContainerPath:
    """``path`` (absolute, inside the container ``raw`` is the inspect object of) mapped to the host;
    ``ValueError`` when the mounts cannot be read or the holding mount has no host source."""
    if not path.startswith("/"):
        raise ValueError(f"{path[:80]!r} is not an absolute path")
    path = posixpath.normpath(path)
    mounts = raw.get("Mounts") or []
    host_config = raw.get("HostConfig") or {}
    tmpfs = (host_config.get("Tmpfs") or {}) if isinstance(host_config, dict) else None
    if not isinstance(mounts, list) or not isinstance(tmpfs, dict):
        raise ValueError(f"container {container}'s inspect: Mounts is not a list or HostConfig.Tmpfs not an object")
    found: list[tuple[str, dict[str, Any]]] = []
    for m in mounts:
        if not isinstance(m, dict) or not isinstance(m.get("Destination"), str) or not m["Destination"].startswith("/"):
            raise ValueError(f"container {container}'s inspect: a mount without an absolute Destination")
        found.append((posixpath.normpath(m["Destination"]), m))
    found += [(posixpath.normpath(str(d)), {"Type": "tmpfs"}) for d in tmpfs]
    holders = sorted(((d, m) for d, m in found if _under(path, d)), key=lambda dm: len(dm[0]), reverse=True)
    if not holders:
        return ContainerPath(path, None, "", f"{path} is in container {container}'s own layer (on no volume): the re-create of the upgrade discards it")
    destination, m = holders[0]
    kind = m.get("Type")
    if kind == "tmpfs":
        return ContainerPath(path, None, f"tmpfs {destination}", f"{path} is on a tmpfs of container {container} ({destination}): a stop or re-create discards it")
    source = m.get("Source")
    if kind not in ("bind", "volume") or not isinstance(source, str) or not source.startswith("/"):
        raise ValueError(f"container {container}'s mount on {destination} ({kind}) has no host directory (Source {str(source)[:60]!r})")
    rest = posixpath.relpath(path, destination)
    host = posixpath.normpath(posixpath.join(source, rest)) if rest != "." else posixpath.normpath(source)
    words = f"volume {m.get('Name')}" if kind == "volume" and m.get("Name") else f"{kind} {source}"
    return ContainerPath(path, host, f"{words} on {destination}")
