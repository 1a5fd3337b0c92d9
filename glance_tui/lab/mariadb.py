"""A real MariaDB server (Debian's package) living in one directory, for the lab and the tests.

Runs unprivileged as a detached process with its own socket and pid file, so several
instances (one with binary logging for the log_bin gate) can run side by side on loopback.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from glance_tui.errors import GlanceTuiError
from glance_tui.lab import procs


def sql_string(value: str) -> str:
    """A single-quoted SQL string literal (for setup statements run as root)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_ident(name: str) -> str:
    """A backquoted SQL identifier."""
    return "`" + name.replace("`", "``") + "`"


@dataclass
class MariaDB:
    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port at start
    log_bin: bool = False  # binary logging on, for the log_bin_trust_function_creators gate

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def socket(self) -> Path:
        return self.workdir / "mysqld.sock"

    @property
    def pidfile(self) -> Path:
        return self.workdir / "mariadbd.pid"

    @property
    def log(self) -> Path:
        return self.workdir / "mariadbd.log"

    def is_running(self) -> bool:
        return procs.is_running(self.pidfile)

    def start(self, timeout: float = 60) -> None:
        """Initialise the datadir if empty, start ``mariadbd`` detached, wait until it answers."""
        if self.is_running():
            raise GlanceTuiError(
                f"MariaDB is already running (pid {procs.read_pid(self.pidfile)})",
                where=str(self.workdir),
                fix="stop it first, or reuse it",
            )
        mariadbd = procs.require_binary("mariadbd")
        procs.require_binary("mariadb")
        if self.port == 0:
            self.port = procs.free_port(self.host)
        procs.require_free_port(self.host, self.port, "MariaDB")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.datadir.exists() or not any(self.datadir.iterdir()):
            self._install_db()
        argv = [
            mariadbd,
            "--no-defaults",
            "--user=root",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--pid-file={self.workdir / 'mariadbd.server.pid'}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
            "--performance-schema=OFF",
        ]
        if self.log_bin:
            argv += [f"--log-bin={self.workdir / 'binlog' / 'mariadb-bin'}", "--server-id=1"]
            (self.workdir / "binlog").mkdir(exist_ok=True)
        pid = procs.start_detached(argv, log=self.log, pidfile=self.pidfile)
        procs.wait_for_port(self.host, self.port, timeout, pid=pid, what="mariadbd", log=self.log)
        self._wait_for_socket(pid, timeout)

    def _install_db(self) -> None:
        install = procs.require_binary("mysql_install_db")
        self.datadir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [install, "--no-defaults", "--user=root", f"--datadir={self.datadir}", "--auth-root-authentication-method=socket",
             "--skip-test-db"],
            capture_output=True, text=True, timeout=180,
        )
        if result.returncode != 0:
            tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
            raise GlanceTuiError(f"mysql_install_db failed: {tail}", where=str(self.datadir), fix="remove the directory and retry")

    def _wait_for_socket(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not procs.pid_alive(pid):
                raise GlanceTuiError("mariadbd exited during start-up", where=str(self.workdir), fix=f"see {self.log}")
            if self.socket.exists() and self._client("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise GlanceTuiError(f"mariadbd did not answer on {self.socket} within {timeout:.0f}s", fix=f"see {self.log}")

    def stop(self) -> bool:
        """Stop the server this instance started; True if something was stopped."""
        return procs.stop_pid(self.pidfile, timeout=30)

    def _client(self, sql: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [procs.require_binary("mariadb"), "--no-defaults", "--user=root", f"--socket={self.socket}",
                "--batch", "--skip-column-names"]
        result = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise GlanceTuiError(f"SQL failed: {result.stderr.strip()}", where=f"mariadb {self.socket}", fix="check the statement")
        return result

    def execute(self, sql: str) -> str:
        """Run ``sql`` as root over the unix socket (synchronous: setup only); return stdout."""
        return self._client(sql).stdout

    def create_database(self, schema: str, user: str, password: str, *, grant_super: bool = False,
                        hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> None:
        """Create ``schema`` and ``user`` (for each of ``hosts``) with all rights on it."""
        stmts = [f"CREATE DATABASE IF NOT EXISTS {sql_ident(schema)};"]
        for host in hosts:
            account = f"{sql_string(user)}@{sql_string(host)}"
            stmts += [
                f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {sql_string(password)};",
                f"GRANT ALL PRIVILEGES ON {sql_ident(schema)}.* TO {account};",
            ]
            if grant_super:
                stmts.append(f"GRANT SUPER ON *.* TO {account};")
        self.execute("\n".join(stmts))

    def grant_process(self, user: str, host: str) -> None:
        """PROCESS for ``user``@``host``: it then sees every client's connection (the db-clients gates)."""
        self.execute(f"GRANT PROCESS ON *.* TO {sql_string(user)}@{sql_string(host)};")

    def drop_database(self, schema: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {sql_ident(schema)};")
