"""Step 1 of the guide: a verified mysqldump of the Glance schema, before anything changes.

The dump runs where ``backup.where`` says (locally or on a node over SSH). The password never
appears on a command line: it reaches mysqldump on stdin as a ``[client]`` option file
(``--defaults-extra-file=/dev/stdin``, checked with MariaDB 10.11's mysqldump). The dump is
written to ``*.partial`` and renamed only when mysqldump succeeded, then inspected (size,
sha256, ``CREATE TABLE `images```, the trailing "Dump completed" line). The record is
re-verified on resume, so a gate can tell whether the backup still stands.
"""

from __future__ import annotations

import posixpath
import shlex
import time
from dataclasses import asdict, dataclass
from typing import Any, Awaitable, Callable, Protocol

from glance_tui.adapters.local import CommandResult, OnLine
from glance_tui.commands import RemoteCommand, quote_args
from glance_tui.config import Config, DatabaseConfig
from glance_tui.errors import GlanceTuiError
from glance_tui.secrets import redact

IMAGES_MARKER = "CREATE TABLE `images`"
_INSPECT_TIMEOUT = 600.0


class Shell(Protocol):
    """``LocalShell`` or ``NodeSSH``: anything with their ``run`` signature."""

    async def run(self, command: str, *, timeout: float | None = None, on_line: OnLine | None = None,
                  input: str | None = None) -> CommandResult: ...


Send = Callable[[RemoteCommand, str], Awaitable[CommandResult]]


class BackupError(GlanceTuiError):
    """The backup could not be made or does not hold what a restore would need."""


@dataclass(frozen=True)
class BackupRecord:
    path: str
    size: int
    sha256: str
    has_images_table: bool
    where: str  # "local" or the node name

    def as_dict(self) -> dict[str, Any]:
        """For the journal/state file; ``BackupRecord(**d)`` restores it."""
        return asdict(self)


@dataclass(frozen=True)
class BackupCheck:
    """Gate-shaped answer: is the recorded backup still there and unchanged?"""

    ok: bool
    reason: str
    fix: str = ""


def default_stamp() -> str:
    """UTC timestamp used in the dump's file name, e.g. ``20240501T120000Z``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def backup_path(cfg: Config, stamp: str) -> str:
    if not stamp or "/" in stamp or "\0" in stamp or stamp.startswith("."):  # shell-quoted later; only the path must be safe
        raise BackupError(f"invalid backup stamp {stamp!r}", fix="use a timestamp such as 20240501T120000Z (no '/')")
    schema = cfg.database.schema_name
    if "/" in schema or schema.startswith("-") or not schema:
        raise BackupError(f"schema name {schema!r} cannot be used in a file name or on a command line", fix="check database.schema")
    return posixpath.join(cfg.backup.directory, f"glance-{schema}-{stamp}.sql")


def _option_value(value: str) -> str:
    """A double-quoted value for a MySQL/MariaDB option file (backslash escapes)."""
    for raw, esc in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        value = value.replace(raw, esc)
    return f'"{value}"'


def defaults_file(db: DatabaseConfig) -> str:
    """The ``[client]`` option file fed to mysqldump on stdin (holds the password: never log it)."""
    return f"[client]\npassword={_option_value(db.password.reveal())}\n"


def build_backup_command(cfg: Config, *, stamp: str) -> RemoteCommand:
    """The dump command (no secret in it); run it with ``input=defaults_file(cfg.database)``."""
    db, path = cfg.database, backup_path(cfg, stamp)
    partial = path + ".partial"
    dump = quote_args(
        cfg.backup.mysqldump, "--defaults-extra-file=/dev/stdin",  # must be the first option
        f"--host={db.host}", f"--port={db.port}", f"--user={db.user}",
        "--single-transaction", "--routines", "--triggers", f"--result-file={partial}", db.schema_name,
    )
    script = (
        f"umask 077 && mkdir -p -- {quote_args(cfg.backup.directory)} && {dump} && mv -f -- {quote_args(partial, path)}"
        f" || {{ rc=$?; rm -f -- {quote_args(partial)}; exit $rc; }}"
    )
    # changes=True: tagged and journaled before it is sent, so a resumed run never starts a second dump beside it
    return RemoteCommand(cfg.backup.where, script, f"mysqldump schema {db.schema_name} to {path}", changes=True,
                         timeout=cfg.backup.timeout, tags=("backup",))


def build_verify_command(path: str, where: str) -> RemoteCommand:
    """Prints ``size=``, ``sha256=``, ``images=yes|no``, ``complete=yes|no``; exit 3 if the file is missing."""
    f = quote_args(path)
    script = (
        f"if [ ! -f {f} ]; then echo missing; exit 3; fi; "
        f"printf 'size=%s\\n' \"$(wc -c < {f} | tr -d ' ')\"; "
        f"printf 'sha256=%s\\n' \"$(sha256sum < {f} | cut -d ' ' -f 1)\"; "
        f"if grep -qF {quote_args(IMAGES_MARKER)} {f}; then echo images=yes; else echo images=no; fi; "
        f"if tail -n 1 {f} | grep -q '^-- Dump completed'; then echo complete=yes; else echo complete=no; fi"
    )
    return RemoteCommand(where, script, f"verify backup {path}", timeout=_INSPECT_TIMEOUT, tags=("backup",))


async def _inspect(shell: Shell, path: str, where: str) -> dict[str, str] | None:
    """The verify command's fields, or None if the file does not exist."""
    cmd = build_verify_command(path, where)
    result = await shell.run(cmd.command, timeout=cmd.timeout)
    if result.exit_status == 3 and "missing" in result.stdout:
        return None
    fields = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if not result.ok or not {"size", "sha256", "images", "complete"} <= fields.keys():
        raise BackupError(f"cannot inspect {path}: {' | '.join(result.tail(3)) or 'no output'}", where=f"backup on {where}",
                          fix="check that sha256sum, grep and tail exist there and the file is readable")
    return fields


async def run_backup(cfg: Config, shell: Shell, *, stamp: str, on_line: OnLine | None = None, send: Send | None = None) -> BackupRecord:
    """Dump, then verify: non-empty, complete, contains the ``images`` table. Raises BackupError.

    ``send(cmd, input)`` sends the dump itself: the engine's tags and journals it first
    (``Context.run``); without it the dump goes straight to ``shell``.
    """
    where = cfg.backup.where
    cmd = build_backup_command(cfg, stamp=stamp)
    place = f"backup on {where}"
    if send is not None:
        result = await send(cmd, defaults_file(cfg.database))
    else:
        result = await shell.run(cmd.command, timeout=cmd.timeout, on_line=on_line, input=defaults_file(cfg.database))
    if result.timed_out:
        raise BackupError(f"mysqldump did not finish within {cfg.backup.timeout:g}s", where=place,
                          fix="raise backup.timeout, or check the database's load")
    if not result.ok:
        tail = redact(" | ".join(result.tail(3))) or f"exit status {result.exit_status}"
        raise BackupError(f"mysqldump failed: {tail}", where=place,
                          fix="check database.* in the config, the user's grants, and that backup.directory is writable")
    path = backup_path(cfg, stamp)
    fields = await _inspect(shell, path, where)
    if fields is None:
        raise BackupError(f"mysqldump reported success but {path} does not exist", where=place, fix="check backup.directory")
    size = int(fields["size"])
    if size == 0:
        raise BackupError(f"the dump {path} is empty", where=place, fix="check database.schema and the user's grants")
    if fields["complete"] != "yes":
        raise BackupError(f"the dump {path} is incomplete (no 'Dump completed' line)", where=place, fix="re-run the backup; check disk space")
    if fields["images"] != "yes":
        raise BackupError(f"the dump {path} has no `images` table: this is not Glance's schema", where=place,
                          fix=f"set database.schema to the schema in Glance's [database] connection (now {cfg.database.schema_name!r})")
    return BackupRecord(path, size, fields["sha256"], True, where)


async def check_backup(shell: Shell, record: BackupRecord | None) -> BackupCheck:
    """Gate helper: the recorded backup exists with the same size, sha256 and images table."""
    if record is None:
        return BackupCheck(False, "no verified backup of the Glance database yet", "run step 1 (backup) first")
    fields = await _inspect(shell, record.path, record.where)
    redo = "make a new backup (step 1) before changing the schema"
    if fields is None:
        return BackupCheck(False, f"backup {record.path} on {record.where} no longer exists", redo)
    if int(fields["size"]) != record.size or fields["sha256"] != record.sha256:
        return BackupCheck(False, f"backup {record.path} changed since it was taken (size/sha256 differ)", redo)
    if fields["images"] != "yes" or not record.has_images_table:
        return BackupCheck(False, f"backup {record.path} has no `images` table", redo)
    return BackupCheck(True, f"backup {record.path} on {record.where}: {record.size} bytes, sha256 {record.sha256[:12]}…")


async def file_signature(shell: Shell, path: str) -> str | None:
    """``size ctime inode`` of ``path`` (None if it cannot be read): any write, replace or chmod
    changes it, and ctime cannot be set back by a user, so an equal signature means unchanged."""
    try:
        result = await shell.run(f"stat -L -c '%s %Z %i' -- {shlex.quote(path)}", timeout=30)
    except GlanceTuiError:
        return None
    text = result.stdout.strip()
    return text if result.ok and len(text.split()) == 3 else None


async def verify_backup(shell: Shell, record: BackupRecord) -> bool:
    """Re-check size and sha256 of a recorded backup (used on resume)."""
    return (await check_backup(shell, record)).ok
