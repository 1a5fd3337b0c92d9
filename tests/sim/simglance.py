"""Simulated Glance binaries for fast engine tests (the staging lab runs the real Glance).

``glance-api`` is a small threaded HTTP server answering like Glance's Images API v2 without
Keystone (``/versions``, ``/``, ``/v2/images``, plus ``/slow?s=N`` to hold a request in
flight) that finishes in-flight requests on SIGTERM. ``glance-manage db …`` reproduces real
Glance's decisions on ``alembic_version`` (glance/cmd/manage.py: check exit codes 0/3/4/5,
expand/migrate/contract/sync, messages) against a real MariaDB through PyMySQL. Pending data
migrations, which real Glance detects from the data, are tracked in a ``sim_migrated`` table.
The release is the ``VERSION`` file beside ``bin/``.
"""

from __future__ import annotations

import argparse
import configparser
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Release:
    name: str
    expand: str
    contract: str
    tables: tuple[str, ...]  # tables the release's expand creates


RELEASES = {
    26: Release("2023.1", "2023_1_expand01", "2023_1_contract01", ()),
    28: Release("2024.1", "2024_1_expand01", "2024_1_contract01", ("node_reference", "cached_images")),
}
ORDER = [r.name for r in RELEASES.values()]

DDL = {
    "images": "CREATE TABLE IF NOT EXISTS images (id VARCHAR(36) NOT NULL PRIMARY KEY, name VARCHAR(255),"
              " size BIGINT, status VARCHAR(30) NOT NULL, checksum VARCHAR(32), created_at DATETIME NOT NULL,"
              " updated_at DATETIME, deleted TINYINT(1) NOT NULL DEFAULT 0) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "node_reference": "CREATE TABLE IF NOT EXISTS node_reference (node_reference_id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
                      " node_reference_url VARCHAR(255) NOT NULL UNIQUE) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "cached_images": "CREATE TABLE IF NOT EXISTS cached_images (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
                     " image_id VARCHAR(36) NOT NULL, last_accessed DATETIME NOT NULL, last_modified DATETIME NOT NULL,"
                     " size BIGINT NOT NULL, hits INT NOT NULL, checksum VARCHAR(32), node_reference_id INT NOT NULL,"
                     " UNIQUE KEY (image_id, node_reference_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
}

# Glance's own import tables (tasks, task_info, image_properties), exactly as its `db sync` makes them
# (tests/fixtures/glance_tables.sql): the drain reads import work from them.
_REAL_DDL = Path(__file__).resolve().parents[1] / "fixtures" / "glance_tables.sql"
IMPORT_TABLES = ("image_properties", "tasks", "task_info")
for _statement in _REAL_DDL.read_text().split(";"):
    _name = _statement.split("CREATE TABLE `", 1)[-1].split("`", 1)[0] if "CREATE TABLE `" in _statement else ""
    if _name in IMPORT_TABLES:
        DDL[_name] = _statement.strip().replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1)


class SimError(Exception):
    """Ends glance-manage with exit 1 and the message on stderr (like ``sys.exit(msg)`` in Glance)."""


def read_version(script: str) -> str:
    return (Path(script).resolve().parent.parent / "VERSION").read_text().strip()


def release_of(version: str) -> Release:
    return RELEASES[int(version.split(".")[0])]


def read_conf(files: list[str]) -> configparser.RawConfigParser:
    conf = configparser.RawConfigParser(strict=False)
    for name in files:
        if not conf.read(name):
            raise SimError(f"ERROR: Failed to find some config files: {name}")
    return conf


# ---------------------------------------------------------------- glance-api

VERSIONS = ["v2.15", "v2.14", "v2.13", "v2.12", "v2.11", "v2.10", "v2.9", "v2.8", "v2.7", "v2.6", "v2.5", "v2.4", "v2.3", "v2.2", "v2.1", "v2.0"]


class ApiHandler(BaseHTTPRequestHandler):
    server_version = "sim-glance-api"
    timeout = 60  # an idle client cannot hold up a graceful stop for ever

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _versions(self) -> dict:
        href = f"http://{self.headers.get('Host') or '%s:%s' % self.server.server_address[:2]}/v2/"
        return {"versions": [{"id": v, "status": "CURRENT" if i == 0 else "SUPPORTED", "links": [{"rel": "self", "href": href}]}
                             for i, v in enumerate(VERSIONS)]}

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        url = urlsplit(self.path)
        if url.path in ("/versions", "/versions/"):
            self._send(200, self._versions())
        elif url.path == "/":
            self._send(300, self._versions())
        elif url.path in ("/v2/images", "/v2/images/"):
            self._send(200, {"images": [], "first": "/v2/images", "schema": "/v2/schemas/images"})
        elif url.path == "/slow":
            seconds = min(float(parse_qs(url.query).get("s", ["1"])[0]), 600.0)
            self.log_message("slow request started (%ss)", seconds)  # lets tests see it in flight
            time.sleep(seconds)
            self._send(200, {"slept": seconds})
        elif url.path == "/healthcheck":
            self._send(200, {"status": "OK"})
        else:
            self._send(404, {"message": "The resource could not be found.", "code": "404 Not Found"})

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write(f"{time.strftime('%H:%M:%S')} {self.address_string()} {fmt % args}\n")


class ApiServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins request threads: in-flight requests finish
    block_on_close = True


def api_main(argv: list[str], script: str) -> int:
    version = read_version(script)
    parser = argparse.ArgumentParser(prog="glance-api")
    parser.add_argument("--config-file", action="append", default=[])
    parser.add_argument("--version", action="store_true")
    args = parser.parse_args(argv)
    if args.version:
        print(version)
        return 0
    conf = read_conf(args.config_file)
    host, port = conf.get("DEFAULT", "bind_host", fallback="0.0.0.0"), conf.getint("DEFAULT", "bind_port", fallback=9292)
    server = ApiServer((host, port), ApiHandler)

    def graceful(signum: int, frame: object) -> None:
        print(f"caught signal {signum}: no new connections, finishing in-flight requests", file=sys.stderr, flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, graceful)
    signal.signal(signal.SIGINT, graceful)
    print(f"sim glance-api {version} ({release_of(version).name}) serving on {host}:{port}", file=sys.stderr, flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    print("sim glance-api stopped", file=sys.stderr, flush=True)
    return 0


# ---------------------------------------------------------------- glance-manage


class Schema:
    """The Glance schema as glance-manage sees it: alembic heads and the sim's migration marker."""

    def __init__(self, url: str) -> None:
        try:
            import pymysql
        except ImportError:
            raise SimError(f"ERROR: PyMySQL is not importable by {sys.executable} (pip install PyMySQL)") from None
        parts = urlsplit(url)
        bind = parse_qs(parts.query).get("bind_address", [None])[0]  # PyMySQL's, as SQLAlchemy passes it
        if not parts.scheme.startswith("mysql"):
            raise SimError(f"Rolling upgrades are currently supported only for MySQL and Sqlite (got {parts.scheme!r})")
        self.error = pymysql.err.MySQLError
        try:
            self.conn = pymysql.connect(
                host=parts.hostname or "localhost", port=parts.port or 3306, user=unquote(parts.username or ""),
                password=unquote(parts.password or ""), database=unquote(parts.path.lstrip("/")),
                connect_timeout=10, autocommit=True, charset="utf8mb4", bind_address=bind,
            )
        except pymysql.err.MySQLError as exc:
            raise SimError(f"ERROR: ({exc.__class__.__module__}.{exc.__class__.__name__}) {exc}") from None

    def sql(self, statement: str, args: tuple = ()) -> list[tuple]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(statement, args or None)
                return list(cur.fetchall())
        except self.error as exc:
            raise SimError(f"ERROR: ({exc.__class__.__module__}.{exc.__class__.__name__}) {exc}") from None

    def has_table(self, name: str) -> bool:
        return bool(self.sql("SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s", (name,)))

    def heads(self) -> list[str]:
        if not self.has_table("alembic_version"):
            return []
        return [r[0] for r in self.sql("SELECT version_num FROM alembic_version ORDER BY version_num")]

    def set_heads(self, heads: list[str]) -> None:
        self.sql("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY) ENGINE=InnoDB")
        self.sql("DELETE FROM alembic_version")
        for head in heads:
            self.sql("INSERT INTO alembic_version (version_num) VALUES (%s)", (head,))

    def pending_migrations(self, release: Release) -> bool:
        if not release.tables:  # this release's data migrations are empty
            return False
        return not (self.has_table("sim_migrated") and self.sql("SELECT 1 FROM sim_migrated WHERE release_name = %s", (release.name,)))

    def mark_migrated(self, release: Release) -> None:
        self.sql("CREATE TABLE IF NOT EXISTS sim_migrated (release_name VARCHAR(16) NOT NULL PRIMARY KEY) ENGINE=InnoDB")
        self.sql("INSERT IGNORE INTO sim_migrated (release_name) VALUES (%s)", (release.name,))


class Manage:
    """``glance-manage db …`` with Glance's own decisions and messages."""

    def __init__(self, schema: Schema, release: Release) -> None:
        self.db, self.rel = schema, release

    def _previous_contract(self) -> str | None:
        i = ORDER.index(self.rel.name)
        return next(r.contract for r in RELEASES.values() if r.name == ORDER[i - 1]) if i > 0 else None

    def version(self) -> int:
        heads = self.db.heads()
        if not heads:
            print('Database is either not under migration control or under legacy migration control, please run '
                  '"glance-manage db sync" to place the database under alembic migration control.')
        for head in heads:
            print(head)
        return 0

    def check(self) -> int:
        heads = self.db.heads()
        if self.rel.contract in heads:
            print("Database is up to date. No upgrades needed.")
            return 0
        if self.rel.expand not in heads:
            print("Your database is not up to date. Your first step is to run `glance-manage db expand`.")
            return 3
        if self.db.pending_migrations(self.rel):
            print("Your database is not up to date. The next step is to run `glance-manage db migrate`.")
            return 4
        print("Your database is not up to date. The next step is to run `glance-manage db contract`.")
        return 5

    def expand(self) -> int:
        heads = self.db.heads()
        if self.rel.contract in heads:
            print("Database is up to date. No migrations needed.")
            return 0
        if self.rel.expand in heads:
            print("Database expansion is up to date. No expansion needed.")
            return 0
        previous = self._previous_contract()
        if not heads or previous not in heads:
            raise SimError(f"Database expansion failed: the database is at {heads or 'no revision'}, expected "
                           f"{previous or 'a synced schema'} (run `glance-manage db sync` with the older release first)")
        for table in self.rel.tables:
            self.db.sql(DDL[table])
        self.db.set_heads(sorted({*heads, self.rel.expand}))
        return 0

    def _expanded(self, subject: str) -> bool:
        """False when already contracted (nothing to do); SimError when expand has not run yet."""
        heads = self.db.heads()
        if self.rel.contract in heads:
            print("Database is up to date. No migrations needed.")
            return False
        if self.rel.expand not in heads:
            raise SimError(f"{subject} did not run. {subject} cannot be run before database expansion. "
                           'Run database expansion first using "glance-manage db expand"')
        return True

    def migrate(self) -> int:
        if not self._expanded("Data migration"):
            return 0
        if self.db.pending_migrations(self.rel):
            self.db.mark_migrated(self.rel)
            rows = self.db.sql("SELECT COUNT(*) FROM images")[0][0] if self.db.has_table("images") else 0
            print(f"Migrated {rows} rows")
        else:
            print("Database migration is up to date. No migration needed.")
        return 0

    def contract(self) -> int:
        if not self._expanded("Database contraction"):
            return 0
        if self.db.pending_migrations(self.rel):
            raise SimError("Database contraction did not run. Database contraction cannot be run before data migration is "
                           'complete. Run data migration using "glance-manage db migrate".')
        self.db.set_heads([self.rel.contract])
        return 0

    def sync(self) -> int:
        heads = self.db.heads()
        if self.rel.contract in heads:
            print("Database is synced successfully.")
            return 0
        if heads:  # an older release's schema: the offline path runs expand, migrate and contract
            self.expand()
            if self.db.pending_migrations(self.rel):
                self.db.mark_migrated(self.rel)
            self.contract()
        else:
            for release in RELEASES.values():
                for table in ("images", *IMPORT_TABLES) if release is RELEASES[26] else release.tables:
                    self.db.sql(DDL[table])
                if release.tables:
                    self.db.mark_migrated(release)
                if release is self.rel:
                    break
            self.db.set_heads([self.rel.contract])
        print("Database is synced successfully.")
        return 0


def manage_main(argv: list[str], script: str) -> int:
    version = read_version(script)
    parser = argparse.ArgumentParser(prog="glance-manage")
    parser.add_argument("--config-file", action="append", default=[])
    parser.add_argument("--version", action="store_true")
    parser.add_argument("category", nargs="?", choices=["db"])
    parser.add_argument("action", nargs="?", choices=["check", "version", "expand", "migrate", "contract", "sync"])
    args = parser.parse_args(argv)
    if args.version:
        print(version)
        return 0
    if not args.action:
        parser.error("usage: glance-manage --config-file FILE db check|version|expand|migrate|contract|sync")
    try:
        conf = read_conf(args.config_file)
        url = conf.get("database", "connection", fallback="")
        if not url:
            raise SimError("ERROR: [database] connection is not set")
        return getattr(Manage(Schema(url), release_of(version)), args.action)()
    except SimError as exc:
        print(exc, file=sys.stderr)
        return 1


def main(tool: str, script: str) -> int:
    entry = api_main if tool == "glance-api" else manage_main
    return entry(sys.argv[1:], script)
