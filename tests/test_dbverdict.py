"""Glance's verdict (``glance-manage db check``) is asked only when the heads or the code
changed, or where the run says only Glance can tell; gates are timed in the journal.
On the simulated cluster with real MariaDB, HAProxy and sshd."""

from __future__ import annotations

import pytest

from glance_tui.context import Context, RunState
from glance_tui.engine import Engine
from glance_tui.journal import NullJournal, read_records
from glance_tui.operator import Unattended
from glance_tui.probes import Cluster

pytestmark = pytest.mark.services


async def test_db_check_is_kept_by_heads_and_code_version(sim_lab, sim_config):
    sim_lab.reset()
    cluster = Cluster(sim_config)
    ctx = Context(sim_config, cluster, NullJournal(), RunState(new_node="glance-1"), lambda e: None)
    try:
        assert await ctx.db_heads() == ("2023_1_contract01",)
        old = await ctx.newest_db_check()
        assert old is not None and old.code == 0 and old.release == "2023.1"
        assert ctx.verdicts.asked == 1
        for _ in range(3):  # the live view and every gate evaluation: heads read, Glance not asked
            ctx.invalidate()
            assert (await ctx.newest_db_check()) == old
        assert ctx.verdicts.asked == 1

        upgraded = await ctx.run(ctx.commands("glance-1").upgrade())
        assert upgraded.ok, upgraded.tail()
        ctx.invalidate()
        new = await ctx.target_db_check()  # other code: Glance is asked
        assert new is not None and new.code == 3 and new.release == "2024.1"
        assert ctx.verdicts.asked == 2

        expanded = await ctx.run(ctx.commands("glance-1").db_expand())
        assert expanded.ok, expanded.tail()
        ctx.invalidate()  # heads moved: asked again without being told
        assert await ctx.db_heads() == ("2023_1_contract01", "2024_1_expand01")
        assert (await ctx.target_db_check()).code == 4
        assert ctx.verdicts.asked == 3

        migrated = await ctx.run(ctx.commands("glance-1").db_migrate())
        assert migrated.ok, migrated.tail()
        ctx.invalidate()  # same heads, same code: the kept verdict (the run itself forgets it after migrate)
        assert (await ctx.target_db_check()).code == 4 and ctx.verdicts.asked == 3
        ctx.invalidate("dbcheck")
        assert (await ctx.target_db_check()).code == 5 and ctx.verdicts.asked == 4
    finally:
        await cluster.close()
        sim_lab.reset()


async def test_concurrent_gates_share_one_db_check_and_are_timed(sim_lab, sim_config, tmp_path):
    sim_lab.reset()
    engine = Engine.open(sim_config, resume=False, journal_base=tmp_path / "runs")
    seen: list[object] = []
    unsubscribe = engine.subscribe(seen.append)
    try:
        preflight = engine.plan.step("preflight")
        assert await engine.run_step(preflight, Unattended()) == "done"
        assert engine.ctx.verdicts.asked == 1
        records = [r for r in read_records(engine.journal.path) if r.get("event") == "gates"]
        assert records, "no gates record journaled"
        durations = {g["gate"]: g["duration"] for g in records[-1]["results"]}
        assert set(durations) == {g.id for g in preflight.gates}
        assert all(isinstance(d, float) and d >= 0 for d in durations.values()), durations
        assert seen
        unsubscribe()
        count = len(seen)
        await engine.evaluate(engine.plan.step("backup"))
        assert len(seen) == count, "an unsubscribed listener still got events"
        unsubscribe()  # a second call is harmless
    finally:
        await engine.close()


async def test_the_early_db_check_is_used_only_where_the_facts_point(sim_lab, sim_config):
    """``check`` asks Glance on the likely node while the nodes are probed: adopted when that is
    the node the facts pick, thrown away when another node has the target code, and never
    adopted after the run dropped the verdicts (a schema change in between)."""
    from glance_tui.lab import nodectl

    sim_lab.reset()
    cluster = Cluster(sim_config)
    ctx = Context(sim_config, cluster, NullJournal(), RunState(), lambda e: None)
    try:
        check = await ctx.newest_db_check(early=True)  # every node on 2023.1: glance-1's early answer is it
        assert (check.node, check.code, check.release) == ("glance-1", 0, "2023.1") and ctx.verdicts.asked == 1
        nodectl.set_release(nodectl.Node.load(sim_lab.node_dir("glance-3")), "2024.1")  # a package pre-staged on glance-3
        fresh = Context(sim_config, cluster, NullJournal(), RunState(), lambda e: None)
        check = await fresh.newest_db_check(early=True)  # asked early on glance-1 (2023.1), but glance-3 has the target
        assert (check.node, check.release, check.code) == ("glance-3", "2024.1", 3) and fresh.verdicts.asked == 2
        again = Context(sim_config, cluster, NullJournal(), RunState(), lambda e: None)
        await again.db_heads()
        again._start_early("glance-3", await again.db_heads())
        again.invalidate("dbcheck")  # the run changed the schema (or is about to): the early answer is dropped
        assert again._early is None
    finally:
        await cluster.close()
        sim_lab.reset()
