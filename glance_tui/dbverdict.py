"""Glance's own verdict on the schema (``glance-manage db check``), asked only when it can differ.

``db check`` costs seconds (SSH, a Python start-up, Glance's migration scan), reading
``alembic_version`` costs milliseconds. Glance's answer depends on the schema and on the code
that asks, so a verdict is kept under (heads, code version) and reused while both are the
same; the run drops the verdicts itself where only Glance can tell (before expand, after
expand/migrate/contract, before contract: data migrations leave the heads unchanged).
Only clear answers are kept (exit 0/3/4/5); an error or an unknown is asked again next time,
and a verdict is kept only if the heads did not move while Glance was being asked.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from glance_tui.probes import DbCheck

Heads = tuple[str, ...]
VerdictKey = tuple[Heads, str | None, str | None]  # heads, release, version of the asking code
CLEAR = (0, 3, 4, 5)


class DbVerdicts:
    """``db check`` results by (heads, code version); concurrent askers share one run."""

    def __init__(self) -> None:
        self._done: dict[VerdictKey, DbCheck] = {}
        self._running: dict[VerdictKey, asyncio.Future[DbCheck]] = {}
        self.asked = 0  # how many times Glance was really asked (for tests and benchmarks)

    def forget(self) -> None:
        """Ask Glance again next time (the run just changed the schema, or is about to)."""
        self._done.clear()

    @property
    def empty(self) -> bool:
        """Nothing kept and nothing being asked."""
        return not self._done and not self._running

    def cached(self, key: VerdictKey) -> DbCheck | None:
        return self._done.get(key)

    async def get(self, key: VerdictKey, ask: Callable[[], Awaitable[DbCheck]],
                  heads_now: Callable[[], Awaitable[Heads | None]]) -> DbCheck:
        """The verdict for ``key``: kept, being asked already, or asked now via ``ask()``."""
        if (kept := self._done.get(key)) is not None:
            return kept
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._ask(key, ask, heads_now))
            self._running[key] = running
            running.add_done_callback(lambda _f: self._running.pop(key, None))
        return await asyncio.shield(running)

    async def _ask(self, key: VerdictKey, ask: Callable[[], Awaitable[DbCheck]],
                   heads_now: Callable[[], Awaitable[Heads | None]]) -> DbCheck:
        self.asked += 1
        check = await ask()
        if check.code in CLEAR and await heads_now() == key[0]:
            self._done[key] = check
        return check
