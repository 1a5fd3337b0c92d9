"""One node's verdict, as plan, gates and screens see it: installed release, whether Glance
runs (True / False / None = unknown, which blocks), which code it runs, and why."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# What code a running node serves, judged from the starts of the processes that run Glance's code.
CODE_INSTALLED = "installed"  # every one started after the install
CODE_OLD = "old"  # every one started before it
CODE_MIXED = "mixed"  # some before, some after: old and new code at once (a lazy-apps respawn)


@dataclass(frozen=True)
class NodeFacts:
    """What one node runs. ``running`` is True, False, or None = unknown (unknown blocks).

    ``stale`` is True when a process that runs Glance's code started before the installed code
    was installed (``code`` says whether all of them did or only some), False when every one is
    younger, None when it cannot be told. ``reason`` names what was seen, for every verdict.
    """

    name: str
    address: str
    version: str | None = None  # the installed version
    release: str | None = None  # the installed release
    running: bool | None = None
    error: str = ""  # the node could not be probed at all (SSH)
    version_error: str = ""  # the version command failed (e.g. Glance not installed yet)
    running_error: str = ""  # why ``running`` is unknown
    installed_at: float | None = None  # node clock
    started_at: float | None = None  # the oldest process running Glance's code (node clock)
    stale: bool | None = None
    stale_error: str = ""  # why ``stale`` is unknown
    pids: tuple[int, ...] = ()  # every process of the served tree
    probed_at: float = field(default_factory=time.time)
    clock: float | None = None  # the node's own clock when probed (from ``processes``)
    code: str | None = None  # CODE_INSTALLED / CODE_OLD / CODE_MIXED while running, else None
    reason: str = ""  # what the readings showed, e.g. "nothing matches process_patterns, but …"
    # What the service starts from is the target: a Kolla node's container was created from the target
    # image, an OSA node's uWSGI unit is configured with the target venv (None = cannot tell). Always
    # True for packages, whose install is what runs after a restart.
    deployed_current: bool | None = True
    deployed_note: str = ""  # that in words, e.g. "container glance_api on image 3f2a…, not the target …"

    @property
    def reachable(self) -> bool:
        return not self.error

    def installed(self, release: str, version: str | None = None) -> bool:
        """The installed package is ``release`` (and ``version``, if one is required); for a Kolla or OSA
        node, its service also starts from the target image or venv (a pulled image is not installed)."""
        return self.release == release and (not version or self.version == version) and self.deployed_current is True

    @property
    def fresh(self) -> bool | None:
        """No Glance process runs code older than the installed one: True when stopped or every
        process started after the install, False when one is older (stale), None = unknown."""
        if self.running is False:
            return True
        if self.running is None or self.stale is None:
            return None
        return not self.stale

    def on(self, release: str, version: str | None = None) -> bool:
        """The node runs ``release``: installed, and stopped or restarted since (never when unknown)."""
        return self.installed(release, version) and self.fresh is True

    @property
    def service(self) -> str:
        """The service state in words, for gate reasons and the status table."""
        if self.running is None:
            return f"unknown ({self.running_error or self.error or 'no answer'})"
        if self.running is False:
            return "stopped"
        if self.stale and self.deployed_current is False:
            return f"running old code ({self.deployed_note})"
        if self.stale and self.code == CODE_MIXED:
            return f"running old and new code at once (some processes started before the install of {self.version or '?'})"
        if self.stale:
            return f"running code started before the install of {self.version or '?'}"
        if self.stale is None:
            return f"running (code age unknown: {self.stale_error or 'no answer'})"
        return "running"

    @property
    def stale_text(self) -> str:
        """``installed 28.2.0, still running code started before the upgrade`` for a stale node."""
        if not (self.running and self.stale):
            return ""
        if self.deployed_current is False:
            return f"installed {self.version or '?'}, {self.deployed_note}"
        if self.code == CODE_MIXED:
            return f"installed {self.version or '?'}, serving old and new code at once (a worker respawned after the upgrade, others did not): restart it"
        return f"installed {self.version or '?'}, still running code started before the upgrade"
