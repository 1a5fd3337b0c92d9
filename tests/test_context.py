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
