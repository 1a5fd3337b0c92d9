"""A tiny TCP proxy in front of one HAProxy's stats port that can be black-holed.

The stats-outage rehearsal points the tool's ``stats_url`` for one instance at this proxy and,
during a drain wait, makes it stop answering: connections are accepted (as by a hung or
overloaded stats listener) but nothing comes back until the outage ends. The instance itself
keeps serving traffic, as when only its stats listener or the path to it fails.
"""

from __future__ import annotations

import asyncio
import contextlib


class StatsProxy:
    def __init__(self, listen_host: str, upstream_host: str, upstream_port: int) -> None:
        self.listen_host = listen_host
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.blackholed = False
        self.dropped = 0  # connections and chunks swallowed during outages
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._client, self.listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def url(self, path: str = "/stats") -> str:
        return f"http://{self.listen_host}:{self.port}{path}"

    async def outage(self, seconds: float) -> None:
        """Stop answering for ``seconds``."""
        self.blackholed = True
        try:
            await asyncio.sleep(seconds)
        finally:
            self.blackholed = False

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task:
            self._tasks.add(task)
        try:
            while self.blackholed:  # accepted, never answered while the outage lasts
                self.dropped += 1
                await asyncio.sleep(0.1)
                if reader.at_eof():
                    return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            if task:
                self._tasks.discard(task)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                while self.blackholed:  # an open (keep-alive) connection goes silent too
                    self.dropped += 1
                    await asyncio.sleep(0.1)
                dst.write(data)
                await dst.drain()
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    async def close(self) -> None:
        self.blackholed = False
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
