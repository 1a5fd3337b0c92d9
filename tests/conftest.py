"""Shared fixtures: real services from Debian's packages, started on loopback in temp dirs."""

pytest_plugins = [
    "tests.fixtures.mariadb",
    "tests.fixtures.haproxy",
    "tests.fixtures.sshd",
    "tests.fixtures.cluster",
]


import pytest  # noqa: E402


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
