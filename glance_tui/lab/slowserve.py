"""The lab's web-download source: a small HTTP server that serves large files slowly.

A ``web-download`` import runs inside a Glance API worker for as long as its download takes;
the lab needs one that lasts a chosen number of seconds. ``GET /blob/<seed>/<size>/<rate>``
streams ``size`` bytes at ``rate`` bytes/s. The bytes are a pure function of seed and size
(:func:`blob_chunks`), so the client knows the image's checksums before Glance does
(:func:`blob_digests`) without the server storing anything. It runs as the lab's own detached
process (``python -m glance_tui.lab.slowserve HOST PORT``, :class:`SlowWebServer`).
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from glance_tui.lab import procs

BLOCK = 64 * 1024
MAX_SIZE = 64 * 1024 ** 3
_PATH = re.compile(r"/blob/([A-Za-z0-9_-]{1,64})/(\d{1,12})/(\d{1,12})")


def blob_url(base: str, seed: str, size: int, rate: int) -> str:
    """Where the server serves ``size`` bytes of ``seed``'s stream at ``rate`` bytes/s."""
    return f"{base.rstrip('/')}/blob/{seed}/{size}/{rate}"


def blob_chunks(seed: str, size: int) -> Iterator[bytes]:
    """The blob's bytes in blocks: SHAKE-256 of (seed, block number), so any block is cheap to make
    and the whole stream is reproducible anywhere."""
    sent, n = 0, 0
    while sent < size:
        length = min(BLOCK, size - sent)
        yield hashlib.shake_256(f"{seed}:{n}".encode()).digest(length)
        sent += length
        n += 1


def blob_digests(seed: str, size: int) -> tuple[str, str]:
    """(md5, sha512) of the blob: Glance's ``checksum`` and ``os_hash_value`` for the imported image."""
    md5, sha512 = hashlib.md5(), hashlib.sha512()
    for chunk in blob_chunks(seed, size):
        md5.update(chunk)
        sha512.update(chunk)
    return md5.hexdigest(), sha512.hexdigest()


class SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "glance-tui-lab-slowserve"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        match = _PATH.fullmatch(self.path)
        if not match or not (0 < int(match.group(2)) <= MAX_SIZE) or int(match.group(3)) < 1:
            body = b"use /blob/<seed>/<size 1..64G>/<bytes per second >= 1>\n"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            return
        seed, size, rate = match.group(1), int(match.group(2)), int(match.group(3))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.send_header("Connection", "close")
        self.end_headers()
        started, sent = time.monotonic(), 0
        try:
            for chunk in blob_chunks(seed, size):
                # paced on the total, not per chunk: a byte goes out no sooner than its place / rate
                ahead = (sent + len(chunk)) / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.log_message("client went away after %d of %d bytes of %s", sent, size, seed)
            return
        self.log_message("served %d bytes of %s in %.1fs", sent, seed, time.monotonic() - started)
        self.close_connection = True


class SlowServer(ThreadingHTTPServer):
    daemon_threads = True


class SlowWebServer:
    """The lab's instance: a detached process with a pid file and a log under ``workdir``."""

    def __init__(self, workdir: Path, host: str, port: int) -> None:
        self.workdir, self.host, self.port = Path(workdir), host, port
        self.pidfile, self.log = self.workdir / "slowserve.pid", self.workdir / "slowserve.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def is_running(self) -> bool:
        return procs.is_running(self.pidfile)

    def start(self, timeout: float = 30) -> None:
        procs.require_free_port(self.host, self.port, "the slow web-download server")
        self.workdir.mkdir(parents=True, exist_ok=True)
        package_root = str(Path(__file__).resolve().parent.parent.parent)  # as the lab's sshd gives its nodes
        pid = procs.start_detached([sys.executable, "-m", "glance_tui.lab.slowserve", self.host, str(self.port)],
                                   log=self.log, pidfile=self.pidfile, env={"PYTHONPATH": package_root})
        procs.wait_for_port(self.host, self.port, timeout, pid=pid, what="the slow web-download server", log=self.log)

    def stop(self) -> bool:
        return procs.stop_pid(self.pidfile)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m glance_tui.lab.slowserve HOST PORT", file=sys.stderr)
        return 2
    server = SlowServer((argv[0], int(argv[1])), SlowHandler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
