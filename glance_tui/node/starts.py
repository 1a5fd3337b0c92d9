"""The run's own starts: a node this run saw stopped, with an install in place, runs that
install's code from whatever starts there afterwards — even when ``ps``'s whole seconds cannot
tell a start just after the install from one just before."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from glance_tui.node.facts import NodeFacts


def own_start(f: NodeFacts, seen: Mapping[str, Any] | None) -> NodeFacts:
    """Not stale after all: every process running Glance's code started after this run saw the
    node stopped (``seen``: ``{"installed_at", "stopped_at"}``) with the same install in place."""
    if not (f.stale and seen and f.started_at is not None and f.installed_at is not None):
        return f
    if f.installed_at != seen.get("installed_at") or f.started_at < float(seen.get("stopped_at") or "inf"):
        return f
    return replace(f, stale=False, code="installed")


def stopped_record(f: NodeFacts) -> dict[str, float] | None:
    """What to journal when ``f`` shows the node stopped at its clock with its install in place."""
    if f.running is False and f.clock is not None and f.installed_at is not None and f.installed_at <= f.clock:
        return {"installed_at": f.installed_at, "stopped_at": f.clock}
    return None
