"""The zero-downtime rehearsal on the real staging lab (real Glance 2023.1 → 2024.1) under load.

This is the CI gate of issue 4: it fails if any request fails, any image is lost or stuck,
any checksum differs, or the final state is wrong. It uses its own lab directory and free
ports on 127.0.5.x, so it never touches an operator's lab.
"""

from __future__ import annotations

import pytest

from glance_tui.lab.lab import Lab
from glance_tui.lab.rehearse import FINAL_HEAD, rehearse, report_text

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def real_lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("rehearsal-lab"), nodes=3, ip_base="127.0.5.", api_port=0, frontend_port=0,
              stats_port=0, runtime_tcp_port=0, ssh_port=0, db_port=0, progress=print)
    try:
        yield lab
    finally:
        lab.down()


async def test_rehearsal_loses_nothing(real_lab, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    report = await rehearse(real_lab, naive=False, clients=6)
    print(report_text([report]))
    assert report.finished
    assert report.load["total"] > 100, "the load must actually run during the upgrade"
    assert report.load["failures"] == []
    assert report.load["checksum_mismatches"] == []
    assert report.load["images_not_active"] == {}
    assert report.final_heads == [FINAL_HEAD]
    assert set(report.node_versions.values()) == {"28.2.0"}
    # (migrate runs only when `db check` says it is needed; 2023.1 → 2024.1 has no data migration)
    assert {s["step"] for s in report.steps} >= {"backup", "new-node", "upgrade-new", "expand", "start-new", "contract"}
    assert set(report.drain_waits) == {"glance-1", "glance-2", "glance-3"}
    assert report.ok, report.problems
