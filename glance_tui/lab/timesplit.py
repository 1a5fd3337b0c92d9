"""Where a run's time went, from its journal alone.

Per step and per action, wall time is split into:

* ``commands`` — node commands (the journal's ``command`` records carry each one's duration);
* ``drain`` — waiting for in-flight requests to finish (``wait-drained`` actions; ``drained.waited``);
* ``lb_health`` — waiting on the load balancer and health checks (``drain``, ``ready``,
  ``wait-up`` and ``health`` actions, less any command they ran);
* ``overhead`` — the rest: the tool's own probes, gate evaluations and bookkeeping, inside
  actions, between them, and between steps (from the journal's first record to its last).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CATEGORIES = ("commands", "drain", "lb_health", "overhead")
LB_HEALTH_ACTIONS = ("drain", "ready", "wait-up", "health")


def _zero() -> dict[str, float]:
    return {c: 0.0 for c in CATEGORIES}


def _round(split: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in split.items()}


def split_journal(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{"steps": [{step, title, wall, split, actions: [{action, node, wall, split}]}], "total": {wall, split}}``."""
    steps: list[dict[str, Any]] = []
    step: dict[str, Any] | None = None
    action: dict[str, Any] | None = None
    first = last = None
    for rec in records:
        event, ts = rec.get("event"), float(rec.get("ts", 0))
        first = ts if first is None else first
        last = ts
        if event == "step.start":
            step = {"step": rec.get("step"), "title": rec.get("title", ""), "start": ts, "actions": [], "commands": 0.0}
        elif event == "action.start" and step is not None:
            action = {"action": rec.get("action"), "node": rec.get("node"), "start": ts, "commands": 0.0, "drained": None}
        elif event in ("command", "db.check"):  # a node command (db.check: Glance asked, read-only)
            duration = float(rec.get("duration") or 0)
            if action is not None:
                action["commands"] += duration
            elif step is not None:
                step["commands"] += duration
        elif event == "drained" and action is not None:
            action["drained"] = float(rec.get("waited") or 0)
        elif event == "action.end" and action is not None and step is not None:
            wall = ts - action["start"]
            split = _zero()
            split["commands"] = min(action["commands"], wall)
            rest = wall - split["commands"]
            if action["action"] == "wait-drained":
                split["drain"] = rest
            elif action["action"] in LB_HEALTH_ACTIONS:
                split["lb_health"] = rest
            else:
                split["overhead"] = rest
            step["actions"].append({"action": action["action"], "node": action["node"], "wall": round(wall, 2), "split": _round(split),
                                    "ok": bool(rec.get("ok"))})
            action = None
        elif event == "step.end" and step is not None:
            wall = ts - step["start"]
            split = _zero()
            for a in step["actions"]:
                for c in CATEGORIES:
                    split[c] += a["split"][c]
            split["commands"] += step["commands"]
            split["overhead"] += max(0.0, wall - sum(split.values()))
            steps.append({"step": step["step"], "title": step["title"], "wall": round(wall, 2), "split": _round(split),
                          "ok": bool(rec.get("ok")), "actions": step["actions"]})
            step = None
    total = _zero()
    for s in steps:
        for c in CATEGORIES:
            total[c] += s["split"][c]
    wall = (last - first) if first is not None and last is not None else 0.0
    total["overhead"] += max(0.0, wall - sum(s["wall"] for s in steps))  # preflight, planning, between steps
    return {"steps": steps, "total": {"wall": round(wall, 2), "split": _round(total)}}


def format_split(split: dict[str, float]) -> str:
    return "  ".join(f"{c.replace('_', '/')} {split.get(c, 0):.1f}s" for c in CATEGORIES)
