"""80×24 comfort: every node column and step title fits, resizing keeps the cursor, cells
change in place and repaint only their row (a slow SSH link carries only what changed)."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from glance_tui.api import RunState
from screens.checklist import Checklist
from screens.nodes import COLUMNS, NodeTable
from tests.ui_helpers import make, ready, wait_for


def labels(table: DataTable) -> list[str]:
    return [c.label.plain for c in table.ordered_columns]


def fits(table: DataTable) -> bool:
    """No horizontal scrolling: everything in the table is on screen."""
    return table.virtual_size.width <= table.scrollable_content_region.width


async def settled(pilot):
    main = await ready(pilot)
    table = main.query_one("#nodes", NodeTable)
    await wait_for(pilot, lambda: table.cell("glance-3", "release") != "probing…" and table.cell("glance-3", "lb") != "…")
    await wait_for(pilot, lambda: main.query_one("#db").checked)
    await pilot.pause(0.05)  # column widths are measured when the table is idle
    return main, table


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_every_column_and_step_title_fits(tmp_path, size):
    app, engine = make(tmp_path, state=RunState(new_node="glance-1"))
    engine.sim["glance-2"].state = "DRAIN"
    async with app.run_test(size=size) as pilot:
        main, table = await settled(pilot)
        narrow = size[0] < 100
        assert labels(table) == [short if narrow else label for _, label, short in COLUMNS]
        assert fits(table), f"node table scrolls sideways at {size}"
        checklist = main.query_one("#steps", Checklist)
        assert fits(checklist), f"checklist titles are cut at {size}"
        db = main.query_one("#db")
        if narrow:  # the database is a strip under the nodes, not a column stealing their width
            assert db.region.y >= table.region.bottom and db.region.width >= 78
            assert "db check: expand is next · exit 3 on glance-1" in db.render().plain
        else:
            assert db.region.x >= table.region.right
        titles = {s.id: str(checklist.get_cell(s.id, "title")) for s in engine.plan.steps}
        assert titles["new-node"] == ("2 Drain, stop NEW NODE" if narrow else "2 Drain, stop NEW NODE (glance-1)")
        # the full title is in the selected step's panel
        checklist.select("new-node")
        await wait_for(pilot, lambda: "Step 2 · Drain and stop the NEW NODE (glance-1)" in main.query_one("#step-detail").render().plain)


async def test_resize_keeps_cursors_and_cells_update_in_place(tmp_path):
    app, engine = make(tmp_path, state=RunState(new_node="glance-1"))
    async with app.run_test(size=(120, 40)) as pilot:
        main, table = await settled(pilot)
        checklist = main.query_one("#steps", Checklist)
        checklist.select("migrate")
        table.move_cursor(row=2)
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: "In-fl" in labels(table) and app.screen.has_class("-narrow"))
        await pilot.pause(0.05)
        assert checklist.selected_id == "migrate" and table.cursor_row == 2
        assert fits(table) and fits(checklist)
        engine.sim["glance-3"].in_flight = 4
        await wait_for(pilot, lambda: table.cell("glance-3", "inflight") == "4")
        assert str(table.get_cell("glance-3", "inflight")) == "4"
        assert checklist.selected_id == "migrate" and table.cursor_row == 2 and table.scroll_offset.y == 0
        await pilot.resize_terminal(120, 40)
        await wait_for(pilot, lambda: "In-flight" in labels(table))
        assert checklist.selected_id == "migrate" and str(checklist.get_cell("start-new", "title")) == "6 Start NEW NODE (glance-1)"


async def test_a_changed_cell_repaints_only_its_row(tmp_path, monkeypatch):
    app, engine = make(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        main, table = await settled(pilot)
        assert fits(main.query_one("#steps", Checklist))  # also before a NEW NODE is chosen (the step-7 placeholder)
        full: list[str] = []
        rows: list[int] = []
        base_refresh, base_row = DataTable.refresh, DataTable.refresh_row

        def spy_refresh(self, *regions, **kw):
            if self is table and not regions:
                full.append(repr(kw))
            return base_refresh(self, *regions, **kw)

        def spy_row(self, row_index):
            if self is table:
                rows.append(row_index)
            return base_row(self, row_index)

        monkeypatch.setattr(DataTable, "refresh", spy_refresh)
        monkeypatch.setattr(DataTable, "refresh_row", spy_row)
        engine.sim["glance-2"].in_flight = 3  # same width as "0": one row
        await wait_for(pilot, lambda: table.cell("glance-2", "inflight") == "3")
        assert rows == [1] and not full
        engine.sim["glance-2"].state = "MAINT"  # wider than any LB value so far: the column is re-measured
        await wait_for(pilot, lambda: table.cell("glance-2", "lb") == "MAINT")
        await pilot.pause(0.05)
        assert full and fits(table) and str(table.get_cell("glance-2", "lb")) == "MAINT"


async def test_at_60x20_the_selected_step_stays_readable(tmp_path):
    """At 60×20 the checklist took 38 of 60 columns and the selected step's panel collapsed to two cut lines."""
    app, engine = make(tmp_path, state=RunState(new_node="glance-1"))
    async with app.run_test(size=(60, 20)) as pilot:
        main, table = await settled(pilot)
        panel = main.query_one("#step-scroll")
        region = panel.scrollable_content_region
        assert region.width >= 28 and region.height >= 3, f"selected step panel is {region.width}×{region.height}"
        checklist = main.query_one("#steps", Checklist)
        checklist.select("new-node")
        await wait_for(pilot, lambda: "Step 2 · Drain and stop the NEW NODE" in main.query_one("#step-detail").render().plain)
        db = main.query_one("#db")
        assert db.region.height >= 4 and "db check: expand is next" in db.render().plain  # the verdict line is not cut off
        assert table.region.height >= 4  # the header and the three nodes
    (tmp_path / "80").mkdir()
    app, engine = make(tmp_path / "80", state=RunState(new_node="glance-1"))
    async with app.run_test(size=(80, 24)) as pilot:  # and the tiny layout is only for tiny terminals
        main, _ = await settled(pilot)
        assert not main.has_class("-tiny") and main.query_one("#steps").region.width == 38
