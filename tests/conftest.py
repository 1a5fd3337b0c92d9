"""Shared fixtures: real services from Debian's packages, started on loopback in temp dirs."""

pytest_plugins = [
    "tests.fixtures.mariadb",
    "tests.fixtures.haproxy",
    "tests.fixtures.sshd",
    "tests.fixtures.cluster",
]


import pytest  # noqa: E402

OPT_IN = ("benchmark", "lab_extra")  # run only when the -m expression names them


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A later ``-m`` replaces addopts' ``-m 'not benchmark and not lab_extra'``: ``-m lab`` alone
    would then also run the lab_extra tests (marked lab too). Opt-in marks stay out unless named."""
    named = config.getoption("markexpr") or ""
    keep, drop = [], []
    for item in items:
        opt_in = [m for m in OPT_IN if item.get_closest_marker(m)]
        (drop if any(m not in named for m in opt_in) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _own_state_directory(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own ``XDG_STATE_HOME``: journals, run locks, crash.log and warnings.log
    never land in the shared ``~/.local/state`` (where another test, an earlier run or a concurrent
    CI run could find them). A test that needs a particular one still sets it itself."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(autouse=True)
def _journal_records_are_readable(monkeypatch: pytest.MonkeyPatch):
    """Every record the tool writes must be one its own reader trusts: a field of the wrong type
    would make a later resume refuse the whole journal (journal_read.shape_problem)."""
    from glance_tui.journal import Journal
    from glance_tui.journal_read import shape_problem

    refused: list[str] = []
    original = Journal.write

    def write(self: Journal, event: str, **fields: object) -> dict:
        record = original(self, event, **fields)
        problem = shape_problem(record)
        if problem:
            refused.append(f"{event}: {problem}")
        return record

    monkeypatch.setattr(Journal, "write", write)
    yield
    assert not refused, f"records the journal reader would refuse: {refused}"
