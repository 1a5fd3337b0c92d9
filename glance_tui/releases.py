"""OpenStack release names and the Glance versions that belong to them.

Both 2023.1 and 2024.1 report the same API version (v2.15), so a node's release is read
from its installed package (``glance-api --version``) and mapped here.
"""

from __future__ import annotations

import re

# Glance's major version per coordinated release (Zed .. 2026.2), oldest first.
RELEASES: dict[str, int] = {
    "2022.2": 25,
    "2023.1": 26,
    "2023.2": 27,
    "2024.1": 28,
    "2024.2": 29,
    "2025.1": 30,
    "2025.2": 31,
    "2026.1": 32,
    "2026.2": 33,
}
ORDER = list(RELEASES)

_VERSION = re.compile(r"(?:^|[\s:=v])(\d+)\.(\d+)\.(\d+)")


def parse_version(output: str) -> str | None:
    """Find the first ``X.Y.Z`` in a version command's output (``2:28.2.0-0ubuntu1`` works too)."""
    match = _VERSION.search(" " + output.strip())
    if not match:
        return None
    return ".".join(match.groups())


def release_of(version: str | None) -> str | None:
    """The release name a Glance version belongs to, or ``None`` if unknown."""
    if not version:
        return None
    try:
        major = int(version.split(".", 1)[0])
    except ValueError:
        return None
    for name, glance_major in RELEASES.items():
        if glance_major == major:
            return name
    return None


def is_slurp(release: str) -> bool:
    """SLURP releases (Skip Level Upgrade Release Process) are the year's first, from 2023.1 on."""
    year, _, number = release.partition(".")
    return number == "1" and year.isdigit() and int(year) >= 2023


def supported_jump(start: str, target: str) -> bool:
    """Glance upgrades one release at a time (N → N+1), or from one SLURP to the next (2024.1 → 2025.1)."""
    if start not in RELEASES or target not in RELEASES:
        return False
    i, j = ORDER.index(start), ORDER.index(target)
    return j == i + 1 or (is_slurp(start) and is_slurp(target) and int(target[:4]) == int(start[:4]) + 1)


def upgrade_path(start: str, target: str) -> list[str] | None:
    """The shortest chain of supported jumps from ``start`` to ``target`` (both included), or None."""
    if start not in RELEASES or target not in RELEASES or ORDER.index(target) <= ORDER.index(start):
        return None
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for here in frontier:
            for there in ORDER[ORDER.index(here) + 1:]:
                if there not in paths and supported_jump(here, there):
                    paths[there] = paths[here] + [there]
                    nxt.append(there)
        frontier = nxt
    return paths.get(target)


def schema_release(heads: list[str] | tuple[str, ...]) -> str | None:
    """The newest release whose migration the alembic heads name (``2024_1_contract01`` -> ``2024.1``).

    Releases after 2024.1 add no revision, so their code runs on a 2024.1 schema; None when a head
    does not name a release this tool knows (unknown: the caller decides the safe way)."""
    import re

    found = []
    for head in heads:
        m = re.fullmatch(r"(\d{4})_(\d)_(?:expand|contract)\d+", head)
        if not m or f"{m.group(1)}.{m.group(2)}" not in RELEASES:
            return None
        found.append(f"{m.group(1)}.{m.group(2)}")
    return max(found, key=ORDER.index) if found else None
