"""What a node's own glance-api.conf says about its image imports: its self URL and its staging directory.

Glance records on a staged image the URL of the worker that holds the data
(``os_glance_stage_host`` = ``worker_self_reference_url``, else ``public_endpoint``) and keeps
the staged data in a local directory: ``[os_glance_staging_store] filesystem_store_datadir``
when ``enabled_backends`` is set (default ``/var/lib/glance/staging``), else ``[DEFAULT]
node_staging_uri`` (default ``file:///tmp/staging/``) — ``glance.housekeeping.staging_store_path``.
Several files concatenated are read in order, the last value winning as in oslo.config.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass

STAGING_DEFAULT = "/var/lib/glance/staging"
NODE_STAGING_DEFAULT = "file:///tmp/staging/"


@dataclass(frozen=True)
class ImportConf:
    self_url: str  # "" when neither worker_self_reference_url nor public_endpoint is set
    staging_dir: str  # where it is listed: on a container node, the host path of the container's one
    in_container: str = ""  # a container node: the staging directory as configured (inside the container)
    unlisted: str = ""  # why it cannot be listed from the host (a container's own layer, a tmpfs): lost by a re-create


def _url(value: str) -> str:
    return value.strip().rstrip("/")


def parse_import_conf(text: str) -> ImportConf:
    """The node's self URL and staging directory; ``ValueError`` when the text is not a config
    or the staging store is not a local directory."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ValueError(f"its glance-api.conf cannot be parsed ({exc.__class__.__name__})") from None
    default = parser.defaults()
    self_url = _url(default.get("worker_self_reference_url", "") or default.get("public_endpoint", ""))
    if default.get("enabled_backends", "").strip():
        staging = parser.get("os_glance_staging_store", "filesystem_store_datadir", fallback="").strip() or STAGING_DEFAULT
    else:
        uri = default.get("node_staging_uri", "").strip() or NODE_STAGING_DEFAULT
        if not uri.startswith("file://"):
            raise ValueError(f"its node_staging_uri {uri[:80]!r} is not a file:// directory")
        staging = uri[len("file://"):]
    if not staging.startswith("/"):
        raise ValueError(f"its staging directory {staging[:80]!r} is not an absolute path")
    return ImportConf(self_url, staging.rstrip("/") or "/")


def parse_staging_ages(output: str) -> dict[str, float]:
    """Each image id's youngest staged file, in seconds, from ``date +%s`` then ``find -printf
    '%T@ %f\\n'`` lines (the node's clock, then each file's mtime and name); anything else raises
    ``ValueError``. Glance names the staged data by the image id (``<dir>/<id>``: glance-direct's stage,
    web-download's ``store.add(image_id)``, copy-image's ``<datadir>/<id>``); its plugins add a
    suffix to what they derive (image_conversion ``<id>.<target format>``, image_decompression
    ``<id>.uc``), so the id is the part before the first dot. Hidden names name no image."""
    lines = output.splitlines()
    if not lines:
        raise ValueError("the staging listing printed nothing (expected the node's clock first)")
    try:
        now = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"the first line is not the node's clock: {lines[0][:60]!r}") from None
    ages: dict[str, float] = {}
    for line in lines[1:]:
        if not line:
            continue
        stamp, sep, name = line.partition(" ")
        try:
            mtime = float(stamp)
        except ValueError:
            raise ValueError(f"not a `MTIME NAME` line: {line[:80]!r}") from None
        if not sep or mtime != mtime:
            raise ValueError(f"not a `MTIME NAME` line: {line[:80]!r}")
        image_id = name.split(".", 1)[0]
        if image_id.strip():
            age = max(0.0, now - mtime)
            ages[image_id] = min(age, ages.get(image_id, age))
    return ages
