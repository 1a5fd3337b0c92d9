"""RDO nodes (RHEL, CentOS Stream): Glance from RDO's rpm packages, read without changing anything,
and the ``[commands]`` such a node needs where the packaged defaults are Debian's.

RDO ships Glance as the package ``openstack-glance`` (its code in ``python3-glance``, which it
requires at exactly its own version) with the systemd unit ``openstack-glance-api``; no package is
named ``openstack-glance-api`` (RDO's spec: rdo-packages/glance-distgit, openstack-glance.spec).

* installed: ``rpm -q --qf '%{VERSION}-%{RELEASE}\\n' openstack-glance`` — rpm's local database.
* candidate: ``dnf -q --cacheonly repoquery --latest-limit 1 --qf '%{version}\\n' openstack-glance``.
  ``--cacheonly`` runs from the system cache without updating it, even when it has expired, and
  gives a non-root user read-only access to root's cache (dnf(8)): the survey neither reaches the
  network nor writes the node's cache or takes its lock, and answers from the metadata of the
  node's last ``dnf makecache`` — as ``apt-cache policy`` answers from the last ``apt-get update``.
  ``dnf list --available`` and ``dnf check-update`` would refresh expired metadata over the network.
  Without a cache dnf exits 1 ("Cache-only enabled but no cache for …"): a question, never a guess.
"""

from __future__ import annotations

import re

from glance_tui.errors import clipped
from glance_tui.releases import parse_version

PACKAGE = "openstack-glance"
UNIT = "openstack-glance-api"
RPM_VERSION = "rpm -q --qf '%{VERSION}-%{RELEASE}\\n' " + PACKAGE
DNF_CANDIDATE = "dnf -q --cacheonly repoquery --latest-limit 1 --qf '%{version}\\n' " + PACKAGE
# Asked only where rpm knows the package: a Kolla host on CentOS has dnf too, not Glance's package.
DNF_SURVEY = (f"rpm -q {PACKAGE} >/dev/null 2>&1 && command -v dnf >/dev/null 2>&1 && "
              f"{{ o=$({DNF_CANDIDATE} 2>&1); echo \"exit=$?\"; printf '%s\\n' \"$o\" | head -n 5; }}")

# What an RDO node needs in [commands] where the defaults are Debian's (literal braces doubled: templates).
COMMANDS = {
    # --refresh: the install reads the repositories as they are now, not the cache the survey read.
    "upgrade": f"dnf -y --refresh upgrade {PACKAGE}",
    "installed_version": f"rpm -q --qf '%{{{{VERSION}}}}-%{{{{RELEASE}}}}\\n' {PACKAGE}",
    # The transaction's time: python3-glance (the code) is installed before openstack-glance, which requires it.
    "installed_at": f"rpm -q --qf '%{{{{INSTALLTIME}}}}\\n' {PACKAGE}",
}

_EXIT = re.compile(r"exit=(\d+)")
_VERSION_LINE = re.compile(r"\d+\.\d+\.\d+\S*")


def rpm_version(text: str) -> str | None:
    """The Glance version in the survey's ``rpm -q`` answer ("28.2.0-1.el9s"); None when rpm does not know the package."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return parse_version(lines[0]) if lines and not lines[0].startswith("package ") else None


def dnf_candidate(text: str, has_dnf: bool) -> tuple[str | None, str]:
    """(the version the node's cached repositories offer, why none: "" when one is offered)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not has_dnf:
        return None, "no dnf on it (an rpm node without dnf is not asked)"
    m = _EXIT.fullmatch(lines[0].strip()) if lines else None
    if m is None:
        return None, f"`{DNF_CANDIDATE}` was not run"
    said = clipped(" | ".join(lines[1:]), 160)
    if m.group(1) != "0":
        return None, (f"`{DNF_CANDIDATE}` exited {m.group(1)} ({said}): its cached repository metadata cannot be read — "
                      "run `dnf makecache` on it, or give --target-release")
    # a line that is one version only: dnf's warnings (merged from stderr, e.g. a missing locale) may name versions too
    versions = [v for ln in lines[1:] if _VERSION_LINE.fullmatch(ln.strip()) and (v := parse_version(ln))]
    if not versions:
        return None, f"its repositories (dnf's cached metadata) offer no {PACKAGE}" + (f" ({said})" if said else "")
    return versions[0], ""
