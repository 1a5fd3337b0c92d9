"""The running code of an OpenStack-Ansible node: the venv its serving processes run from.

OSA installs each version of Glance into its own venv (``/openstack/venvs/glance-<tag>``, uWSGI in
``uwsgi-<tag>-python3``), tagged with OSA's release version. A process whose command line runs
from a venv under ``venv_root`` runs that venv's code whatever its start time: one from a venv
of another tag is old, and when every serving process runs from a target-tag venv the node runs
the target. Processes that name no venv are dated against the target venv's creation, as for
packages.
"""

from __future__ import annotations

import re
from dataclasses import replace

from glance_tui.node.facts import CODE_INSTALLED, CODE_MIXED, CODE_OLD
from glance_tui.node.verdict import Verdict


def venvs_of(args: str, venv_root: str) -> list[str]:
    """The names of the venvs under ``venv_root`` that a command line runs from."""
    root = venv_root.rstrip("/") + "/"
    return re.findall(re.escape(root) + r"([^/\s]+)/", args)


def is_target(venv: str, tag: str) -> bool:
    """``glance-31.1.0`` and ``uwsgi-31.1.0-python3`` are of tag ``31.1.0``."""
    return tag in venv.split("-")


def judge_venv(v: Verdict, venv_root: str, tag: str) -> Verdict:
    """The host's verdict, with the code of a running node told by the venvs its processes run from."""
    if not v.running:
        return v
    named = {p.pid: venvs_of(p.args, venv_root) for p in v.tree}
    old = {pid: [n for n in names if not is_target(n, tag)] for pid, names in named.items()}
    old = {pid: names for pid, names in old.items() if names}
    if old:
        listed = "; ".join(f"pid {pid} runs from {venv_root.rstrip('/')}/{names[0]}" for pid, names in sorted(old.items()))
        code = CODE_OLD if len(old) == len(v.tree) else CODE_MIXED
        return replace(v, code=code, stale=True, stale_error="", reason=f"{v.reason}; {listed}, not a venv of {tag}")
    if v.tree and all(named[p.pid] for p in v.tree):
        return replace(v, code=CODE_INSTALLED, stale=False, stale_error="", reason=f"{v.reason}; every process runs from a venv of {tag}")
    return v


def configured_venv(output: str) -> str | None:
    """The ``venv=<path>`` line of the OSA version command (the venv the unit's uWSGI ini names)."""
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith("venv=")]
    return lines[-1].removeprefix("venv=").rstrip("/") or None if lines else None


def deployed(output: str, ok: bool, target_venv: str) -> tuple[bool | None, str]:
    """``(deployed_current, deployed_note)``: the unit is configured with the target venv."""
    venv = configured_venv(output) if ok else None
    if venv is None:
        return None, "cannot tell which venv the glance-api unit runs (the version command named none)"
    if venv == target_venv.rstrip("/"):
        return True, f"the glance-api unit runs the target venv {venv}"
    return False, f"the glance-api unit runs {venv}, not the target venv {target_venv}: run the upgrade"
