"""The context's memoised probes: one probe per node per evaluation, and a fresh probe of one
node (as an action makes) never re-probes the others."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

from glance_tui.context import Context, RunState
from glance_tui.journal import NullJournal
from glance_tui.plan import _facts
from glance_tui.probes import NodeFacts


class CountingCluster:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def probe_node(self, name: str) -> NodeFacts:
        self.calls[name] += 1
        await asyncio.sleep(0.01)
        return NodeFacts(name, name, version="26.1.0", release="2023.1", running=True, stale=False)


def make_ctx() -> tuple[Context, CountingCluster]:
    config = SimpleNamespace(nodes=[SimpleNamespace(name=n) for n in ("a", "b", "c")])
    cluster = CountingCluster()
    return Context(config, cluster, NullJournal(), RunState(), lambda e: None), cluster


async def test_gates_evaluated_together_share_one_probe_per_node():
    ctx, cluster = make_ctx()
    results = await asyncio.gather(*(ctx.node_facts() for _ in range(5)))
    assert all(set(r) == {"a", "b", "c"} for r in results)
    assert cluster.calls == Counter({"a": 1, "b": 1, "c": 1})


async def test_an_actions_fresh_probe_of_its_node_leaves_the_others_memoised():
    ctx, cluster = make_ctx()
    await ctx.node_facts()
    f = await _facts(ctx, "b")
    assert f.name == "b"
    assert cluster.calls == Counter({"a": 1, "b": 2, "c": 1})
    ctx.invalidate("nodes")  # everything, as before a gate evaluation
    await ctx.node_facts()
    assert cluster.calls == Counter({"a": 2, "b": 3, "c": 2})


async def test_the_live_view_reuses_reads_younger_than_its_max_age():
    ctx, cluster = make_ctx()
    await ctx.node_facts()
    ctx.invalidate("nodes", older_than=60)
    await ctx.node_facts()
    assert cluster.calls == Counter({"a": 1, "b": 1, "c": 1})
    await asyncio.sleep(0.01)
    ctx.invalidate("nodes", older_than=0.005)
    await ctx.node_facts()
    assert cluster.calls == Counter({"a": 2, "b": 2, "c": 2})


def test_a_process_started_after_the_run_saw_the_node_stopped_is_not_stale():
    """ps's whole seconds make a start within a second of the install look stale; the run's own
    journaled sighting of the node stopped (same install) settles it — and only that."""
    from dataclasses import replace

    ctx, _ = make_ctx()
    stopped = NodeFacts("b", "b", version="28.2.0", release="2024.1", running=False, installed_at=1000.0, clock=1001.0)
    ctx.note_stopped(stopped)
    assert ctx.state.started["b"] == {"installed_at": 1000.0, "stopped_at": 1001.0}
    ambiguous = NodeFacts("b", "b", version="28.2.0", release="2024.1", running=True, installed_at=1000.0, started_at=1001.0,
                          stale=True, pids=(42,))
    assert ctx.own_start(ambiguous).stale is False and ctx.own_start(ambiguous).on("2024.1", "28.2.0")
    # started before the run saw the node stopped: not the run's own start
    assert ctx.own_start(replace(ambiguous, started_at=1000.0)).stale is True
    # installed again since: the record says nothing about this install
    assert ctx.own_start(replace(ambiguous, installed_at=1000.5)).stale is True
    # another node, or no sighting: unchanged
    assert ctx.own_start(replace(ambiguous, name="c")).stale is True
    # a node seen running, or with an unknown clock, is never noted as stopped
    ctx.note_stopped(replace(stopped, name="c", running=None))
    ctx.note_stopped(replace(stopped, name="c", clock=None))
    assert "c" not in ctx.state.started


async def test_an_early_db_check_dropped_while_adopted_is_asked_again_not_a_cancellation():
    from glance_tui.probes import DbCheck

    ctx, _ = make_ctx()
    asked: list[str] = []

    async def ask(node, release, heads):
        asked.append(node)
        return DbCheck(node, 0, release, heads=heads)

    async def heads():
        return ("2024_1_expand01",)

    ctx._ask_glance = ask
    ctx._read_heads = heads
    early = asyncio.ensure_future(asyncio.sleep(10))
    early.cancel()  # invalidate("dbcheck") dropped it
    facts = NodeFacts("a", "a", version="28.2.0", release="2024.1", running=False)
    check = await ctx._adopt_early(early, "a", facts)
    assert (check.node, check.code, check.release, asked) == ("a", 0, "2024.1", ["a"])
