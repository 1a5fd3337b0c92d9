"""known_hosts read and indexed once per run, off the event loop, looked up per host as OpenSSH does.

A real known_hosts can hold tens of thousands of hashed entries (``|1|salt|hash``, each with its
own salt): parsing all of them into asyncssh, on the event loop, inside the connect deadline,
made a reachable node fail with "no SSH answer" after 15 s. Here the file is read once (again
only when it changes), in a thread; the lines that can name a host are picked out — hashed ones
by their HMAC-SHA1, plain ones by name, wildcard ones kept for asyncssh to judge — and only those
few are handed to asyncssh, already parsed. As OpenSSH (``CheckHostIP no``, its default), a host
is looked up by the name in the config: ``host`` and ``[host]:port``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from glance_tui.files import MIB, FileMissing, read_text

KNOWN_HOSTS_LIMIT = 16 * MIB
_WILDCARDS = frozenset("*?")


def host_names(host: str, port: int) -> tuple[str, ...]:
    """The names a known_hosts line may use for ``host`` on ``port`` (asyncssh also tries the name without the port)."""
    return (host, f"[{host}]:{port}") if port != 22 else (host,)


@dataclass
class KnownHostsIndex:
    """The lines of one known_hosts file, indexed by what can match them."""

    path: Path
    plain: dict[str, list[int]] = field(default_factory=dict)  # lower-cased name → line numbers
    hashed: list[tuple[bytes, bytes, int]] = field(default_factory=list)  # (salt, HMAC-SHA1 of the name, line)
    wild: list[int] = field(default_factory=list)  # lines with a wildcard pattern: asyncssh decides
    lines: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> "KnownHostsIndex | None":
        """The index of ``path`` (None when it does not exist); :class:`FileProblem` when unusable. Blocking: run it in a thread."""
        try:
            text = read_text(path, KNOWN_HOSTS_LIMIT, "known_hosts file")
        except FileMissing:
            return None
        index = cls(path)
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            patterns = fields[1] if line.startswith("@") and len(fields) > 1 else fields[0]
            number = len(index.lines)
            index.lines.append(line)
            for pattern in patterns.split(","):
                index._add(pattern.removeprefix("!"), number)
        return index

    def _add(self, pattern: str, number: int) -> None:
        if pattern.startswith("|1|"):
            try:
                _, _, salt, digest = pattern.split("|")
                self.hashed.append((base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True), number))
            except (ValueError, binascii.Error):
                self.wild.append(number)  # malformed: asyncssh names the problem if the line is ever used
        elif _WILDCARDS & set(pattern):
            self.wild.append(number)
        else:
            self.plain.setdefault(pattern.lower(), []).append(number)

    def lines_for(self, names: tuple[str, ...]) -> list[str]:
        """Every line that may match one of ``names`` (a superset: asyncssh applies the exact rules)."""
        encoded = [n.encode() for n in names]
        found = set(self.wild)
        for name in names:
            found.update(self.plain.get(name.lower(), ()))
        for salt, digest, number in self.hashed:
            if number not in found and any(hmac.compare_digest(hmac.digest(salt, n, "sha1"), digest) for n in encoded):
                found.add(number)
        return [self.lines[i] for i in sorted(found)]

    def known_hosts(self, host: str, port: int) -> asyncssh.SSHKnownHosts:
        """An asyncssh ``SSHKnownHosts`` holding only the lines for ``host``. Blocking: run it in a thread."""
        return asyncssh.import_known_hosts("\n".join(self.lines_for(host_names(host, port))) + "\n")


class KnownHostsCache:
    """One index per known_hosts file for the whole run, rebuilt only when the file changes
    (an operator who just ran ``ssh-keyscan >> known_hosts`` is heard on the next try)."""

    def __init__(self) -> None:
        self._files: dict[Path, tuple[tuple[int, int, int] | None, asyncio.Future[KnownHostsIndex | None]]] = {}

    async def index(self, path: Path) -> KnownHostsIndex | None:
        version = _version(path)
        cached = self._files.get(path)
        if cached is None or cached[0] != version or version is None or (cached[1].done() and cached[1].exception()):
            task = asyncio.ensure_future(asyncio.to_thread(KnownHostsIndex.read, path))
            self._files[path] = cached = (version, task)
        return await asyncio.shield(cached[1])


def _version(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is edited or replaced (None when it cannot be stat'ed: read it again)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns
