"""Which Glance services run on a node, and since when — read from ``ps``, not from a package.

A node is upgraded when the code that *runs* is new: every Glance process must have started
after the target code was installed. ``commands.processes`` prints the node's clock, then one
line per process (``PID ETIMES COMM ARGS``); this module turns that into facts, strictly: any
line it cannot read makes the whole answer unknown, never "nothing runs".
"""

from __future__ import annotations

from dataclasses import dataclass

# Linux truncates a process's comm to 15 characters.
COMM_LEN = 15
# Our own probes may run a service binary (``glance-api --version``); a service never does.
_PROBE_ARGS = (" --version", " --help")


@dataclass(frozen=True)
class ServiceProcess:
    pid: int
    started_at: float  # epoch seconds, on the node's clock
    comm: str
    args: str


def parse_processes(output: str, services: list[str] | tuple[str, ...]) -> tuple[float, list[ServiceProcess]]:
    """``(node_now, processes of services)``; ``ValueError`` naming the problem if it is not that format."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the processes command printed nothing (expected the node's clock, then `ps` lines)")
    try:
        now = float(lines[0].strip())
    except ValueError:
        raise ValueError(f"the first line is not the node's clock in epoch seconds: {lines[0][:60]!r}") from None
    wanted = {s[:COMM_LEN] for s in services}
    found: list[ServiceProcess] = []
    for line in lines[1:]:
        parts = line.split(None, 3)
        if len(parts) < 3:
            raise ValueError(f"not a `PID ETIMES COMM ARGS` line: {line[:60]!r}")
        pid_text, etimes_text, comm = parts[:3]
        args = parts[3] if len(parts) > 3 else comm
        if not (pid_text.isdigit() and etimes_text.isdigit()):
            raise ValueError(f"not a `PID ETIMES COMM ARGS` line: {line[:60]!r}")
        if comm not in wanted or any(a in f" {args} " for a in _PROBE_ARGS):
            continue
        found.append(ServiceProcess(int(pid_text), now - int(etimes_text), comm, args))
    return now, found


def parse_epoch(output: str) -> float:
    """The installed-at command's answer: one number of epoch seconds."""
    text = output.strip().splitlines()[-1].strip() if output.strip() else ""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected epoch seconds, got {text[:60]!r}") from None
    if value <= 0:
        raise ValueError(f"expected epoch seconds, got {text[:60]!r}")
    return value
