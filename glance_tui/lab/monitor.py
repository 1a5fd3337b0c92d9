"""Which Glance code runs on which lab node, and when: the rehearsal's independent witness.

The tool decides from its own probes; the rehearsal must not trust them. Every half second
this samples each node's Glance server processes straight from ``/proc`` (the lab is local) —
the eventlet ``glance-api`` parent and workers, or a uWSGI master and every worker (COMM
``uwsgi``), as :func:`glance_tui.lab.runtime.is_glance` knows them: pid, start time, and the
release whose environment the process runs from (its command line names the environment's
``bin`` directory; a uWSGI worker forked from its master has the master's). On a container node
(``--node-kind kolla``) the processes are those of its running ``glance_api`` container, found
from podman's own storage and state files, and each also records the image id the container was
created from. Each process becomes one interval [start, last seen];
the judge compares those intervals with the journal's action windows ("was 2023.1 code
serving while contract ran?", "was the NEW NODE running during expand?").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from glance_tui.lab import containers, nodectl, procs, runtime


@dataclass
class ProcessSpan:
    node: str
    pid: int
    release: str | None  # None: started from no known environment
    started: float  # epoch seconds (from /proc)
    last_seen: float
    image: str | None = None  # a container node's: the id of the image its container was created from

    def overlaps(self, start: float, end: float) -> bool:
        return self.started <= end and self.last_seen >= start

    def to_json(self) -> dict:
        return asdict(self)


class ProcessMonitor:
    def __init__(self, node_dirs: dict[str, Path], interval: float = 0.5, *, kind: str = "packages") -> None:
        self.node_dirs = node_dirs
        self.kind = kind
        self.interval = interval
        self.spans: dict[tuple[str, int, float], ProcessSpan] = {}
        self.samples = 0
        self._boot = procs.boot_time()
        self._task: asyncio.Task | None = None

    def sample(self) -> None:
        now = time.time()
        for name, node_dir in self.node_dirs.items():
            try:
                node = nodectl.Node.load(node_dir)
            except Exception:  # node.json being rewritten: the next sample sees it
                continue
            image = None
            if self.kind == "kolla":
                found = containers.running_container(node_dir / "podman")
                if found is None:
                    continue
                pid, image = found
            else:
                pid = nodectl.service_pid(node)  # a host pid: the node writes its own machine's
            if pid is None:
                continue
            envs = {release: str(Path(bin_dir)) for release, bin_dir in node.data.get("envs", {}).items()}
            for member in procs.processes(group=pid):
                try:
                    cmdline = Path(f"/proc/{member}/cmdline").read_bytes().decode(errors="replace").split("\0")
                    stat = Path(f"/proc/{member}/stat").read_text()
                except OSError:
                    continue
                if not runtime.is_glance(cmdline):
                    continue
                started = round(procs.start_time(stat, self._boot), 2)
                release = next((rel for rel, bin_dir in envs.items() for arg in cmdline if arg.startswith(bin_dir + "/")), None)
                key = (name, member, started)
                span = self.spans.get(key)
                if span is None:
                    self.spans[key] = ProcessSpan(name, member, release, started, now, image)
                else:
                    span.last_seen = now
        self.samples += 1

    async def _loop(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self.sample()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.sample()

    def running_during(self, start: float, end: float, *, node: str | None = None, release: str | None = None,
                       not_release: str | None = None) -> list[ProcessSpan]:
        """Processes alive at some point of [start, end] (optionally on ``node``, of / not of a release)."""
        return [s for s in self.spans.values() if s.overlaps(start, end) and (node is None or s.node == node)
                and (release is None or s.release == release) and (not_release is None or s.release != not_release)]
