"""The database panel: every reading on its own line ("firewallsdb check" was an error running into
the next label), and never a ``db check`` verdict beside heads it was not given for (right after
contract it showed "contract is next (exit 5)" beside ``2024_1_contract01`` for seconds)."""

from __future__ import annotations

import pytest

from glance_tui.adapters.database import DatabaseFacts
from glance_tui.api import DBState, DbCheck, RunState
from screens.nodes import db_text, verdict_is_stale
from tests.ui_helpers import make, ready, wait_for

BEFORE = ["2023_1_contract01", "2024_1_expand01"]
AFTER = ["2024_1_contract01"]
UNREACHABLE = DBState(None, error="database 10.0.0.5:3306: cannot reach the database server — fix: check database.host/port, that the server runs, and firewalls")


def facts(heads: list[str]) -> DBState:
    return DBState(DatabaseFacts("10.11.6-MariaDB", "MariaDB", (10, 11, 6), [], False, False, False, heads, 20))


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("db", [None, UNREACHABLE, facts(BEFORE)], ids=["probing", "unreachable", "reachable"])
@pytest.mark.parametrize("check", [None, DbCheck("glance-1", 5, "2024.1", tuple(BEFORE)), DbCheck("glance-1", None, None, error="ssh refused")],
                         ids=["none", "contract-next", "unknown"])
def test_every_reading_ends_its_line(db: DBState | None, check: DbCheck | None, compact: bool) -> None:
    plain = db_text(db, check, checked=True, compact=compact).plain
    assert "db check:" in plain
    before = plain[:plain.index("db check:")]
    assert before == "Database " or before.endswith("\n"), repr(plain)  # "…firewallsdb check" no more
    assert "firewallsdb" not in plain


def test_a_verdict_for_other_heads_is_never_shown_as_current() -> None:
    stale = DbCheck("glance-1", 5, "2024.1", tuple(BEFORE))
    assert verdict_is_stale(facts(AFTER), stale)
    plain = db_text(facts(AFTER), stale, checked=True).plain
    assert "contract is next" not in plain and "exit 5" not in plain
    assert "heads 2024_1_contract01" in plain and "asking Glance again" in plain
    fresh = DbCheck("glance-1", 0, "2024.1", tuple(AFTER))
    assert not verdict_is_stale(facts(AFTER), fresh) and "up to date" in db_text(facts(AFTER), fresh, checked=True).plain
    # order of heads does not matter; a verdict without heads (Glance's db version failed) cannot disagree
    assert not verdict_is_stale(facts(list(reversed(BEFORE))), stale)
    assert not verdict_is_stale(facts(AFTER), DbCheck("glance-1", 5, "2024.1"))
    assert not verdict_is_stale(UNREACHABLE, stale) and not verdict_is_stale(None, stale)


async def test_right_after_contract_the_panel_does_not_show_the_old_verdict(tmp_path) -> None:
    """While a step works, db check is not run (it would run glance-manage on a node): the heads
    the panel reads move on; the old verdict must not stay beside them."""
    app, engine = make(tmp_path, state=RunState(new_node="glance-1"))
    engine.db_code = 5
    async with app.run_test(size=(120, 40)) as pilot:
        main = await ready(pilot)
        panel = main.query_one("#db")
        await wait_for(pilot, lambda: "db check: contract is next" in panel.render().plain)
        main.busy = True  # contract runs
        engine.db_code = 0
        await main.cluster.refresh_nodes()
        plain = panel.render().plain
        assert "heads 2024_1_contract01" in plain and "contract is next" not in plain and "asking Glance again" in plain
        main.busy = False
        await main.cluster.refresh_nodes()
        plain = panel.render().plain
        assert "heads 2024_1_contract01" in plain and "db check: up to date" in plain
