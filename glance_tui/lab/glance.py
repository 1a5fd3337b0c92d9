"""glance-api / glance-manage configuration for lab nodes (Keystone or none, file store, MariaDB).

Follows the verified recipe in shared/NOTES.md. The paste config differs between releases,
so the conf points at ``<node dir>/glance-api-paste.ini``, which nodectl copies from the
node's *current* environment at every start.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import quote

from glance_tui.errors import GlanceTuiError


def db_url(*, user: str, password: str, host: str, port: int, schema: str, bind_address: str | None = None) -> str:
    """``bind_address`` (PyMySQL's, passed through SQLAlchemy's URL): the client address the server
    sees, so each lab node connects from its own address as a real node does."""
    bind = f"&bind_address={bind_address}" if bind_address else ""
    return f"mysql+pymysql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(schema, safe='')}?charset=utf8{bind}"


def _write_private(path: Path, text: str) -> None:
    """Write a file holding the database password, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def api_conf(*, host: str, port: int, database: str, store_dir: Path, node_dir: Path, workers: int = 1,
             authtoken: str | None = None, web_source: tuple[str, int] | None = None, paste_file: Path | None = None) -> str:
    """glance-api.conf for one node: Images API v2 only, shared file store; behind Keystone when
    ``authtoken`` (a ``[keystone_authtoken]`` section) is given, else unauthenticated. A container
    node's paths are the container's (``node_dir`` its Glance volume, ``paste_file`` its image's).

    Image import as a recent deployment has it: distributed import (``worker_self_reference_url``:
    the other nodes proxy an import of an image staged here to this node, bypassing the LB), the
    node's own staging store, and ``web-download`` allowed from ``web_source`` (host, port), the
    lab's slow HTTP server. Glance allows only ports 80/443 by default and, from 2025.1 on, no
    loopback host that ``allowed_hosts`` does not name. These lists are ``bounds=True`` options:
    Glance reads them only in brackets (without, the first request that reads one answers 500)."""
    if authtoken:
        paste = "# Behind Keystone: every request but /healthcheck and /versions needs a token.\nflavor = keystone"
    else:
        paste = "# No Keystone: the default pipeline with an unauthenticated (admin) context.\nflavor ="
    return f"""\
# Written by glance-tui's staging lab. Images API v2 only: the v1 API and the registry are left unset.
[DEFAULT]
bind_host = {host}
bind_port = {port}
workers = {workers}
enabled_backends = fs:file
image_size_cap = 1099511627776
enabled_import_methods = [glance-direct, web-download, copy-image]
worker_self_reference_url = http://{host}:{port}
# Read only without enabled_backends; set to the staging store's directory all the same.
node_staging_uri = file://{node_dir / 'staging'}

[database]
connection = {database}
max_retries = 10
retry_interval = 1

[paste_deploy]
{paste}
config_file = {paste_file or node_dir / 'glance-api-paste.ini'}

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = {store_dir}

[os_glance_staging_store]
filesystem_store_datadir = {node_dir / 'staging'}

[os_glance_tasks_store]
filesystem_store_datadir = {node_dir / 'tasks'}

[oslo_concurrency]
lock_path = {node_dir / 'locks'}

[oslo_policy]
enforce_scope = false
enforce_new_defaults = false
""" + (_import_filtering(*web_source) if web_source else "") + (f"\n{authtoken}" if authtoken else "")


def _import_filtering(host: str, port: int) -> str:
    """web-download from the lab's slow server only (http, its address and port)."""
    return f"""
[import_filtering_opts]
allowed_schemes = [http]
allowed_hosts = [{host}]
allowed_ports = [{port}]
"""


def write_api_conf(path: Path, **kwargs) -> None:
    _write_private(path, api_conf(**kwargs))


def write_manage_conf(path: Path, database: str) -> None:
    """A minimal conf for glance-manage run by the lab itself (db sync on first creation)."""
    _write_private(path, f"[database]\nconnection = {database}\n")


def db_sync(bin_dir: Path, conf: Path, *, timeout: float = 600) -> None:
    """Create the Glance schema with the given (old) release's ``glance-manage db sync``."""
    argv = [str(Path(bin_dir) / "glance-manage"), "--config-file", str(conf), "db", "sync"]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise GlanceTuiError(f"glance-manage db sync did not finish within {timeout:.0f}s", where=str(conf),
                             fix="check that MariaDB is running and reachable") from None
    if result.returncode != 0:
        tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
        raise GlanceTuiError(f"glance-manage db sync failed: {tail}", where=str(conf),
                             fix="see the message; `glance-tui lab reset` starts from a fresh database")
