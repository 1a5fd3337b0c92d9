"""OpenStack release names and the Glance versions that belong to them.

Both 2023.1 and 2024.1 report the same API version (v2.15), so a node's release is read
from its installed package (``glance-api --version``) and mapped here.
"""

from __future__ import annotations

import re

# Glance's major version per coordinated release (Zed .. Flamingo).
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
