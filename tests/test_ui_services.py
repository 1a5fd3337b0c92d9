"""The assistant driven by Pilot against the real engine on real MariaDB, HAProxy and sshd
(the simulated-Glance cluster of tests/fixtures/cluster.py): preflight to contract."""

from __future__ import annotations

import pytest

from glance_tui.api import DONE, Engine
from glance_tui.journal import read_records
from screens.app import GlanceApp
from tests.ui_helpers import drive_until, ready, wait_for

pytestmark = pytest.mark.services


async def test_wizard_upgrades_a_real_cluster(sim_lab, sim_config):
    sim_lab.reset()
    engine = Engine.open(sim_config, resume=False)
    app = GlanceApp(engine, config=sim_config, multiplexer=True, gate_interval=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        main = await ready(pilot, timeout=60)  # the first gate evaluation probes real services over SSH
        table = main.query_one("#nodes")
        await wait_for(pilot, lambda: table.cell("glance-1", "lb").startswith("UP"), timeout=60, what="live LB status")
        await drive_until(pilot, lambda: engine.states.get("contract") == DONE, timeout=900)  # a whole run on real services: generous for a loaded 2-core CI machine
        assert all(engine.states[s.id] == DONE for s in engine.plan.steps), engine.states
        await wait_for(pilot, lambda: table.cell("glance-3", "release").endswith("28.2.0"), timeout=60, what="node list refresh")
        assert table.cell("glance-1", "role") == "NEW NODE"
        await wait_for(pilot, lambda: any(r.get("event") == "run.end" for r in read_records(engine.journal.path)), timeout=60, what="run.end")
    records = list(read_records(engine.journal.path))
    ends = [r for r in records if r.get("event") == "versions" and r.get("when") == "end"]
    assert ends and set(ends[-1]["nodes"].values()) == {"28.2.0"} and ends[-1]["heads"] == ["2024_1_contract01"]  # the report's "after"
    facts = await engine.cluster.probe_nodes()
    heads = await engine.cluster.db.alembic_heads()
    await engine.close()
    assert {f.version for f in facts.values()} == {"28.2.0"}
    assert heads == ["2024_1_contract01"]
